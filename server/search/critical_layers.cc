#include "server/search/critical_layers.h"

#include <algorithm>
#include <numeric>
#include <string>

namespace r2f {
namespace {

Status CheckInputs(const std::vector<uint32_t>& layers, const std::vector<double>& cost,
                   double r_max) {
  if (layers.empty()) return Status::InvalidArgument("critical-layer search: no layers");
  if (layers.size() != cost.size()) {
    return Status::InvalidArgument("critical-layer search: " + std::to_string(layers.size()) +
                                   " layers but " + std::to_string(cost.size()) + " costs");
  }
  for (size_t i = 0; i < cost.size(); ++i) {
    if (!(cost[i] > 0)) {
      return Status::InvalidArgument("critical-layer search: layer " + std::to_string(layers[i]) +
                                     " has a non-positive cost");
    }
  }
  if (!(r_max >= 0)) return Status::InvalidArgument("critical-layer search: r_max must be >= 0");
  return Status::Ok();
}

}  // namespace

double RedundantOverhead(const std::vector<uint32_t>& layers, const std::vector<double>& cost,
                         const std::vector<uint32_t>& protected_layers) {
  double total = std::accumulate(cost.begin(), cost.end(), 0.0), chosen = 0;
  for (uint32_t id : protected_layers) {
    auto it = std::find(layers.begin(), layers.end(), id);
    if (it != layers.end()) chosen += cost[it - layers.begin()];
  }
  return total > 0 ? 2.0 * chosen / total : 0.0;
}

Result<SearchResult> GreedyCriticalLayerSearch(const std::vector<uint32_t>& layers,
                                               const std::vector<double>& cost, double r_max,
                                               const AccuracyOracle& oracle, bool only_affordable) {
  R2F_RETURN_IF_ERROR(CheckInputs(layers, cost, r_max));
  SearchResult result;
  std::vector<bool> taken(layers.size(), false);
  for (int step = 0; result.protected_layers.size() < layers.size(); ++step) {
    int best = -1;
    SearchEvaluation best_eval;
    for (size_t i = 0; i < layers.size(); ++i) {
      if (taken[i]) continue;
      SearchEvaluation e;
      e.step = step;
      e.protected_layers = result.protected_layers;
      e.protected_layers.push_back(layers[i]);
      e.overhead = RedundantOverhead(layers, cost, e.protected_layers);
      if (only_affordable && e.overhead > r_max) continue;
      R2F_ASSIGN_OR_RETURN(e.accuracy, oracle(e.protected_layers, step));
      ++result.evaluations;
      result.log.push_back(e);
      if (best < 0 || e.accuracy > best_eval.accuracy) {
        best = static_cast<int>(i);
        best_eval = e;
      }
    }
    // Lines 8-11: the best layer stays only if the overhead stays within r_max.
    if (best < 0 || best_eval.overhead > r_max) break;
    taken[best] = true;
    result.protected_layers = best_eval.protected_layers;
    result.accuracy = best_eval.accuracy;
    result.overhead = best_eval.overhead;
    result.trajectory.push_back(best_eval);
  }
  return result;
}

Result<SearchResult> BackwardCriticalLayerSearch(const std::vector<uint32_t>& layers,
                                                 const std::vector<double>& cost, double r_max,
                                                 const AccuracyOracle& oracle) {
  R2F_RETURN_IF_ERROR(CheckInputs(layers, cost, r_max));
  SearchResult result;
  result.protected_layers = layers;
  result.overhead = RedundantOverhead(layers, cost, layers);
  for (int step = 0; result.overhead > r_max; ++step) {
    SearchEvaluation best;
    bool have = false;
    for (size_t drop = 0; drop < result.protected_layers.size(); ++drop) {
      SearchEvaluation e;
      e.step = step;
      e.protected_layers = result.protected_layers;
      e.protected_layers.erase(e.protected_layers.begin() + static_cast<std::ptrdiff_t>(drop));
      R2F_ASSIGN_OR_RETURN(e.accuracy, oracle(e.protected_layers, step));
      e.overhead = RedundantOverhead(layers, cost, e.protected_layers);
      ++result.evaluations;
      result.log.push_back(e);
      if (!have || e.accuracy > best.accuracy) {
        have = true;
        best = e;
      }
    }
    result.protected_layers = best.protected_layers;
    result.accuracy = best.accuracy;
    result.overhead = best.overhead;
    result.trajectory.push_back(best);
  }
  return result;
}

Result<SearchResult> BruteForceCriticalLayerSearch(const std::vector<uint32_t>& layers,
                                                   const std::vector<double>& cost, double r_max,
                                                   const AccuracyOracle& oracle) {
  R2F_RETURN_IF_ERROR(CheckInputs(layers, cost, r_max));
  if (layers.size() > 20) {
    return Status::InvalidArgument("brute-force search over " + std::to_string(layers.size()) +
                                   " layers (2^L sets) is refused; it is a test oracle");
  }
  SearchResult result;
  bool have = false;
  const uint64_t sets = uint64_t{1} << layers.size();
  // Enumerate by size, then lexicographically, so that ties resolve to the smallest first set.
  std::vector<std::vector<uint32_t>> candidates;
  for (uint64_t mask = 0; mask < sets; ++mask) {
    std::vector<uint32_t> set;
    for (size_t i = 0; i < layers.size(); ++i) {
      if (mask >> i & 1) set.push_back(layers[i]);
    }
    if (RedundantOverhead(layers, cost, set) <= r_max) candidates.push_back(std::move(set));
  }
  std::stable_sort(candidates.begin(), candidates.end(), [](const auto& a, const auto& b) {
    return a.size() != b.size() ? a.size() < b.size() : a < b;
  });
  for (const auto& set : candidates) {
    SearchEvaluation e;
    e.protected_layers = set;
    R2F_ASSIGN_OR_RETURN(e.accuracy, oracle(set, 0));
    e.overhead = RedundantOverhead(layers, cost, set);
    ++result.evaluations;
    result.log.push_back(e);
    if (!have || e.accuracy > result.accuracy) {
      have = true;
      result.protected_layers = set;
      result.accuracy = e.accuracy;
      result.overhead = e.overhead;
    }
  }
  return result;
}

}  // namespace r2f
