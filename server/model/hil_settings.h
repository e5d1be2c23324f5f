// The optimiser settings of the hardware-in-the-loop training step (server/model/hil_trainer.h),
// in a header of their own so that configs can hold them without LibTorch's headers.
#pragma once

namespace r2f {

struct HilSettings {
  // Fine-tuning a converged, BN-folded model with batch 16: 1e-3 costs ~1 point of clean top-1
  // in the first 100 steps at low BER; 3e-4 keeps it and gains as much at high BER
  // (docs/retraining.md, "Learning rate").
  double lr = 0.0003;
  double momentum = 0.9;
  double weight_decay = 0.0;
};

// LibTorch's intra-op threads for training steps (process-wide; 0 leaves the default). A
// server running several jobs at once gives each a share of the cores.
void SetTrainingThreads(int threads);

}  // namespace r2f
