// `r2f_server search`: the greedy critical-layer search (paper Algorithm 1) on a remote faulty
// device. Every candidate protection set is measured on the device itself: the model is
// deployed once, then each candidate sets partial TMR and evaluates a validation subset of the
// device's training split. All candidates of one greedy step run with the same execution tag,
// i.e. on the same random faults (common random numbers: the paper does not say; without it
// the comparison of candidates is dominated by fault noise).
#pragma once

#include <string>
#include <vector>

#include "common/base/status.h"
#include "server/api/remote_session.h"
#include "server/search/critical_layers.h"

namespace r2f {

struct SearchConfig {
  std::string source;
  RemoteSessionConfig session;
  double r_max = 0.2;    // redundant compute budget: 0.2, 0.5, 2.0 (= full TMR)
  int64_t images = 500;  // validation samples, drawn (seeded) from the device's train split
  int batch_size = 250;
  uint64_t seed = 1;
  // greedy: Algorithm 1 (forward); greedy_fit: the same, measuring only layers that still fit
  // the budget; backward: elimination from full TMR; brute_force: the exhaustive optimum
  // (<= 20 candidates), a test oracle.
  std::string method = "greedy";
  std::vector<uint32_t> candidates;  // MAC layers to consider; empty = all
  std::string run_dir = "runs/search";
};

Result<SearchConfig> LoadSearchConfig(const std::string& path);

struct SearchRun {
  std::vector<uint32_t> layers;   // candidates, graph order
  std::vector<double> cost;       // O_i: modelled cycles of each candidate for one batch
  double base_accuracy = 0;       // A_{} (no protection), top-1 in percent
  int64_t validation_images = 0;  // the validation subset's size (at most the train split's)
  SearchResult result;
  double wall_seconds = 0;
  std::string result_path;  // <run_dir>/search.json
};

Result<SearchRun> RunCriticalLayerSearch(const SearchConfig& config);

// The candidates (config.candidates, or every MAC layer of `graph`) into run->layers, in graph
// order, with their costs O_i for one validation batch on `device`. InvalidArgument naming a
// candidate that is no MAC layer or is listed twice.
Status ChooseCandidates(const SearchConfig& config, const pb::Graph& graph,
                        const accel::AcceleratorConfig& device, SearchRun* run);

// Forward greedy evaluations when it returns s protected layers of L candidates, counting the
// final step whose best candidate broke the budget (none when s == L):
// sum_{k=L-s}^{L} k = (s+1)(2L-s)/2. The paper writes sum_{k=s+1}^{L} k, the same sum with s
// counted from the other end (docs/critical_layers.md).
int64_t ExpectedGreedyEvaluations(int64_t L, int64_t s);
// Backward elimination ending with s of L layers: sum_{k=s+1}^{L} k = (L+s+1)(L-s)/2.
int64_t ExpectedBackwardEvaluations(int64_t L, int64_t s);

}  // namespace r2f
