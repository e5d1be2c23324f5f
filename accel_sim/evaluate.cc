#include "accel_sim/evaluate.h"

#include <algorithm>
#include <chrono>

namespace r2f::accel {

void AccumulateStats(const RunStats& run, std::vector<LayerFaultStats>* faults,
                     std::vector<LayerCycles>* cycles, int64_t* total_cycles,
                     uint64_t* total_flips) {
  if (faults->empty()) {
    *faults = run.faults;
  } else {
    for (size_t l = 0; l < faults->size() && l < run.faults.size(); ++l) {
      for (int s = 0; s < kNumFaultSites; ++s) {
        (*faults)[l].exposed_bits[s] += run.faults[l].exposed_bits[s];
        (*faults)[l].flips[s] += run.faults[l].flips[s];
      }
    }
  }
  if (cycles->empty()) {
    *cycles = run.cycles;
  } else {
    for (size_t l = 0; l < cycles->size() && l < run.cycles.size(); ++l) {
      (*cycles)[l].macs += run.cycles[l].macs;
      (*cycles)[l].folds += run.cycles[l].folds;
      (*cycles)[l].compute_cycles += run.cycles[l].compute_cycles;
      (*cycles)[l].stall_cycles += run.cycles[l].stall_cycles;
    }
  }
  *total_cycles += run.total_cycles;
  *total_flips += run.total_flips;
}

Result<DeviceEvalResult> EvaluateOnDevice(Accelerator& device, const Dataset& data,
                                          const DeviceEvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  if (options.batch_size <= 0) return Status::InvalidArgument("evaluation batch size must be > 0");
  const pb::Graph& graph = device.model().graph();
  const auto& in = graph.input_shape();
  if (in.dims_size() != 3 || in.dims(0) != data.channels || in.dims(1) != data.height ||
      in.dims(2) != data.width) {
    return Status::InvalidArgument("data set '" + data.name + "' has images of " +
                                   std::to_string(data.channels) + "x" +
                                   std::to_string(data.height) + "x" + std::to_string(data.width) +
                                   ", the model expects " + std::to_string(in.dims(0)) + "x" +
                                   std::to_string(in.dims(1)) + "x" + std::to_string(in.dims(2)));
  }
  std::vector<uint64_t> ids = options.sample_ids;
  if (ids.empty()) {
    const int64_t n =
        options.limit > 0 ? std::min<int64_t>(options.limit, data.size()) : data.size();
    for (int64_t i = 0; i < n; ++i) ids.push_back(static_cast<uint64_t>(i));
  }
  for (uint64_t id : ids) {
    if (id >= data.size()) {
      return Status::InvalidArgument("sample " + std::to_string(id) + " is outside data set '" +
                                     data.name + "' of " + std::to_string(data.size()));
    }
  }
  const int classes = static_cast<int>(graph.num_classes());
  const size_t image_bytes = data.image_bytes();
  DeviceEvalResult result;
  std::vector<int64_t> same_as_clean, elements;
  std::vector<uint8_t> pixels;
  for (size_t start_i = 0; start_i < ids.size(); start_i += options.batch_size) {
    const int batch = static_cast<int>(std::min<size_t>(options.batch_size, ids.size() - start_i));
    pixels.resize(batch * image_bytes);
    ImageBatch images;
    images.batch = batch;
    for (int b = 0; b < batch; ++b) {
      const uint64_t id = ids[start_i + b];
      std::copy(data.image(id), data.image(id) + image_bytes, pixels.begin() + b * image_bytes);
      images.sample_ids.push_back(id);
    }
    images.pixels = pixels.data();
    R2F_ASSIGN_OR_RETURN(InferenceResult run,
                         device.Infer(images, options.faults, options.tmr, options.execution_tag,
                                      options.layer_similarity));
    for (int b = 0; b < batch; ++b) {
      const int8_t* logits = run.logits.data.data() + static_cast<size_t>(b) * classes;
      result.accuracy.AddInt8(logits, classes, data.labels[ids[start_i + b]]);
      int best = 0;
      for (int c = 1; c < classes; ++c) {
        if (logits[c] > logits[best]) best = c;
      }
      result.predictions.push_back(static_cast<uint32_t>(best));
    }
    AccumulateStats(run.stats, &result.faults, &result.cycles, &result.total_cycles,
                    &result.total_flips);
    if (options.layer_similarity) {
      R2F_ASSIGN_OR_RETURN(InferenceResult clean,
                           device.Infer(images, FaultConfig{}, TmrConfig{}, 0, true));
      same_as_clean.resize(run.layer_outputs.size());
      elements.resize(run.layer_outputs.size());
      for (size_t l = 0; l < run.layer_outputs.size(); ++l) {
        const auto& f = run.layer_outputs[l].data;
        const auto& c = clean.layer_outputs[l].data;
        for (size_t i = 0; i < f.size(); ++i) same_as_clean[l] += f[i] == c[i];
        elements[l] += static_cast<int64_t>(f.size());
      }
    }
  }
  for (size_t l = 0; l < same_as_clean.size(); ++l) {
    result.layer_similarity.push_back(elements[l] ? double(same_as_clean[l]) / elements[l] : 1.0);
  }
  result.wall_seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace r2f::accel
