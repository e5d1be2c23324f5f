// Critical-layer protection (paper §V.B, Algorithm 1): which MAC layers to run with TMR so
// that the faulty device's accuracy is highest while the redundant compute stays within r_max.
//
// The search is independent of how an accuracy is measured: an AccuracyOracle evaluates one
// protection set (remotely on the faulty device in `r2f_server search`, synthetically in tests).
// Torch-free.
#pragma once

#include <cstdint>
#include <functional>
#include <vector>

#include "common/base/status.h"

namespace r2f {

// Accuracy (any monotone score, e.g. top-1 in percent) of the device with `protected_layers`
// tripled. `step` numbers the greedy step, so that an oracle can give every candidate of one
// step the same random faults (common random numbers: candidates are compared on equal terms).
using AccuracyOracle =
    std::function<Result<double>(const std::vector<uint32_t>& protected_layers, int step)>;

struct SearchEvaluation {
  int step = 0;
  std::vector<uint32_t> protected_layers;  // the candidate set S ∪ {i}
  double accuracy = 0;
  double overhead = 0;  // r of the candidate set
};

struct SearchResult {
  std::vector<uint32_t> protected_layers;  // S, in the order the layers were chosen
  double accuracy = 0;                     // A_S (of the last accepted step; base if S is empty)
  double overhead = 0;                     // r = 2 * sum_{i in S} O_i / sum_i O_i
  int64_t evaluations = 0;                 // oracle calls (the base evaluation excluded)
  std::vector<SearchEvaluation> log;       // every oracle call, in order
  // Accepted sets after each step: trajectory[k] has k + 1 layers.
  std::vector<SearchEvaluation> trajectory;
};

// r = 2 * sum_{i in S} O_i / sum_i O_i: TMR runs a protected layer twice more
// (docs/critical_layers.md).
double RedundantOverhead(const std::vector<uint32_t>& layers, const std::vector<double>& cost,
                         const std::vector<uint32_t>& protected_layers);

// Algorithm 1, forward greedy: starting from S = {}, every step measures A_{S∪{i}} for every
// unprotected layer i, adds the best one, and stops when that addition would make r exceed
// r_max (the layer is then removed again, as in lines 9-10) or no layer is left. Ties go to the
// earlier layer. `layers` and `cost` are parallel (cost O_i > 0).
//
// With `only_affordable` (ours, `search.method: greedy_fit`) a step measures only the layers
// that still fit the budget and the search stops when none does: Algorithm 1 as written stops
// as soon as the *best* layer is too expensive, even when cheaper layers would still fit.
Result<SearchResult> GreedyCriticalLayerSearch(const std::vector<uint32_t>& layers,
                                               const std::vector<double>& cost, double r_max,
                                               const AccuracyOracle& oracle,
                                               bool only_affordable = false);

// Backward elimination (ours): starting from S = all layers (full TMR), every step measures
// A_{S\{i}} for every i in S and drops the layer whose removal costs least accuracy, until r
// fits r_max. It returns s layers after sum_{k=s+1}^{L} k = (L+s+1)(L-s)/2 evaluations, the
// count the paper states for its search (docs/critical_layers.md); it sees how layers interact
// under full protection, where the forward search sees them one at a time. `step` as above.
Result<SearchResult> BackwardCriticalLayerSearch(const std::vector<uint32_t>& layers,
                                                 const std::vector<double>& cost, double r_max,
                                                 const AccuracyOracle& oracle);

// The exact optimum over all subsets with r <= r_max (2^L evaluations): the test oracle for
// small networks. The empty set counts; ties go to the smaller, then lexicographically first set.
Result<SearchResult> BruteForceCriticalLayerSearch(const std::vector<uint32_t>& layers,
                                                   const std::vector<double>& cost, double r_max,
                                                   const AccuracyOracle& oracle);

}  // namespace r2f
