// What a user watching a fleet sees: one compact line per device (a redrawn table on a
// terminal, a line per device and interval in a pipe or log) while the jobs run, and the fleet
// table at the end. Thread-safe: every job reports from its own thread.
#pragma once

#include <chrono>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "server/retrain/progress.h"

namespace r2f {

class FleetBoard {
 public:
  FleetBoard(std::vector<std::string> devices, bool redraw,
             std::chrono::milliseconds interval = std::chrono::seconds(10));

  // A job's progress after an iteration.
  void Progress(const RetrainProgress& p);
  // A change of a device's state ("waiting", "leased by <server>", "done", "failed: ...").
  void State(const std::string& device, const std::string& state);

 private:
  struct Row {
    std::string state = "waiting";
    RetrainProgress progress;
    bool has_progress = false;
    std::chrono::steady_clock::time_point last_line{};
  };
  std::string Line(const std::string& device, const Row& row) const;
  void RedrawLocked();

  std::mutex mu_;
  std::vector<std::string> order_;
  std::map<std::string, Row> rows_;
  bool redraw_;
  std::chrono::milliseconds interval_;
  std::chrono::steady_clock::time_point last_redraw_{};
  int drawn_lines_ = 0;
};

}  // namespace r2f
