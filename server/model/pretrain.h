// `r2f_server pretrain`: float training with BatchNorm, checkpoint, BN folding, calibration and
// export of the QuantizedModel (convertFloat2Int), then float and int8 evaluation.
#pragma once

#include <string>

#include "common/base/metrics.h"
#include "common/base/status.h"
#include "server/model/pretrain_config.h"

namespace r2f {

struct PretrainResult {
  std::string run_dir;     // <output_dir>/<network>-<hash of the training settings>
  std::string model_path;  // the exported QuantizedModel
  bool reused_checkpoint = false;
  double train_seconds = 0;           // of this run (0 when reused)
  double recorded_train_seconds = 0;  // of the run that produced the checkpoint
  Accuracy float_accuracy;
  Accuracy int8_accuracy;
};

// Trains (or reuses the cached checkpoint of an identical config), exports, evaluates.
Result<PretrainResult> RunPretrain(const PretrainConfig& config);

}  // namespace r2f
