#include "tests/bench/ratio_reporter.h"

#include <algorithm>
#include <cstdio>
#include <sstream>
#include <utility>

namespace r2f::bench {
namespace {

using Run = benchmark::BenchmarkReporter::Run;

double Seconds(const Run& run) {
  return run.GetAdjustedRealTime() / benchmark::GetTimeUnitMultiplier(run.time_unit);
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string Target(const RatioSpec& spec) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%s %g", spec.at_most ? "<=" : ">=", spec.target);
  return buf;
}

bool Meets(const RatioSpec& spec, double ratio) {
  return spec.at_most ? ratio <= spec.target : ratio >= spec.target;
}

std::string Number(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.6g", v);
  return buf;
}

// JSON display / file reporter: the library's output, then "ratios" before the closing brace.
class JsonRatioReporter : public benchmark::JSONReporter {
 public:
  JsonRatioReporter(std::vector<RatioSpec> specs, TimeCollector* times)
      : specs_(std::move(specs)), times_(*times) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    times_.Add(runs);
    JSONReporter::ReportRuns(runs);
  }
  void Finalize() override {
    // JSONReporter::Finalize would write "\n  ]\n}\n": close the array ourselves, add ours.
    GetOutputStream() << "\n  ],\n  \"ratios\": " << RatiosJson(times_.Ratios(specs_)) << "\n}\n";
  }

 private:
  std::vector<RatioSpec> specs_;
  TimeCollector& times_;
};

class ConsoleRatioReporter : public benchmark::ConsoleReporter {
 public:
  ConsoleRatioReporter(std::vector<RatioSpec> specs, bool color, TimeCollector* times)
      : ConsoleReporter(color ? OO_ColorTabular : OO_Tabular),
        specs_(std::move(specs)),
        times_(*times) {}
  void ReportRuns(const std::vector<Run>& runs) override {
    times_.Add(runs);
    ConsoleReporter::ReportRuns(runs);
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    GetOutputStream() << "\n" << RatiosTable(times_.Ratios(specs_)) << std::flush;
  }

 private:
  std::vector<RatioSpec> specs_;
  TimeCollector& times_;
};

}  // namespace

void TimeCollector::Add(const std::vector<Run>& runs) {
  for (const Run& run : runs) {
    if (run.error_occurred) continue;
    const std::string name = run.run_name.function_name;
    if (run.run_type == Run::RT_Iteration) {
      samples_[name].push_back(Seconds(run));
      by_repetition_[name][run.repetition_index].push_back(Seconds(run));
    } else if (run.aggregate_name == "median") {
      medians_[name] = Seconds(run);
    }
  }
}

double TimeCollector::MedianSeconds(const std::string& name) const {
  if (auto it = samples_.find(name); it != samples_.end() && !it->second.empty()) {
    return Median(it->second);
  }
  if (auto it = medians_.find(name); it != medians_.end()) return it->second;
  return 0;
}

void TimeCollector::AddPairs(const RatioSpec& spec, RatioResult* r) const {
  const auto num = by_repetition_.find(spec.numerator);
  const auto den = by_repetition_.find(spec.denominator);
  if (num == by_repetition_.end() || den == by_repetition_.end()) return;
  for (const auto& [index, times] : num->second) {
    const auto other = den->second.find(index);
    if (other == den->second.end() || times.size() != 1 || other->second.size() != 1 ||
        !(other->second[0] > 0)) {
      continue;
    }
    const double ratio = times[0] / other->second[0];
    r->pair_low = r->pairs == 0 ? ratio : std::min(r->pair_low, ratio);
    r->pair_high = r->pairs == 0 ? ratio : std::max(r->pair_high, ratio);
    ++r->pairs;
    r->pairs_ok += Meets(spec, ratio);
  }
}

std::vector<RatioResult> TimeCollector::Ratios(const std::vector<RatioSpec>& specs) const {
  std::vector<RatioResult> out;
  for (const RatioSpec& spec : specs) {
    RatioResult r;
    r.spec = spec;
    r.numerator_seconds = MedianSeconds(spec.numerator);
    r.denominator_seconds = MedianSeconds(spec.denominator);
    r.measured = r.numerator_seconds > 0 && r.denominator_seconds > 0;
    if (r.measured) {
      r.ratio = r.numerator_seconds / r.denominator_seconds;
      r.ok = Meets(spec, r.ratio);
      AddPairs(spec, &r);
    }
    out.push_back(r);
  }
  return out;
}

std::string RatiosJson(const std::vector<RatioResult>& ratios) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < ratios.size(); ++i) {
    const RatioResult& r = ratios[i];
    os << (i ? "," : "") << "\n    {\n"
       << "      \"name\": \"" << r.spec.name << "\",\n"
       << "      \"numerator\": \"" << r.spec.numerator << "\",\n"
       << "      \"denominator\": \"" << r.spec.denominator << "\",\n"
       << "      \"statistic\": \"median real_time per iteration\",\n"
       << "      \"numerator_s\": " << Number(r.numerator_seconds) << ",\n"
       << "      \"denominator_s\": " << Number(r.denominator_seconds) << ",\n"
       << "      \"ratio\": " << (r.measured ? Number(r.ratio) : "null") << ",\n"
       << "      \"target\": \"" << Target(r.spec) << "\",\n"
       << "      \"ok\": " << (r.measured ? (r.ok ? "true" : "false") : "null") << ",\n"
       << "      \"pairs\": " << r.pairs << ",\n"
       << "      \"pairs_ok\": " << r.pairs_ok << ",\n"
       << "      \"pair_low\": " << (r.pairs > 0 ? Number(r.pair_low) : "null") << ",\n"
       << "      \"pair_high\": " << (r.pairs > 0 ? Number(r.pair_high) : "null") << "\n"
       << "    }";
  }
  os << (ratios.empty() ? "]" : "\n  ]");
  return os.str();
}

std::string RatiosTable(const std::vector<RatioResult>& ratios) {
  std::ostringstream os;
  os << "Ratios of median real time per iteration, measured side by side in this run:\n";
  for (const RatioResult& r : ratios) {
    char line[256];
    if (!r.measured) {
      std::snprintf(line, sizeof(line), "  %-16s not measured (%s or %s did not run)\n",
                    r.spec.name.c_str(), r.spec.numerator.c_str(), r.spec.denominator.c_str());
      os << line;
      continue;
    }
    std::snprintf(line, sizeof(line), "  %-16s %7.3f  (target %s: %s)  %.3f ms / %.3f ms",
                  r.spec.name.c_str(), r.ratio, Target(r.spec).c_str(), r.ok ? "ok" : "MISSED",
                  r.numerator_seconds * 1e3, r.denominator_seconds * 1e3);
    os << line;
    if (r.pairs > 1) {
      std::snprintf(line, sizeof(line), "  by repetition %.3f-%.3f, target held in %d of %d",
                    r.pair_low, r.pair_high, r.pairs_ok, r.pairs);
      os << line;
    }
    os << "\n";
  }
  return os.str();
}

std::unique_ptr<benchmark::BenchmarkReporter> MakeRatioReporter(const std::string& format,
                                                                std::vector<RatioSpec> specs,
                                                                bool color, TimeCollector* times) {
  if (format == "json") return std::make_unique<JsonRatioReporter>(std::move(specs), times);
  if (format == "console") {
    return std::make_unique<ConsoleRatioReporter>(std::move(specs), color, times);
  }
  return nullptr;
}

}  // namespace r2f::bench
