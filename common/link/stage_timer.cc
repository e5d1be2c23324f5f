#include "common/link/stage_timer.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <utility>

#include "common/base/json.h"

namespace r2f {

namespace {

constexpr const char* kStageNames[kNumStages] = {"fp",     "tmr", "increment", "codec",
                                                 "uplink", "bp",  "downlink"};

double Sum(const StageArray& a) { return std::accumulate(a.begin(), a.end(), 0.0); }

StageArray Divide(const StageArray& a, double den) {
  StageArray out{};
  if (!(den > 0) || !std::isfinite(den)) return out;
  for (size_t i = 0; i < kNumStages; ++i) out[i] = a[i] / den;
  return out;
}

Json StageObject(const StageArray& values) {
  Json out = Json::object();
  for (size_t i = 0; i < kNumStages; ++i) out[kStageNames[i]] = values[i];
  return out;
}

}  // namespace

const std::array<Stage, kNumStages>& AllStages() {
  static const std::array<Stage, kNumStages> stages = {
      Stage::kFp,     Stage::kTmr, Stage::kIncrement, Stage::kCodec,
      Stage::kUplink, Stage::kBp,  Stage::kDownlink};
  return stages;
}

const char* StageName(Stage stage) {
  size_t i = StageIndex(stage);
  return i < kNumStages ? kStageNames[i] : "unknown";
}

Result<Stage> StageFromName(const std::string& name) {
  for (Stage s : AllStages()) {
    if (name == StageName(s)) return s;
  }
  return Status::NotFound("unknown stage '" + name +
                          "'; valid: fp, tmr, increment, codec, uplink, bp, downlink");
}

double IterationTiming::ModelledTotal() const { return Sum(modelled_s); }
double IterationTiming::MeasuredTotal() const { return Sum(measured_s); }

std::string ToJsonLine(const IterationTiming& timing, const std::map<std::string, double>& extra) {
  Json line = {{"iteration", timing.iteration},
               {"modelled_s", StageObject(timing.modelled_s)},
               {"measured_s", StageObject(timing.measured_s)},
               {"modelled_total_s", timing.ModelledTotal()},
               {"measured_total_s", timing.MeasuredTotal()},
               {"uplink_bytes", timing.uplink_bytes},
               {"downlink_bytes", timing.downlink_bytes}};
  if (timing.validation_measured_s > 0 || timing.validation_modelled_s > 0) {
    line["validation_s"] = {{"modelled", timing.validation_modelled_s},
                            {"measured", timing.validation_measured_s},
                            {"count", timing.validations}};
  }
  if (!extra.empty()) {
    Json& e = line["extra"] = Json::object();
    for (const auto& [key, value] : extra) e[key] = value;
  }
  return DumpJson(line);
}

void TimingTotals::Add(const IterationTiming& timing) {
  ++iterations;
  for (size_t i = 0; i < kNumStages; ++i) {
    modelled_s[i] += timing.modelled_s[i];
    measured_s[i] += timing.measured_s[i];
  }
  uplink_bytes += timing.uplink_bytes;
  downlink_bytes += timing.downlink_bytes;
  if (timing.validation_measured_s > 0 || timing.validation_modelled_s > 0) {
    validations += std::max(1, timing.validations);
    validation_modelled_s += timing.validation_modelled_s;
    validation_measured_s += timing.validation_measured_s;
  }
}

double TimingTotals::ModelledTotal() const { return Sum(modelled_s); }
double TimingTotals::MeasuredTotal() const { return Sum(measured_s); }
StageArray TimingTotals::Shares() const { return Divide(modelled_s, ModelledTotal()); }
StageArray TimingTotals::MeasuredShares() const { return Divide(measured_s, MeasuredTotal()); }

StageArray TimingTotals::NormalisedTo(const TimingTotals& baseline) const {
  if (iterations <= 0 || baseline.iterations <= 0) return StageArray{};
  StageArray mean = Divide(modelled_s, static_cast<double>(iterations));
  return Divide(mean, baseline.ModelledTotal() / static_cast<double>(baseline.iterations));
}

Json TimingSummaryJson(const TimingTotals& totals, const TimingTotals* baseline) {
  Json out = {{"iterations", totals.iterations},
              {"modelled_total_s", totals.ModelledTotal()},
              {"measured_total_s", totals.MeasuredTotal()},
              {"modelled_s", StageObject(totals.modelled_s)},
              {"measured_s", StageObject(totals.measured_s)},
              {"modelled_share", StageObject(totals.Shares())},
              {"measured_share", StageObject(totals.MeasuredShares())},
              {"uplink_bytes", totals.uplink_bytes},
              {"downlink_bytes", totals.downlink_bytes},
              {"validation",
               {{"validations", totals.validations},
                {"modelled_s", totals.validation_modelled_s},
                {"measured_s", totals.validation_measured_s}}}};
  if (baseline != nullptr) {
    StageArray normalised = totals.NormalisedTo(*baseline);
    out["normalised"] = StageObject(normalised);
    out["normalised_total"] = Sum(normalised);
  }
  return out;
}

std::string SummaryToJson(const TimingTotals& totals, const TimingTotals* baseline) {
  return DumpJson(TimingSummaryJson(totals, baseline));
}

ScopedStageTimer::ScopedStageTimer(IterationTiming* timing, Stage stage, Target target)
    : timing_(timing), stage_(stage), target_(target), start_(std::chrono::steady_clock::now()) {}

ScopedStageTimer::~ScopedStageTimer() { Stop(); }

double ScopedStageTimer::Stop() {
  if (stopped_) return 0.0;
  stopped_ = true;
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  timing_->measured(stage_) += seconds;
  if (target_ == Target::kMeasuredAndModelled) timing_->modelled(stage_) += seconds;
  return seconds;
}

Result<IterationTiming> IterationTimingFromJson(const std::string& line) {
  R2F_ASSIGN_OR_RETURN(Json root, ParseJson(line, "stage line"));
  if (!root.is_object() || !root.contains("iteration") || !root["iteration"].is_number_integer()) {
    return Status::Corruption("stage line has no iteration: " + line.substr(0, 80));
  }
  IterationTiming t;
  t.iteration = root["iteration"].get<int64_t>();
  const std::string which = "stage line of iteration " + std::to_string(t.iteration);
  // A number, or null for a value that was not finite.
  auto seconds = [&](const char* group, Stage s, double* out) -> Status {
    const Json* v =
        root.contains(group) && root[group].is_object() && root[group].contains(StageName(s))
            ? &root[group][StageName(s)]
            : nullptr;
    if (v == nullptr || !(v->is_number() || v->is_null())) {
      return Status::Corruption(which + " lacks stage '" + StageName(s) + "'");
    }
    *out = v->is_null() ? 0.0 : v->get<double>();
    return Status::Ok();
  };
  for (Stage s : AllStages()) {
    R2F_RETURN_IF_ERROR(seconds("modelled_s", s, &t.modelled(s)));
    R2F_RETURN_IF_ERROR(seconds("measured_s", s, &t.measured(s)));
  }
  for (auto [key, out] : {std::pair<const char*, uint64_t*>{"uplink_bytes", &t.uplink_bytes},
                          {"downlink_bytes", &t.downlink_bytes}}) {
    if (!root.contains(key) || !root[key].is_number_unsigned()) {
      return Status::Corruption(which + " lacks " + key);
    }
    *out = root[key].get<uint64_t>();
  }
  if (root.contains("validation_s")) {
    const Json& v = root["validation_s"];
    if (!v.is_object() || !v.contains("modelled") || !v["modelled"].is_number() ||
        !v.contains("measured") || !v["measured"].is_number()) {
      return Status::Corruption(which + " has a malformed validation_s");
    }
    t.validation_modelled_s = v["modelled"].get<double>();
    t.validation_measured_s = v["measured"].get<double>();
    // Lines written before the count was kept hold one validation.
    t.validations =
        v.contains("count") && v["count"].is_number_integer() ? v["count"].get<int>() : 1;
  }
  return t;
}

}  // namespace r2f
