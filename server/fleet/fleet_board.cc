#include "server/fleet/fleet_board.h"

#include <cstdio>

#include "common/base/logging.h"

namespace r2f {

FleetBoard::FleetBoard(std::vector<std::string> devices, bool redraw,
                       std::chrono::milliseconds interval)
    : order_(std::move(devices)), redraw_(redraw), interval_(interval) {
  for (const std::string& d : order_) rows_[d];
}

std::string FleetBoard::Line(const std::string& device, const Row& row) const {
  char buf[256];
  if (!row.has_progress || row.state != "running") {
    std::snprintf(buf, sizeof buf, "%-12s %s", device.c_str(), row.state.c_str());
    return buf;
  }
  const RetrainProgress& p = row.progress;
  std::snprintf(buf, sizeof buf, "%-12s it %lld/%lld loss %.4f acc %.1f%% up %.2f MB/it ETA %s",
                device.c_str(), static_cast<long long>(p.done), static_cast<long long>(p.total),
                p.loss, p.seen > 0 ? 100.0 * p.hits / p.seen : 0.0, p.uplink_mb,
                FormatDuration(EtaSeconds(p)).c_str());
  return buf;
}

void FleetBoard::RedrawLocked() {
  // Up to the first line of the table, then every row cleared and written again.
  if (drawn_lines_ > 0) std::fprintf(stderr, "\033[%dA", drawn_lines_);
  for (const std::string& d : order_) {
    std::fprintf(stderr, "\r\033[K%s\n", Line(d, rows_[d]).c_str());
  }
  std::fflush(stderr);
  drawn_lines_ = static_cast<int>(order_.size());
  last_redraw_ = std::chrono::steady_clock::now();
}

void FleetBoard::Progress(const RetrainProgress& p) {
  std::lock_guard<std::mutex> l(mu_);
  Row& row = rows_[p.device];
  row.progress = p;
  row.has_progress = true;
  row.state = "running";
  const auto now = std::chrono::steady_clock::now();
  if (redraw_) {
    if (p.finished || now - last_redraw_ >= std::chrono::milliseconds(200)) RedrawLocked();
    return;
  }
  if (!p.finished && now - row.last_line < interval_) return;
  row.last_line = now;
  GetLogger("fleet")->info("{}", Line(p.device, row));
}

void FleetBoard::State(const std::string& device, const std::string& state) {
  std::lock_guard<std::mutex> l(mu_);
  Row& row = rows_[device];
  if (row.state == state) return;
  row.state = state;
  if (redraw_) {
    RedrawLocked();
  } else {
    GetLogger("fleet")->info("{}", Line(device, row));
  }
}

}  // namespace r2f
