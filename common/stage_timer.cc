#include "common/stage_timer.h"

#include <yaml-cpp/yaml.h>

#include <charconv>
#include <cmath>
#include <cstdio>
#include <numeric>

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

// A minimal JSON writer: enough for flat objects of numbers, nested one level or two. Commas
// are inserted automatically; the caller keeps keys and nesting balanced.
class JsonWriter {
 public:
  void BeginObject() {
    Separate();
    out_ += '{';
    first_ = true;
  }
  void EndObject() {
    out_ += '}';
    first_ = false;
  }
  void Key(const std::string& key) {
    Separate();
    String(key);
    out_ += ':';
    after_key_ = true;
  }
  void Number(double v) {
    Separate();
    if (!std::isfinite(v)) {
      out_ += "null";  // JSON has no NaN or infinity
      return;
    }
    char buf[64];
    // Shortest representation that reads back to the same double; locale-independent.
    auto res = std::to_chars(buf, buf + sizeof(buf), v);
    out_.append(buf, res.ptr);
  }
  void Integer(int64_t v) {
    Separate();
    out_ += std::to_string(v);
  }
  void Unsigned(uint64_t v) {
    Separate();
    out_ += std::to_string(v);
  }
  void StageObject(const StageArray& values) {
    BeginObject();
    for (size_t i = 0; i < kNumStages; ++i) {
      Key(kStageNames[i]);
      Number(values[i]);
    }
    EndObject();
  }
  std::string Take() { return std::move(out_); }

 private:
  // Writes the comma between members, except right after '{' or a key.
  void Separate() {
    if (after_key_) {
      after_key_ = false;
      return;
    }
    if (!first_ && !out_.empty()) out_ += ',';
    first_ = false;
  }
  void String(const std::string& s) {
    out_ += '"';
    for (char c : s) {
      unsigned char u = static_cast<unsigned char>(c);
      if (c == '"' || c == '\\') {
        out_ += '\\';
        out_ += c;
      } else if (u < 0x20) {
        char esc[8];
        std::snprintf(esc, sizeof(esc), "\\u%04x", u);
        out_ += esc;
      } else {
        out_ += c;  // UTF-8 passes through unchanged
      }
    }
    out_ += '"';
  }

  std::string out_;
  bool first_ = true;
  bool after_key_ = false;
};

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
  JsonWriter w;
  w.BeginObject();
  w.Key("iteration");
  w.Integer(timing.iteration);
  w.Key("modelled_s");
  w.StageObject(timing.modelled_s);
  w.Key("measured_s");
  w.StageObject(timing.measured_s);
  w.Key("modelled_total_s");
  w.Number(timing.ModelledTotal());
  w.Key("measured_total_s");
  w.Number(timing.MeasuredTotal());
  w.Key("uplink_bytes");
  w.Unsigned(timing.uplink_bytes);
  w.Key("downlink_bytes");
  w.Unsigned(timing.downlink_bytes);
  if (!extra.empty()) {
    w.Key("extra");
    w.BeginObject();
    for (const auto& [key, value] : extra) {
      w.Key(key);
      w.Number(value);
    }
    w.EndObject();
  }
  w.EndObject();
  return w.Take();
}

void TimingTotals::Add(const IterationTiming& timing) {
  ++iterations;
  for (size_t i = 0; i < kNumStages; ++i) {
    modelled_s[i] += timing.modelled_s[i];
    measured_s[i] += timing.measured_s[i];
  }
  uplink_bytes += timing.uplink_bytes;
  downlink_bytes += timing.downlink_bytes;
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

std::string SummaryToJson(const TimingTotals& totals, const TimingTotals* baseline) {
  JsonWriter w;
  w.BeginObject();
  w.Key("iterations");
  w.Integer(totals.iterations);
  w.Key("modelled_total_s");
  w.Number(totals.ModelledTotal());
  w.Key("measured_total_s");
  w.Number(totals.MeasuredTotal());
  w.Key("modelled_s");
  w.StageObject(totals.modelled_s);
  w.Key("measured_s");
  w.StageObject(totals.measured_s);
  w.Key("modelled_share");
  w.StageObject(totals.Shares());
  w.Key("measured_share");
  w.StageObject(totals.MeasuredShares());
  w.Key("uplink_bytes");
  w.Unsigned(totals.uplink_bytes);
  w.Key("downlink_bytes");
  w.Unsigned(totals.downlink_bytes);
  if (baseline != nullptr) {
    StageArray normalised = totals.NormalisedTo(*baseline);
    w.Key("normalised");
    w.StageObject(normalised);
    w.Key("normalised_total");
    w.Number(Sum(normalised));
  }
  w.EndObject();
  return w.Take();
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
  IterationTiming t;
  try {
    YAML::Node root = YAML::Load(line);
    if (!root.IsMap() || !root["iteration"]) {
      return Status::Corruption("stage line has no iteration: " + line.substr(0, 80));
    }
    t.iteration = root["iteration"].as<int64_t>();
    for (Stage s : AllStages()) {
      YAML::Node m = root["modelled_s"][StageName(s)];
      YAML::Node w = root["measured_s"][StageName(s)];
      if (!m || !w) {
        return Status::Corruption("stage line of iteration " + std::to_string(t.iteration) +
                                  " lacks stage '" + StageName(s) + "'");
      }
      t.modelled(s) = m.IsNull() ? 0.0 : m.as<double>();
      t.measured(s) = w.IsNull() ? 0.0 : w.as<double>();
    }
    t.uplink_bytes = root["uplink_bytes"].as<uint64_t>();
    t.downlink_bytes = root["downlink_bytes"].as<uint64_t>();
  } catch (const YAML::Exception& e) {
    return Status::Corruption(std::string("unreadable stage line: ") + e.what());
  }
  return t;
}

}  // namespace r2f
