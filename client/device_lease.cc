#include "client/device_lease.h"

#include <algorithm>
#include <random>

namespace r2f {
namespace {

uint64_t RandomLeaseId() {
  std::random_device rd;
  uint64_t id = 0;
  while (id == 0) id = (uint64_t{rd()} << 32) ^ rd();
  return id;
}

}  // namespace

std::string LeaseHex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

DeviceLease::DeviceLease(std::function<Clock::time_point()> clock) : clock_(std::move(clock)) {}

bool DeviceLease::Held() const { return id_ != 0 && Now() < expiry_; }

pb::LeaseState DeviceLease::State() const {
  pb::LeaseState s;
  if (!Held()) return s;
  s.set_lease_id(id_);
  s.set_holder(holder_);
  s.set_remaining_ms(static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::milliseconds>(expiry_ - Now()).count()));
  return s;
}

pb::LeaseState DeviceLease::Handle(const pb::LeaseRequest& request, std::string* event) {
  if (request.release()) {
    if (Held() && request.holder() == holder_ && request.lease_id() == id_) {
      if (event) *event = "lease " + LeaseHex(id_) + " released by " + holder_;
      id_ = 0;
      holder_.clear();
    }
    return State();
  }
  const bool held = Held();
  if (held && request.holder() != holder_) return State();  // someone else's, not granted
  duration_ =
      std::clamp(std::chrono::milliseconds(request.duration_ms()), kMinDuration, kMaxDuration);
  if (!held) {
    const std::string previous = holder_;
    id_ = RandomLeaseId();
    holder_ = request.holder();
    if (event) {
      *event = "lease " + LeaseHex(id_) + " granted to " + holder_ + " for " +
               std::to_string(duration_.count()) + " ms" +
               (previous.empty() ? "" : " (previous holder " + previous + ": expired)");
    }
  }
  expiry_ = Now() + duration_;
  pb::LeaseState s = State();
  s.set_granted(true);
  return s;
}

Status DeviceLease::Admit(uint64_t lease_id) {
  if (Held()) {
    if (lease_id == id_) {
      expiry_ = Now() + duration_;
      return Status::Ok();
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(expiry_ - Now());
    return Status::FailedPrecondition(
        "device is leased to " + holder_ + " for " + std::to_string(left.count()) +
        " ms more (the request " +
        (lease_id == 0 ? "carries no lease" : "carries lease " + LeaseHex(lease_id)) + ")");
  }
  if (lease_id != 0) {
    return Status::FailedPrecondition("lease " + LeaseHex(lease_id) +
                                      " is not held (it expired, was released, or the device "
                                      "restarted): acquire the lease again");
  }
  return Status::Ok();
}

}  // namespace r2f
