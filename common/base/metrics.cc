#include "common/base/metrics.h"

#include <cmath>
#include <cstdio>

namespace r2f {
namespace {

template <typename T>
int Rank(const T* logits, int classes, int label) {
  int rank = 0;
  for (int c = 0; c < classes; ++c) {
    if (logits[c] > logits[label] || (logits[c] == logits[label] && c < label)) ++rank;
  }
  return rank;
}

}  // namespace

int RankOf(const int8_t* logits, int classes, int label) { return Rank(logits, classes, label); }
int RankOf(const float* logits, int classes, int label) { return Rank(logits, classes, label); }

template <typename T>
void Accuracy::Add(const T* logits, int classes, int label) {
  int rank = Rank(logits, classes, label);
  ++count_;
  if (rank == 0) ++top1_;
  if (rank < 5) ++top5_;
}

void Accuracy::AddInt8(const int8_t* logits, int classes, int label) {
  Add(logits, classes, label);
}
void Accuracy::AddFloat(const float* logits, int classes, int label) {
  Add(logits, classes, label);
}

void Accuracy::Merge(const Accuracy& other) {
  count_ += other.count_;
  top1_ += other.top1_;
  top5_ += other.top5_;
}

Accuracy Accuracy::FromCounts(int64_t count, int64_t top1_hits, int64_t top5_hits) {
  Accuracy a;
  a.count_ = count;
  a.top1_ = top1_hits;
  a.top5_ = top5_hits;
  return a;
}

double Accuracy::Top1() const { return count_ ? 100.0 * top1_ / count_ : 0.0; }
double Accuracy::Top5() const { return count_ ? 100.0 * top5_ / count_ : 0.0; }
double Accuracy::Top1Ci95() const { return 100.0 * WilsonHalfWidth95(top1_, count_); }

std::string Accuracy::ToString() const {
  char buf[128];
  std::snprintf(buf, sizeof buf, "top-1 %.2f%% ±%.2f (n=%lld), top-5 %.2f%%", Top1(), Top1Ci95(),
                static_cast<long long>(count_), Top5());
  return buf;
}

double WilsonHalfWidth95(int64_t hits, int64_t n) {
  if (n <= 0) return 0.0;
  const double z = 1.959963984540054, p = static_cast<double>(hits) / n, nn = n;
  return z / (1 + z * z / nn) * std::sqrt(p * (1 - p) / nn + z * z / (4 * nn * nn));
}

}  // namespace r2f
