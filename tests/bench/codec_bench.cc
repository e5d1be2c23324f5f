// The exact method's codec work per batch of 16 (default ResNet18 of bench_model.h, BER 1e-4,
// all sites), against the simulated forward pass (ratios in bench_main.cc):
//
//   BM_ExactEncode        the device: every MAC layer in its smallest exact form, similarity
//                         included, as the device runs it (LayerEncoder::EncodeAll, layers in
//                         parallel on the OpenMP threads the forward pass uses)
//   BM_ExactEncodeSerial  the same layers one after another on one thread (EncodeExact only):
//                         the codec's own speed, beside what the parallel encoding gains
//   BM_ExactDecode   the server: every layer decoded and patched against its base (the
//                    layer's clean function of its input, computed once outside the timing)
//   BM_ExactRebuild  the server's whole rebuild, the clean pass in graph order included
//                    (ReconstructLayers): the part the decoding adds to is a forward pass
//
// One training execution (kLocalExact) is recorded once; each iteration codes the same batch.
#include <benchmark/benchmark.h>

#include <memory>
#include <set>
#include <vector>

#include "accel_sim/accelerator.h"
#include "client/layer_encoder.h"
#include "common/codec/patch_codec.h"
#include "server/retrain/reconstruct.h"
#include "tests/bench/bench_model.h"

namespace r2f::bench {
namespace {

struct Recorded {
  std::unique_ptr<accel::Accelerator> device, server;
  accel::TrainingResult run;
  pb::DataReply reply;
  std::vector<std::vector<int8_t>> bases;  // per layer: f_l(x_l), the decoder's base
};

accel::ImageBatch Images() {
  accel::ImageBatch images;
  images.pixels = BenchPixels().data();
  images.batch = kBatch;
  for (int b = 0; b < kBatch; ++b) images.sample_ids.push_back(static_cast<uint64_t>(b));
  return images;
}

const Recorded& Record() {
  static const Recorded* rec = [] {
    auto* r = new Recorded;
    r->device = OrDie(accel::Accelerator::Create(BenchModel(), accel::AcceleratorConfig{}));
    r->server = OrDie(accel::Accelerator::Create(BenchModel(), accel::AcceleratorConfig{}));
    accel::FaultConfig f;
    f.ber = 1e-4;
    r->run = OrDie(r->device->RunTraining(Images(), f, accel::TmrConfig{}, 1,
                                          accel::TrainingReference::kLocalExact));
    r->reply.set_model_version(BenchModel().model_version());
    r->reply.set_reference(pb::REFERENCE_LOCAL_EXACT);
    r->reply.set_inputs(std::string(BenchPixels().begin(), BenchPixels().end()));
    for (int b = 0; b < kBatch; ++b) r->reply.add_sample_ids(static_cast<uint64_t>(b));
    const std::vector<uint32_t>& macs = r->device->mac_layers();
    for (size_t m = 0; m < macs.size(); ++m) {
      const std::vector<int8_t>& y = r->run.faulty[m].data;
      EncodedLayer e = OrDie(EncodeExact(y.data(), r->run.reference[m].data.data(),
                                         r->run.disagreement[m].data(), y.size()));
      pb::EncodedLayer* l = r->reply.add_layers();
      l->set_node_id(macs[m]);
      l->set_elements(y.size());
      l->set_encoding(static_cast<uint32_t>(e.encoding));
      l->set_data(e.bytes);
      l->set_patch(e.patch);
      l->set_patched(e.patched);
    }
    r->bases.resize(macs.size());
    accel::MacOutputHook replay = [r](size_t m, int8_t* out, int64_t n) {
      r->bases[m].assign(out, out + n);
      std::copy(r->run.faulty[m].data.begin(), r->run.faulty[m].data.end(), out);
      return Status::Ok();
    };
    OrDie(r->server->InferWithOverrides(Images(), replay, false));
    return r;
  }();
  return *rec;
}

void BM_ExactEncode(benchmark::State& state) {
  const Recorded& r = Record();
  pb::GetDataRequest request;
  request.set_policy(pb::ENCODE_ADAPTIVE);
  request.set_reference(pb::REFERENCE_LOCAL_EXACT);
  const std::set<uint32_t> no_offline_layers;
  std::vector<LayerOutputs> layers(r.run.faulty.size());
  for (size_t m = 0; m < layers.size(); ++m) {
    layers[m] = {r.device->mac_layers()[m], &r.run.faulty[m].data, &r.run.reference[m].data,
                 &r.run.disagreement[m]};
  }
  size_t bytes = 0;
  for (auto _ : state) {
    pb::DataReply reply;
    LayerEncoder encoder(request, no_offline_layers);
    const Status st = encoder.EncodeAll(layers, reply.mutable_layers());
    if (!st.ok()) state.SkipWithError(st.ToString().c_str());
    bytes = 0;
    for (const pb::EncodedLayer& l : reply.layers()) bytes += l.data().size() + l.patch().size();
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["bytes_per_batch"] = static_cast<double>(bytes);
}

void BM_ExactEncodeSerial(benchmark::State& state) {
  const Recorded& r = Record();
  size_t bytes = 0;
  for (auto _ : state) {
    bytes = 0;
    for (size_t m = 0; m < r.run.faulty.size(); ++m) {
      const std::vector<int8_t>& y = r.run.faulty[m].data;
      Result<EncodedLayer> e = EncodeExact(y.data(), r.run.reference[m].data.data(),
                                           r.run.disagreement[m].data(), y.size());
      bytes += e->bytes.size() + e->patch.size();
    }
    benchmark::DoNotOptimize(bytes);
  }
  state.counters["bytes_per_batch"] = static_cast<double>(bytes);
}

void BM_ExactDecode(benchmark::State& state) {
  const Recorded& r = Record();
  std::vector<int8_t> out;
  for (auto _ : state) {
    for (size_t m = 0; m < r.bases.size(); ++m) {
      out.resize(r.bases[m].size());
      const Status st = Decode(EncodedLayerOf(r.reply.layers(static_cast<int>(m))),
                               r.bases[m].data(), out.data(), out.size());
      if (!st.ok()) state.SkipWithError(st.ToString().c_str());
    }
    benchmark::DoNotOptimize(out.data());
  }
}

void BM_ExactRebuild(benchmark::State& state) {
  const Recorded& r = Record();
  for (auto _ : state) {
    Result<Reconstruction> rec = ReconstructLayers(r.reply, *r.server);
    if (!rec.ok()) state.SkipWithError(rec.status().ToString().c_str());
    benchmark::DoNotOptimize(rec);
  }
}

BENCHMARK(BM_ExactEncode)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ExactEncodeSerial)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ExactDecode)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_ExactRebuild)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace r2f::bench
