#include "server/model/pretrain.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "accel_sim/accelerator.h"
#include "accel_sim/evaluate.h"
#include "common/base/atomic_file.h"
#include "common/base/config.h"
#include "common/base/json.h"
#include "common/base/permutation.h"
#include "common/base/random.h"
#include "common/data/normalize.h"
#include "common/ir/graph.h"
#include "server/model/evaluate.h"
#include "server/model/graph_module.h"
#include "server/model/quantize.h"

namespace r2f {
namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

double Seconds(Clock::time_point since) {
  return std::chrono::duration<double>(Clock::now() - since).count();
}

std::string FormatDuration(double s) {
  char buf[32];
  int m = static_cast<int>(s) / 60;
  std::snprintf(buf, sizeof buf, "%dm%02ds", m, static_cast<int>(s) - 60 * m);
  return buf;
}

// Random 2-pixel shifts (zero fill, i.e. a padded random crop) and horizontal flips, in place on
// a batch of uint8 images.
void Augment(std::vector<uint8_t>& batch, int n, int c, int h, int w, Rng& rng) {
  std::vector<uint8_t> img(static_cast<size_t>(c) * h * w);
  for (int i = 0; i < n; ++i) {
    uint8_t* p = batch.data() + static_cast<size_t>(i) * img.size();
    std::copy(p, p + img.size(), img.begin());
    const int dy = static_cast<int>(rng.Below(5)) - 2, dx = static_cast<int>(rng.Below(5)) - 2;
    const bool flip = rng.Below(2) == 1;
    for (int ch = 0; ch < c; ++ch) {
      for (int y = 0; y < h; ++y) {
        for (int x = 0; x < w; ++x) {
          int sy = y + dy, sx = (flip ? w - 1 - x : x) + dx;
          uint8_t v = (sy >= 0 && sy < h && sx >= 0 && sx < w) ? img[(ch * h + sy) * w + sx] : 0;
          p[(ch * h + y) * w + x] = v;
        }
      }
    }
  }
}

struct TrainOutcome {
  double seconds = 0;
};

TrainOutcome Train(GraphModule& module, const Dataset& train, const InputNormalization& norm,
                   const TrainSettings& s) {
  module->train();
  std::vector<torch::Tensor> decay, no_decay;
  for (auto& p : module->named_parameters()) {
    (p.value().dim() > 1 ? decay : no_decay).push_back(p.value());
  }
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      decay, std::make_unique<torch::optim::SGDOptions>(torch::optim::SGDOptions(s.lr)
                                                            .momentum(s.momentum)
                                                            .nesterov(true)
                                                            .weight_decay(s.weight_decay)));
  groups.emplace_back(no_decay,
                      std::make_unique<torch::optim::SGDOptions>(
                          torch::optim::SGDOptions(s.lr).momentum(s.momentum).nesterov(true)));
  torch::optim::SGD optimizer(groups, torch::optim::SGDOptions(s.lr));

  const int64_t n = train.size();
  const int64_t steps_per_epoch = n / s.batch_size;  // the last partial batch is dropped
  int64_t total_steps = steps_per_epoch * s.epochs;
  if (s.max_steps > 0) total_steps = std::min(total_steps, s.max_steps);
  const int64_t warmup =
      std::max<int64_t>(1, static_cast<int64_t>(s.warmup_epochs * steps_per_epoch));
  const pb::Shape& chw = module->graph().input_shape();
  const int c = chw.dims(0), h = chw.dims(1), w = chw.dims(2);
  const size_t image_bytes = static_cast<size_t>(c) * h * w;

  std::vector<uint8_t> batch(image_bytes * s.batch_size);
  std::vector<int64_t> labels(s.batch_size);
  auto start = Clock::now();
  auto last_report = start;
  double loss_avg = 0;
  int64_t correct = 0, seen = 0, step = 0;
  for (int epoch = 0; epoch < s.epochs && step < total_steps; ++epoch) {
    std::vector<uint32_t> order =
        SeededPermutation(n, MixKey({s.seed, static_cast<uint64_t>(epoch)}));
    Rng rng(MixKey({s.seed, static_cast<uint64_t>(epoch), 0xA06ull}));
    for (int64_t b = 0; b < steps_per_epoch && step < total_steps; ++b, ++step) {
      for (int i = 0; i < s.batch_size; ++i) {
        uint32_t idx = order[b * s.batch_size + i];
        std::copy(train.image(idx), train.image(idx) + image_bytes, batch.data() + i * image_bytes);
        labels[i] = train.labels[idx];
      }
      if (s.augment) Augment(batch, s.batch_size, c, h, w, rng);
      // Cosine schedule with linear warm-up.
      double lr = step < warmup ? s.lr * (step + 1) / warmup
                                : 0.5 * s.lr *
                                      (1 + std::cos(M_PI * (step - warmup) /
                                                    std::max<int64_t>(1, total_steps - warmup)));
      for (auto& g : optimizer.param_groups())
        static_cast<torch::optim::SGDOptions&>(g.options()).lr(lr);

      torch::Tensor x = NormalizedInput(batch.data(), s.batch_size, chw, norm);
      torch::Tensor y = torch::from_blob(labels.data(), {s.batch_size}, torch::kInt64);
      optimizer.zero_grad();
      torch::Tensor logits = module->forward(x);
      torch::Tensor loss = torch::nn::functional::cross_entropy(logits, y);
      loss.backward();
      optimizer.step();

      loss_avg = step == 0 ? loss.item<double>() : 0.98 * loss_avg + 0.02 * loss.item<double>();
      correct += logits.argmax(1).eq(y).sum().item<int64_t>();
      seen += s.batch_size;
      if (Seconds(last_report) > 10 || step + 1 == total_steps) {
        last_report = Clock::now();
        double elapsed = Seconds(start);
        double rate = (step + 1) * s.batch_size / elapsed;
        double eta = (total_steps - step - 1) * s.batch_size / rate;
        spdlog::info(
            "pretrain epoch {}/{} step {}/{} loss {:.4f} train-acc {:.1f}% {:.0f} img/s ETA {}",
            epoch + 1, s.epochs, step + 1, total_steps, loss_avg, 100.0 * correct / seen, rate,
            FormatDuration(eta));
        correct = seen = 0;
      }
    }
  }
  return {Seconds(start)};
}

std::string ResultJson(const PretrainConfig& cfg, const PretrainResult& r, const GraphStats& st) {
  const Json json = {{"network", cfg.network.network},
                     {"width", cfg.network.width},
                     {"mac_layers", st.mac_layers},
                     {"params", st.params},
                     {"macs_per_image", st.macs_per_image},
                     {"train_seconds", r.recorded_train_seconds},
                     {"float_top1", r.float_accuracy.Top1()},
                     {"float_top5", r.float_accuracy.Top5()},
                     {"int8_top1", r.int8_accuracy.Top1()},
                     {"int8_top5", r.int8_accuracy.Top5()},
                     {"test_images", r.float_accuracy.count()}};
  return DumpJson(json, 2) + "\n";
}

// The training time a cached run recorded in its pretrain.json; 0 if there is none.
double ReadRecordedSeconds(const std::string& path) {
  Result<Json> json = ReadJsonFile(path);
  if (!json.ok() || !json->is_object() || !json->contains("train_seconds") ||
      !(*json)["train_seconds"].is_number()) {
    return 0;
  }
  return (*json)["train_seconds"].get<double>();
}

}  // namespace

Result<PretrainResult> RunPretrain(const PretrainConfig& cfg) {
  if (cfg.threads > 0)
    torch::set_num_threads(cfg.threads);
  else
    torch::set_num_threads(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
  R2F_ASSIGN_OR_RETURN(Dataset train, LoadDataset(cfg.train_data));
  R2F_ASSIGN_OR_RETURN(Dataset test, LoadDataset(cfg.test_data));
  NetworkSpec spec = cfg.network;
  spec.input_chw = {train.channels, train.height, train.width};
  spec.num_classes = train.num_classes;
  R2F_ASSIGN_OR_RETURN(pb::Graph graph, BuildNetwork(spec));

  PretrainResult result;
  result.run_dir = PretrainRunDir(cfg);
  std::error_code ec;
  fs::create_directories(result.run_dir, ec);
  if (ec) return Status::IoError("cannot create " + result.run_dir + ": " + ec.message());
  const std::string checkpoint = result.run_dir + "/checkpoint.pt";
  const std::string report = result.run_dir + "/pretrain.json";
  result.model_path = result.run_dir + "/model.pb";

  ChannelStats stats = ComputeChannelStats(train);
  InputNormalization norm{stats.mean, stats.stddev};
  torch::manual_seed(cfg.train.seed);
  GraphModule module(graph);
  if (fs::exists(checkpoint)) {
    spdlog::info("pretrain: reusing checkpoint {}", checkpoint);
    try {
      torch::load(module, checkpoint);
    } catch (const c10::Error& e) {
      return Status::Corruption("cannot load checkpoint " + checkpoint + ": " +
                                e.what_without_backtrace());
    }
    result.reused_checkpoint = true;
    result.recorded_train_seconds = ReadRecordedSeconds(report);
  } else {
    spdlog::info("pretrain: {} (width {}), {} parameters, training on {} images", spec.network,
                 spec.width, ComputeStats(graph).params, train.size());
    result.train_seconds = Train(module, train, norm, cfg.train).seconds;
    result.recorded_train_seconds = result.train_seconds;
    std::ostringstream bytes;
    try {
      torch::save(module, bytes);
    } catch (const c10::Error& e) {
      return Status::IoError("cannot save checkpoint " + checkpoint + ": " +
                             e.what_without_backtrace());
    }
    R2F_RETURN_IF_ERROR(WriteFileAtomically(checkpoint, bytes.str()));
  }

  EvalOptions eval;
  result.float_accuracy = EvaluateFloat(module, test, norm, eval);
  spdlog::info("pretrain: float {}", result.float_accuracy.ToString());

  module->eval();
  module->FoldBatchNorm();
  Calibrator calibrator(module, norm);
  std::vector<uint32_t> order = SeededPermutation(train.size(), MixKey({cfg.train.seed, 0xCA1ull}));
  const int calib = std::min<int>(cfg.calibration_images, static_cast<int>(train.size()));
  std::vector<uint8_t> batch;
  for (int start = 0; start < calib; start += 256) {
    int n = std::min(256, calib - start);
    batch.resize(static_cast<size_t>(n) * train.image_bytes());
    for (int i = 0; i < n; ++i) {
      std::copy(train.image(order[start + i]), train.image(order[start + i]) + train.image_bytes(),
                batch.data() + i * train.image_bytes());
    }
    calibrator.Observe(batch.data(), n);
  }
  R2F_ASSIGN_OR_RETURN(QuantFormat format, calibrator.Finish());
  R2F_ASSIGN_OR_RETURN(pb::QuantizedModel model, ConvertFloat2Int(module, format, norm, 1));
  model.set_description("pretrained by r2f_server pretrain --config " + cfg.source);
  R2F_RETURN_IF_ERROR(WriteFileAtomically(result.model_path, model.SerializeAsString()));

  // int8 accuracy on the clean simulated accelerator: the same integers as the fake-quant
  // forward in double (tests/server/device_exactness_test.cc), at a fraction of the cost.
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<accel::Accelerator> device,
                       accel::Accelerator::Create(model, accel::AcceleratorConfig{}));
  R2F_ASSIGN_OR_RETURN(accel::DeviceEvalResult int8_eval,
                       accel::EvaluateOnDevice(*device, test, accel::DeviceEvalOptions{}));
  result.int8_accuracy = int8_eval.accuracy;
  spdlog::info("pretrain: int8 {}", result.int8_accuracy.ToString());
  R2F_RETURN_IF_ERROR(WriteFileAtomically(report, ResultJson(cfg, result, ComputeStats(graph))));
  return result;
}

}  // namespace r2f
