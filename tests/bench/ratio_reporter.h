// Speed ratios between benchmarks measured side by side in one Google Benchmark run.
//
// The machine is shared, so absolute times mean little; ratios of benchmarks interleaved in the
// same run are what the speed targets are checked against. The reporters here wrap the
// library's console and JSON reporters: they pass every run through unchanged and collect the
// per-iteration real time of each benchmark, then append the ratios at the end:
//   console: a table after the usual output;
//   JSON (display or --benchmark_out file): a top-level "ratios" array next to "context" and
//   "benchmarks", so the document stays valid JSON.
// The statistic is the median over repetitions of the per-iteration real time (the "median"
// aggregate when only aggregates are reported). Next to it, each ratio says how it varied over
// the run: repetition i of the numerator against repetition i of the denominator (with
// --benchmark_enable_random_interleaving, which r2f_bench's default run uses, the i-th
// repetitions of two benchmarks fall at about the same stage of the run), the lowest and highest
// of those ratios and in how many of the pairs the target held. On a noisy host a verdict whose
// target held in 3 of 7 pairs reads differently from one that held in none.
#pragma once

#include <benchmark/benchmark.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace r2f::bench {

// numerator / denominator should be <= target (at_most) or >= target (!at_most).
struct RatioSpec {
  std::string name;
  std::string numerator;  // benchmark name as registered, e.g. "BM_Forward/clean"
  std::string denominator;
  double target = 0;
  bool at_most = true;
};

struct RatioResult {
  RatioSpec spec;
  double numerator_seconds = 0;  // median per-iteration real time; 0 if not measured
  double denominator_seconds = 0;
  double ratio = 0;
  bool measured = false;  // both benchmarks ran (a --benchmark_filter may skip them)
  bool ok = false;        // measured and within the target
  // The pairs of repetitions of the same index (each benchmark reported it once): how many, in
  // how many the target held, their lowest and highest ratio. 0 pairs when only aggregates were
  // reported.
  int pairs = 0;
  int pairs_ok = 0;
  double pair_low = 0;
  double pair_high = 0;
};

// Collects per-iteration real times by benchmark name (the registered name, without the
// repetition/threads suffixes the library appends).
class TimeCollector {
 public:
  void Add(const std::vector<benchmark::BenchmarkReporter::Run>& runs);
  // Median per-iteration real time in seconds, or 0 when the benchmark did not run.
  double MedianSeconds(const std::string& name) const;
  std::vector<RatioResult> Ratios(const std::vector<RatioSpec>& specs) const;
  bool empty() const { return samples_.empty() && medians_.empty(); }

 private:
  // Fills r's pairs from the per-repetition times of its two benchmarks.
  void AddPairs(const RatioSpec& spec, RatioResult* r) const;

  std::map<std::string, std::vector<double>> samples_;  // per repetition, seconds
  // Per repetition index, seconds: an index reported twice under one name (two instances of
  // it) gives no pair.
  std::map<std::string, std::map<int64_t, std::vector<double>>> by_repetition_;
  std::map<std::string, double> medians_;  // "median" aggregates, seconds
};

// "ratios" as a JSON array (no trailing newline), indented for the JSON reporter's layout.
std::string RatiosJson(const std::vector<RatioResult>& ratios);
// A plain-text table, one line per ratio.
std::string RatiosTable(const std::vector<RatioResult>& ratios);

// A reporter for `format` ("console" or "json") that collects times into *times (which must
// outlive it) and appends the ratios of `specs` at the end; nullptr for other formats.
// `color` applies to the console format only.
std::unique_ptr<benchmark::BenchmarkReporter> MakeRatioReporter(const std::string& format,
                                                                std::vector<RatioSpec> specs,
                                                                bool color, TimeCollector* times);

}  // namespace r2f::bench
