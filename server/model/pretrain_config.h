// The pretrain config (configs/pretrain/*.yaml) and where its model is cached. LibTorch-free:
// every remote command names its starting model by a pretrain config (model.pretrain_config).
#pragma once

#include <string>

#include "common/base/status.h"
#include "common/data/dataset.h"
#include "common/ir/model_zoo.h"

namespace r2f {

class ConfigMap;

struct TrainSettings {
  int epochs = 4;
  int batch_size = 128;
  double lr = 0.1;  // peak learning rate (cosine schedule after a linear warm-up)
  double momentum = 0.9;
  double weight_decay = 5e-4;  // on conv/linear weights only
  double warmup_epochs = 0.3;
  bool augment = true;  // random 2-pixel shifts and horizontal flips
  uint64_t seed = 1;
  int64_t max_steps = 0;  // 0 = all; a small number gives a quick model (tests)
};

struct PretrainConfig {
  std::string source;  // the config file
  NetworkSpec network;
  DatasetSpec train_data;
  DatasetSpec test_data;
  TrainSettings train;
  int threads = 0;  // 0 = all cores
  int calibration_images = 2048;
  std::string output_dir = "cache/models";
};

// Reads and validates a pretrain config; errors name the key and the file.
Result<PretrainConfig> LoadPretrainConfig(const std::string& path);
// The same from an already opened map (used by the retrain config, which embeds one).
Result<PretrainConfig> ParsePretrainConfig(ConfigMap& map);

// Directory of the cached model for a config (a function of everything that shapes the model).
std::string PretrainRunDir(const PretrainConfig& config);

}  // namespace r2f
