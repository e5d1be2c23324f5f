// Fuzz target: a deployed model's bytes -> pb::QuantizedModel -> accel::Accelerator::Create, the
// device's gate for deployModel; a model that passes and is small is also run.
//
// Input: byte 0 selects the form of the rest: even, a QuantizedModel; odd, a DeployModelRequest
// handled as the device does (a whole model is taken as it is, a WeightDelta is applied to a
// fixed tiny model first, common/codec/weight_delta.h). Bits 1-2 of byte 0 pick the TMR mode of the
// run, bit 3 a training-mode run (faulty and reference chains), the last byte the batch size.
// Checked: nothing crashes, hangs or reads out of bounds (ASan/UBSan); a model Create accepts
// runs without error and yields logits of the output node's size for every image.
#include <omp.h>

#include <memory>
#include <vector>

#include "accel_sim/accelerator.h"
#include "accel_sim/compiled_model.h"
#include "common/codec/weight_delta.h"
#include "r2f.pb.h"
#include "tests/fuzz/fuzz_models.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

using namespace r2f;

// Runs above this many MACs or activation values are skipped: a fuzz iteration must stay in
// the milliseconds (the tiny seed models need about 2k MACs).
constexpr int64_t kMaxMacs = 200000;
constexpr int64_t kMaxElements = 100000;

bool Parse(const uint8_t* data, size_t size, pb::QuantizedModel* model) {
  if (size < 1) return false;
  const auto* bytes = data + 1;
  const int n = static_cast<int>(size - 1);
  if ((data[0] & 1) == 0) return model->ParseFromArray(bytes, n);
  pb::DeployModelRequest request;
  if (!request.ParseFromArray(bytes, n)) return false;
  if (request.has_model()) {
    *model = request.model();
    return true;
  }
  if (!request.has_delta()) return false;
  static const pb::QuantizedModel* base = new pb::QuantizedModel(fuzz::TinyModel(0));
  auto applied = ApplyWeightDelta(*base, request.delta());
  if (!applied.ok()) return false;
  *model = std::move(applied).value();
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  QuietProtobuf();
  // One OpenMP thread: a fuzz iteration is far too small to share, and spinning worker threads
  // slow it down 50x on a busy machine.
  static const bool single_thread = (omp_set_num_threads(1), true);
  (void)single_thread;
  pb::QuantizedModel model;
  if (!Parse(data, size, &model)) return 0;
  auto accelerator = accel::Accelerator::Create(model, accel::AcceleratorConfig{});
  if (!accelerator.ok()) return 0;

  // What a run would cost, from the shapes Create has checked.
  auto compiled = accel::CompiledModel::Compile(model);
  R2F_FUZZ_CHECK(compiled.ok());
  int64_t macs = 0, elements = 0;
  for (const accel::MacLayer& l : (*compiled)->mac_layers()) macs += l.out_elements() * l.k;
  for (const accel::NodeInfo& node : (*compiled)->nodes()) elements += node.elements;
  if (macs > kMaxMacs || elements > kMaxElements) return 0;

  const int batch = 1 + (data[size - 1] & 1);
  const int64_t image = (*compiled)->nodes().at(0).elements;
  std::vector<uint8_t> pixels(static_cast<size_t>(batch * image));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>(i * 53 + size);
  accel::ImageBatch images{pixels.data(), batch, {}};
  for (int b = 0; b < batch; ++b) images.sample_ids.push_back(static_cast<uint64_t>(b));
  accel::FaultConfig faults;
  faults.ber = 1e-3;
  faults.seed = size;
  accel::TmrConfig tmr;
  tmr.mode = static_cast<accel::TmrMode>((data[0] >> 1) & 3);
  if (tmr.mode == accel::TmrMode::kPartial) {
    if ((*accelerator)->mac_layers().empty()) {
      tmr.mode = accel::TmrMode::kNone;
    } else {
      tmr.protected_layers.push_back((*accelerator)->mac_layers().front());
    }
  }
  const int64_t logits = (*compiled)->nodes().at((*compiled)->output_node()).elements;
  if (data[0] & 8) {
    auto run = (*accelerator)->RunTraining(images, faults, tmr, /*execution_tag=*/3);
    if (!run.ok()) std::fprintf(stderr, "RunTraining: %s\n", run.status().ToString().c_str());
    R2F_FUZZ_CHECK(run.ok());
    R2F_FUZZ_CHECK(static_cast<int64_t>(run->logits.data.size()) == batch * logits);
    R2F_FUZZ_CHECK(run->faulty.size() == (*accelerator)->mac_layers().size());
  } else {
    auto run = (*accelerator)->Infer(images, faults, tmr, /*execution_tag=*/3, true);
    if (!run.ok()) std::fprintf(stderr, "Infer: %s\n", run.status().ToString().c_str());
    R2F_FUZZ_CHECK(run.ok());
    R2F_FUZZ_CHECK(static_cast<int64_t>(run->logits.data.size()) == batch * logits);
  }
  return 0;
}
