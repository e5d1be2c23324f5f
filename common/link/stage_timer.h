// Per-stage timing of retraining iterations (docs/link_and_codec.md, paper Fig. 6).
//
// Every stage of an iteration carries two figures:
//  - modelled_s: the time the stage takes on the system being modelled; this is what Fig. 6
//    plots and what totals and shares are built from. Accelerator stages come from the cycle
//    model (cycles / clock), transmissions from the link model (common/link/link_model.h), and
//    host work (voting, increments, codec, BP) is its own model: the caller adds its measured
//    time here too (ScopedStageTimer with kMeasuredAndModelled).
//  - measured_s: wall time this run actually spent (the simulator's time for FP, the real MQTT
//    time for transmissions), logged beside the model for inspection.
// Times accumulate (+=), so a stage may be timed in several pieces (device encode + server
// decode both count as "codec").
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "common/base/status.h"

namespace r2f {

enum class Stage : int {
  kFp = 0,     // device forward pass (faulty chain)
  kTmr,        // TMR replicas and voting (reference chain)
  kIncrement,  // increment and similarity calculation
  kCodec,      // compression (device) and decompression (server)
  kUplink,     // data transmission, device -> server
  kBp,         // server backpropagation and optimizer step
  kDownlink,   // model transmission, server -> device
};

inline constexpr size_t kNumStages = 7;
using StageArray = std::array<double, kNumStages>;

// All stages in iteration order.
const std::array<Stage, kNumStages>& AllStages();
// "fp", "tmr", "increment", "codec", "uplink", "bp", "downlink".
const char* StageName(Stage stage);
Result<Stage> StageFromName(const std::string& name);
inline size_t StageIndex(Stage stage) { return static_cast<size_t>(stage); }

struct IterationTiming {
  int64_t iteration = 0;
  StageArray modelled_s{};
  StageArray measured_s{};
  uint64_t uplink_bytes = 0;
  uint64_t downlink_bytes = 0;
  // Do-no-harm validation done after this iteration (server/retrain/do_no_harm.h): a stage of
  // its own outside the paper's seven, so that it never enters the totals the paper's figures
  // compare; 0 when none ran.
  double validation_modelled_s = 0;
  double validation_measured_s = 0;
  int validations = 0;  // validations timed on this line: Base's joins iteration 0's

  double& modelled(Stage s) { return modelled_s[StageIndex(s)]; }
  double& measured(Stage s) { return measured_s[StageIndex(s)]; }
  double modelled(Stage s) const { return modelled_s[StageIndex(s)]; }
  double measured(Stage s) const { return measured_s[StageIndex(s)]; }
  double ModelledTotal() const;
  double MeasuredTotal() const;
};

// One JSON object on one line (no trailing newline):
//   {"iteration":3,"modelled_s":{"fp":0.1,...},"measured_s":{...},"modelled_total_s":..,
//    "measured_total_s":..,"uplink_bytes":..,"downlink_bytes":..,
//    "validation_s":{"modelled":..,"measured":..,"count":n},"extra":{"ber":1e-05,...}}
// ("validation_s" only on lines with a validation).
// Numbers are written in the shortest form that reads back to the same double; non-finite
// values become null. Extra fields live in their own object so they cannot clash with ours.
std::string ToJsonLine(const IterationTiming& timing,
                       const std::map<std::string, double>& extra = {});

// Reads back one line written by ToJsonLine (extra fields are ignored): resumed runs rebuild
// their totals from the lines they keep. Corruption names what is missing.
Result<IterationTiming> IterationTimingFromJson(const std::string& line);

// Sums over a run, for the summary.
struct TimingTotals {
  int64_t iterations = 0;
  StageArray modelled_s{};
  StageArray measured_s{};
  uint64_t uplink_bytes = 0;
  uint64_t downlink_bytes = 0;
  int64_t validations = 0;  // validations run (Base's included)
  double validation_modelled_s = 0;
  double validation_measured_s = 0;

  void Add(const IterationTiming& timing);
  double ModelledTotal() const;
  double MeasuredTotal() const;
  // Each stage's share of the modelled (resp. measured) total; all zero when the total is 0.
  StageArray Shares() const;
  StageArray MeasuredShares() const;
  // Fig. 6 normalisation: each stage's mean modelled time per iteration divided by the
  // baseline's (e.g. the DRM run's) mean modelled total per iteration, so the stages sum to
  // this run's time relative to the baseline. Per-iteration means make runs of different
  // lengths comparable. All zero when either run is empty or the baseline total is 0.
  StageArray NormalisedTo(const TimingTotals& baseline) const;
};

// The summary as one JSON line: iterations, totals, per-stage totals and shares, bytes, and
// with a baseline also "normalised" (NormalisedTo) and "normalised_total".
std::string SummaryToJson(const TimingTotals& totals, const TimingTotals* baseline = nullptr);
// The same object, to embed in a larger document (common/base/json.h completes the type).
nlohmann::ordered_json TimingSummaryJson(const TimingTotals& totals,
                                         const TimingTotals* baseline = nullptr);

// Adds the wall time between construction and Stop() (or destruction) to a stage of `timing`.
// Uses steady_clock. Not thread-safe: one timer per thread and IterationTiming.
class ScopedStageTimer {
 public:
  enum class Target {
    kMeasuredOnly,         // accelerator / transmission stages: the model is filled elsewhere
    kMeasuredAndModelled,  // host work: the measured time is also the modelled time
  };

  ScopedStageTimer(IterationTiming* timing, Stage stage, Target target = Target::kMeasuredOnly);
  ~ScopedStageTimer();
  ScopedStageTimer(const ScopedStageTimer&) = delete;
  ScopedStageTimer& operator=(const ScopedStageTimer&) = delete;

  // Stops the timer, records the time and returns it; later calls return 0 and record nothing.
  double Stop();

 private:
  IterationTiming* timing_;
  Stage stage_;
  Target target_;
  std::chrono::steady_clock::time_point start_;
  bool stopped_ = false;
};

}  // namespace r2f
