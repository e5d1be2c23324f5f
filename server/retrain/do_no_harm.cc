#include "server/retrain/do_no_harm.h"

#include <algorithm>
#include <cstdio>

#include "common/base/json.h"
#include "common/base/metrics.h"
#include "common/base/permutation.h"
#include "common/base/random.h"

namespace r2f {

TrainValidationSplit SplitTrainingData(uint64_t available, int64_t validation_images,
                                       uint64_t seed) {
  TrainValidationSplit split;
  const uint64_t v =
      std::min<uint64_t>(static_cast<uint64_t>(std::max<int64_t>(0, validation_images)), available);
  std::vector<uint8_t> held_out(available, 0);
  if (v > 0) {
    const std::vector<uint32_t> order = SeededPermutation(available, MixKey({seed, 0x7A11D47Eull}));
    for (uint64_t i = 0; i < v; ++i) held_out[order[i]] = 1;
  }
  split.training.reserve(available - v);
  split.validation.reserve(v);
  for (uint64_t id = 0; id < available; ++id) {
    (held_out[id] ? split.validation : split.training).push_back(static_cast<uint32_t>(id));
  }
  return split;
}

void BestModelKeeper::SetBase(int64_t hits, int64_t count) {
  count_ = count;
  history_ = {Point{-1, hits}};
  kept_ = history_[0];
}

bool BestModelKeeper::Offer(int64_t iteration, int64_t hits) {
  history_.push_back(Point{iteration, hits});
  if (hits <= kept_.hits) return false;  // ties keep the earlier model (Base first)
  kept_ = history_.back();
  return true;
}

void BestModelKeeper::Restore(int64_t count, std::vector<Point> history, Point kept) {
  count_ = count;
  history_ = std::move(history);
  kept_ = kept;
}

double BestModelKeeper::Top1(int64_t hits) const {
  return count_ > 0 ? 100.0 * static_cast<double>(hits) / static_cast<double>(count_) : 0.0;
}

double BestModelKeeper::last_top1() const {
  return history_.empty() ? 0.0 : Top1(history_.back().hits);
}

double BestModelKeeper::base_top1() const {
  return history_.empty() ? 0.0 : Top1(history_[0].hits);
}

double BestModelKeeper::base_interval() const {
  return history_.empty() ? 0.0 : 100.0 * WilsonHalfWidth95(history_[0].hits, count_);
}

std::string BestModelKeeper::Reason() const {
  char text[256];
  if (kept_.iteration < 0) {
    std::snprintf(text, sizeof text,
                  "Base kept: no retrained model beat its validation top-1 of %.2f%% "
                  "(+-%.2f, %lld images)",
                  base_top1(), base_interval(), static_cast<long long>(count_));
  } else {
    const int64_t last_hits = history_.empty() ? 0 : history_.back().hits;
    std::snprintf(text, sizeof text,
                  "iteration %lld kept: best validation top-1 %.2f%% against Base's %.2f%% "
                  "(+-%.2f, %lld images); the last validated model had %.2f%%",
                  static_cast<long long>(kept_.iteration), Top1(kept_.hits), base_top1(),
                  base_interval(), static_cast<long long>(count_), Top1(last_hits));
  }
  return text;
}

nlohmann::ordered_json BestModelKeeper::ToJson(const ValidationSettings& settings) const {
  Json history = Json::array();
  for (const Point& p : history_) {
    history.push_back({{"iteration", p.iteration}, {"top1", Top1(p.hits)}});
  }
  return Json{{"images", count_},
              {"every", settings.every},
              {"base_top1", base_top1()},
              {"base_interval", base_interval()},
              {"kept_iteration", kept_.iteration},
              {"kept_top1", Top1(kept_.hits)},
              {"reason", Reason()},
              {"history", history}};
}

}  // namespace r2f
