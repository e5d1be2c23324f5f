#include "server/model/pretrain_config.h"

#include <cstdio>
#include <sstream>

#include "common/base/config.h"
#include "common/base/random.h"

namespace r2f {
namespace {

// FNV-1a: a stable 64-bit hash for cache keys (std::hash is not stable across versions).
uint64_t Fnv1a(const std::string& s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

std::string DatasetKey(const DatasetSpec& d) {
  return d.format + ":" + d.dir + ":" + d.split + ":" + std::to_string(d.limit);
}

}  // namespace

Result<PretrainConfig> ParsePretrainConfig(ConfigMap& map) {
  PretrainConfig cfg;
  cfg.source = map.origin();
  ConfigMap net = map.Section("network");
  cfg.network.network = net.GetChoice("name", "resnet18", NetworkNames());
  auto def = DefaultNetworkSpec(cfg.network.network);
  if (def.ok()) cfg.network = *def;
  cfg.network.width = net.GetDouble("width", cfg.network.width, 0.05, 4.0);

  ConfigMap data = map.Section("data");
  ConfigMap train_data = data.Section("train");
  ConfigMap test_data = data.Section("test");
  cfg.test_data.split = "test";
  R2F_RETURN_IF_ERROR(ParseDatasetSpec(train_data, &cfg.train_data));
  R2F_RETURN_IF_ERROR(ParseDatasetSpec(test_data, &cfg.test_data));

  ConfigMap t = map.Section("train");
  TrainSettings& s = cfg.train;
  s.epochs = static_cast<int>(t.GetInt("epochs", s.epochs, 1, 1000));
  s.batch_size = static_cast<int>(t.GetInt("batch_size", s.batch_size, 1, 4096));
  s.lr = t.GetDouble("lr", s.lr, 1e-6, 10);
  s.momentum = t.GetDouble("momentum", s.momentum, 0, 0.999);
  s.weight_decay = t.GetDouble("weight_decay", s.weight_decay, 0, 0.1);
  s.warmup_epochs = t.GetDouble("warmup_epochs", s.warmup_epochs, 0, 100);
  s.augment = t.GetBool("augment", s.augment);
  s.seed = static_cast<uint64_t>(t.GetInt("seed", static_cast<int64_t>(s.seed), 0, INT64_MAX));
  s.max_steps = t.GetInt("max_steps", s.max_steps, 0, INT64_MAX);
  cfg.threads = static_cast<int>(map.GetInt("threads", cfg.threads, 0, 256));

  ConfigMap q = map.Section("quantization");
  cfg.calibration_images =
      static_cast<int>(q.GetInt("calibration_images", cfg.calibration_images, 1, 1000000));
  ConfigMap out = map.Section("output");
  cfg.output_dir = out.GetString("dir", cfg.output_dir);
  return cfg;
}

Result<PretrainConfig> LoadPretrainConfig(const std::string& path) {
  R2F_ASSIGN_OR_RETURN(ConfigMap map, ConfigMap::LoadFile(path));
  Result<PretrainConfig> cfg = ParsePretrainConfig(map);
  R2F_RETURN_IF_ERROR(map.Finish());
  return cfg;
}

std::string PretrainRunDir(const PretrainConfig& c) {
  std::ostringstream key;
  const TrainSettings& s = c.train;
  key << c.network.network << "|" << c.network.width << "|" << c.network.num_classes << "|"
      << DatasetKey(c.train_data) << "|" << s.epochs << "|" << s.batch_size << "|" << s.lr << "|"
      << s.momentum << "|" << s.weight_decay << "|" << s.warmup_epochs << "|" << s.augment << "|"
      << s.seed << "|" << s.max_steps << "|" << c.calibration_images;
  char hash[17];
  std::snprintf(hash, sizeof hash, "%016llx", static_cast<unsigned long long>(Fnv1a(key.str())));
  return c.output_dir + "/" + c.network.network + "-" + std::string(hash, 10);
}

}  // namespace r2f
