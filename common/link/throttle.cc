#include "common/link/throttle.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <string>
#include <thread>

namespace r2f {

namespace {

class SteadyThrottleClock : public ThrottleClock {
 public:
  double NowSeconds() override {
    return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
  void SleepSeconds(double seconds) override {
    if (seconds > 0) std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  }
};

}  // namespace

ThrottleClock* RealThrottleClock() {
  // Leaked on purpose: throttles may be used from threads that outlive static destruction.
  static ThrottleClock* clock = new SteadyThrottleClock();
  return clock;
}

Result<std::unique_ptr<Throttle>> Throttle::Create(double bytes_per_second, uint64_t burst_bytes,
                                                   ThrottleClock* clock) {
  if (!std::isfinite(bytes_per_second) || bytes_per_second <= 0) {
    return Status::InvalidArgument("throttle: rate must be finite and > 0 bytes/s, got " +
                                   std::to_string(bytes_per_second));
  }
  if (burst_bytes == 0) return Status::InvalidArgument("throttle: burst must be > 0 bytes");
  if (clock == nullptr) clock = RealThrottleClock();
  return std::unique_ptr<Throttle>(new Throttle(bytes_per_second, burst_bytes, clock));
}

Result<std::unique_ptr<Throttle>> Throttle::ForLink(const LinkSpec& spec, Direction dir,
                                                    uint64_t burst_bytes, ThrottleClock* clock) {
  R2F_RETURN_IF_ERROR(ValidateLinkSpec(spec));
  return Create(LinkBandwidthBps(spec, dir) / 8.0, burst_bytes, clock);
}

Throttle::Throttle(double bytes_per_second, uint64_t burst_bytes, ThrottleClock* clock)
    : rate_(bytes_per_second),
      burst_(burst_bytes),
      clock_(clock),
      tokens_(static_cast<double>(burst_bytes)),
      last_refill_(clock->NowSeconds()) {}

double Throttle::Reserve(uint64_t bytes) {
  if (bytes == 0) return 0.0;
  std::lock_guard<std::mutex> lock(mu_);
  double now = clock_->NowSeconds();
  // A clock that stands still (or, for a broken injected clock, steps back) adds nothing.
  double elapsed = std::max(0.0, now - last_refill_);
  last_refill_ = std::max(last_refill_, now);
  tokens_ = std::min(static_cast<double>(burst_), tokens_ + elapsed * rate_);
  tokens_ -= static_cast<double>(bytes);
  // Refill arithmetic leaves rounding crumbs after an exact sleep; a debt worth less than a
  // nanosecond of the link is not worth a sleep.
  double wait = -tokens_ / rate_;
  return wait > 1e-9 ? wait : 0.0;
}

void Throttle::Acquire(uint64_t bytes) {
  double wait = Reserve(bytes);
  if (wait > 0) clock_->SleepSeconds(wait);
}

}  // namespace r2f
