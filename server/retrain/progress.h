// Progress of retraining runs as a user watches it: one line per interval in a log or pipe, a
// bar redrawn in place on a terminal. The loop reports after every iteration; the printer
// decides what to show.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

namespace r2f {

struct RetrainProgress {
  std::string device;
  int64_t done = 0;       // iterations completed, resumed ones included
  int64_t total = 0;      // iterations of the whole run
  int64_t first = 0;      // the first iteration this process ran (after a resume: > 0)
  double loss = 0;        // exponential moving average of the batch loss
  int64_t hits = 0;       // correct top-1 predictions of the device's logits so far (this process)
  int64_t seen = 0;       // samples trained on so far (this process)
  double uplink_mb = 0;   // of the last iteration
  double elapsed_s = 0;   // wall time since this process started the loop
  bool finished = false;  // the last iteration
};

// Called on the run's thread after every iteration.
using ProgressSink = std::function<void(const RetrainProgress&)>;

// "1h02m" / "4m05s".
std::string FormatDuration(double seconds);

// The estimated time to the end of the run.
double EtaSeconds(const RetrainProgress& p);

// The progress of one run on stderr: on a terminal a bar redrawn after every iteration; in a
// pipe or file one info line per `interval` and the last one. The accuracy shown is that of
// the iterations since the previous line.
class ProgressPrinter {
 public:
  enum class Style { kAuto, kBar, kLines };
  explicit ProgressPrinter(Style style = Style::kAuto,
                           std::chrono::milliseconds interval = std::chrono::seconds(10));
  void operator()(const RetrainProgress& p);

 private:
  bool bar_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_line_{};
  int64_t hits_at_last_ = 0, seen_at_last_ = 0;
};

}  // namespace r2f
