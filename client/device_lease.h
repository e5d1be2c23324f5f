// Which server may drive a device (docs/fleet.md, "Several servers on one fleet: leases"). Several
// server processes share a fleet without a coordinator of their own: the device itself grants a
// lease to one server at a time, and refuses requests that do not carry it. Every admitted request
// renews the lease; a server that dies stops renewing, and after the lease's duration another
// server may take the device over (and resume its run from the shared checkpoint).
//
// The lease id is random: a device that restarted has no lease, so the old holder's requests
// are refused ("lease not held") until it asks again, and it cannot be confused with a new
// holder. Requests without a lease id (a plain `r2f_server retrain`) are served while nobody
// holds the lease. Not thread-safe: the device serialises requests.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

// "00000000deadbeef": how lease ids appear in logs.
std::string LeaseHex(uint64_t lease_id);

class DeviceLease {
 public:
  using Clock = std::chrono::steady_clock;

  // Bounds of a requested duration (shorter or longer requests are clamped).
  static constexpr std::chrono::milliseconds kMinDuration{1000};
  static constexpr std::chrono::milliseconds kMaxDuration{3600 * 1000};

  // `clock` is injectable for tests (empty: steady_clock).
  explicit DeviceLease(std::function<Clock::time_point()> clock = {});

  // MSG_LEASE: grants the lease to `request.holder` when nobody holds it, it has expired, or
  // the holder already holds it (renewed, same id); otherwise says who holds it. A release by
  // the holder frees it. `event` (may be null) gets a line for the log when the holder changes.
  pb::LeaseState Handle(const pb::LeaseRequest& request, std::string* event);

  // Every other request: OK when it carries the current lease (renewed) or when nobody holds
  // one and it carries none; FailedPrecondition naming the holder otherwise.
  Status Admit(uint64_t lease_id);

  // The lease now (granted is false; remaining_ms 0 when nobody holds it).
  pb::LeaseState State() const;

 private:
  bool Held() const;
  Clock::time_point Now() const { return clock_ ? clock_() : Clock::now(); }

  std::function<Clock::time_point()> clock_;
  uint64_t id_ = 0;  // 0: never granted or released
  std::string holder_;
  std::chrono::milliseconds duration_{0};
  Clock::time_point expiry_{};
};

}  // namespace r2f
