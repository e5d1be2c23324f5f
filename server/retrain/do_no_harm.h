// Do-no-harm retraining (docs/retraining.md, "Do no harm"): a validation set of the device's
// own training data, disjoint from the samples the run trains on, is evaluated on the faulty
// device before the first iteration (Base) and every `every` iterations; the run keeps the
// model with the best validation top-1 and deploys that one at the end. A retrained model
// replaces Base only if it is strictly better on validation (ties keep the earlier model), so
// the deployed model is never below Base on validation, let alone by more than Base's
// interval.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace r2f {

struct ValidationSettings {
  bool enabled = true;
  int64_t images = 1000;  // validation samples from the device's train split (at most a fifth)
  int every = 50;         // iterations between validations (the last one is always validated)
  int batch_size = 100;
};

// The device's train split divided: `validation` (sorted ids) and `training`, the ids the run
// may train on, in increasing order. Without validation (images 0) training is 0..available-1,
// so that a run without do-no-harm trains on exactly the samples it always did. The validation
// ids are a seeded draw, so a resumed run and a rerun get the same ones.
struct TrainValidationSplit {
  std::vector<uint32_t> validation;
  std::vector<uint32_t> training;
};
TrainValidationSplit SplitTrainingData(uint64_t available, int64_t validation_images,
                                       uint64_t seed);

// The keep-best rule and what summary.json says about it. Iteration -1 is Base (the model the
// run started from).
class BestModelKeeper {
 public:
  struct Point {
    int64_t iteration = -1;
    int64_t hits = 0;
  };

  // Base's validation result; first call only (counts are of the same validation set after).
  void SetBase(int64_t hits, int64_t count);
  // A retrained model after `iteration` had `hits` of count() right; true if it is now kept.
  bool Offer(int64_t iteration, int64_t hits);
  // Restores a resumed run's state (the validations of the iterations it keeps).
  void Restore(int64_t count, std::vector<Point> history, Point kept);

  bool has_base() const { return count_ > 0; }
  int64_t count() const { return count_; }
  const Point& kept() const { return kept_; }
  const std::vector<Point>& history() const { return history_; }  // history_[0] is Base
  // The latest validation's top-1, Base's and the half-width of its 95% interval, in percent.
  double last_top1() const;
  double base_top1() const;
  double base_interval() const;
  // Why the kept model was kept, for the log and summary.json.
  std::string Reason() const;
  nlohmann::ordered_json ToJson(const ValidationSettings& settings) const;

 private:
  double Top1(int64_t hits) const;

  int64_t count_ = 0;
  std::vector<Point> history_;
  Point kept_;
};

}  // namespace r2f
