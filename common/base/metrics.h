// Classification accuracy with its uncertainty, shared by every evaluation (server and device).
#pragma once

#include <cstdint>
#include <string>

namespace r2f {

// Ranks classes by score, ties broken by the lower class index (the same rule everywhere, so
// that int8 logits with saturated ties give one answer on every executor).
class Accuracy {
 public:
  void AddInt8(const int8_t* logits, int classes, int label);
  void AddFloat(const float* logits, int classes, int label);
  void Merge(const Accuracy& other);
  // Rebuilds an accuracy from saved counts (checkpoints).
  static Accuracy FromCounts(int64_t count, int64_t top1_hits, int64_t top5_hits);

  int64_t count() const { return count_; }
  int64_t top1_hits() const { return top1_; }
  int64_t top5_hits() const { return top5_; }
  double Top1() const;  // in percent
  double Top5() const;
  // Half-width of the 95% Wilson score interval of top-1, in percentage points.
  double Top1Ci95() const;
  std::string ToString() const;  // "top-1 91.23% ±0.55 (n=10000), top-5 99.81%"

 private:
  template <typename T>
  void Add(const T* logits, int classes, int label);
  int64_t count_ = 0, top1_ = 0, top5_ = 0;
};

// Rank (0-based) of `label` among the scores, with the tie rule above.
int RankOf(const int8_t* logits, int classes, int label);
int RankOf(const float* logits, int classes, int label);

// Wilson score interval half-width (95%) for `hits` of `n`, as a fraction.
double WilsonHalfWidth95(int64_t hits, int64_t n);

}  // namespace r2f
