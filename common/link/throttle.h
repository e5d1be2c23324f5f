// A thread-safe token-bucket throttle: makes traffic through it keep to a link's bit rate, so a
// loopback MQTT run can be slowed to what a real IoT link would allow (docs/link_and_codec.md,
// optional).
//
// The bucket holds at most `burst_bytes` tokens and refills at `bytes_per_second`; it starts
// full. Acquire(n) takes n tokens and, if that leaves the bucket in debt, sleeps until the debt
// is repaid. Because a caller reserves its tokens before it sleeps, concurrent callers queue
// behind each other and the long-run rate holds for all of them together: over any interval
// [t0, t1] the bytes granted are at most burst_bytes + bytes_per_second * (t1 - t0). A request
// larger than the burst is allowed; it simply waits longer. Only the bit rate is shaped; the
// link's latency is not simulated here.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>

#include "common/base/status.h"
#include "common/link/link_model.h"

namespace r2f {

// Time source and sleeper of a Throttle. Injectable so that tests can check the schedule
// without sleeping. Implementations must be thread-safe.
class ThrottleClock {
 public:
  virtual ~ThrottleClock() = default;
  virtual double NowSeconds() = 0;  // monotonic, arbitrary origin
  virtual void SleepSeconds(double seconds) = 0;
};

// steady_clock and std::this_thread::sleep_for; process-wide, never destroyed.
ThrottleClock* RealThrottleClock();

class Throttle {
 public:
  // bytes_per_second finite and > 0, burst_bytes > 0. `clock` (nullptr: the real clock) must
  // outlive the throttle.
  static Result<std::unique_ptr<Throttle>> Create(double bytes_per_second, uint64_t burst_bytes,
                                                  ThrottleClock* clock = nullptr);
  // The rate of `dir` of a valid link spec.
  static Result<std::unique_ptr<Throttle>> ForLink(const LinkSpec& spec, Direction dir,
                                                   uint64_t burst_bytes,
                                                   ThrottleClock* clock = nullptr);

  Throttle(const Throttle&) = delete;
  Throttle& operator=(const Throttle&) = delete;

  // Takes `bytes` tokens now and returns how long the caller must wait before sending them
  // (0 when the bucket covered them). Does not sleep.
  double Reserve(uint64_t bytes);
  // Reserve(bytes), then sleeps for the returned time (outside the lock).
  void Acquire(uint64_t bytes);

  double bytes_per_second() const { return rate_; }
  uint64_t burst_bytes() const { return burst_; }

 private:
  Throttle(double bytes_per_second, uint64_t burst_bytes, ThrottleClock* clock);

  const double rate_;
  const uint64_t burst_;
  ThrottleClock* const clock_;
  std::mutex mu_;
  double tokens_;       // guarded by mu_; negative = debt
  double last_refill_;  // guarded by mu_; clock time of the last refill
};

}  // namespace r2f
