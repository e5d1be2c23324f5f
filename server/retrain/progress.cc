#include "server/retrain/progress.h"

#include <unistd.h>

#include <cstdio>

#include "common/base/logging.h"

namespace r2f {

std::string FormatDuration(double s) {
  char buf[32];
  const int total = static_cast<int>(s + 0.5);
  if (total >= 3600) {
    std::snprintf(buf, sizeof buf, "%dh%02dm", total / 3600, total % 3600 / 60);
  } else {
    std::snprintf(buf, sizeof buf, "%dm%02ds", total / 60, total % 60);
  }
  return buf;
}

double EtaSeconds(const RetrainProgress& p) {
  const int64_t ran = p.done - p.first;
  return ran > 0 ? p.elapsed_s / ran * (p.total - p.done) : 0.0;
}

ProgressPrinter::ProgressPrinter(Style style, std::chrono::milliseconds interval)
    : bar_(style == Style::kBar || (style == Style::kAuto && isatty(STDERR_FILENO) == 1)),
      interval_(interval) {}

void ProgressPrinter::operator()(const RetrainProgress& p) {
  const auto now = std::chrono::steady_clock::now();
  if (!bar_ && !p.finished && now - last_line_ < interval_) return;
  const int64_t hits = p.hits - hits_at_last_, seen = p.seen - seen_at_last_;
  const double accuracy = seen > 0 ? 100.0 * hits / seen : 0.0;
  if (bar_) {
    constexpr int kWidth = 30;
    const int filled = p.total > 0 ? static_cast<int>(kWidth * p.done / p.total) : kWidth;
    std::fprintf(stderr,
                 "\r\033[K%s [%.*s%*s] %lld/%lld loss %.4f acc %.1f%% up %.2f MB/it ETA %s%s",
                 p.device.c_str(), filled, "==============================", kWidth - filled, "",
                 static_cast<long long>(p.done), static_cast<long long>(p.total), p.loss,
                 p.seen > 0 ? 100.0 * p.hits / p.seen : 0.0, p.uplink_mb,
                 FormatDuration(EtaSeconds(p)).c_str(), p.finished ? "\n" : "");
    std::fflush(stderr);
    return;
  }
  last_line_ = now;
  hits_at_last_ = p.hits;
  seen_at_last_ = p.seen;
  GetLogger("retrain")->info("{} it {}/{} loss {:.4f} running-acc {:.1f}% up {:.2f} MB/it ETA {}",
                             p.device, p.done, p.total, p.loss, accuracy, p.uplink_mb,
                             FormatDuration(EtaSeconds(p)));
}

}  // namespace r2f
