// Device leases (client/device_lease.h): one server at a time, renewed by its requests, taken
// over only after it expired.
#include "client/device_lease.h"

#include <gtest/gtest.h>

namespace r2f {
namespace {

using std::chrono::milliseconds;

struct FakeClock {
  DeviceLease::Clock::time_point now = DeviceLease::Clock::now();
  std::function<DeviceLease::Clock::time_point()> fn() {
    return [this] { return now; };
  }
};

pb::LeaseRequest Ask(const std::string& holder, uint32_t ms = 5000) {
  pb::LeaseRequest r;
  r.set_holder(holder);
  r.set_duration_ms(ms);
  return r;
}

TEST(DeviceLeaseTest, OneHolderAtATimeUntilItStopsRenewing) {
  FakeClock clock;
  DeviceLease lease(clock.fn());
  EXPECT_TRUE(lease.Admit(0).ok()) << "no lease: plain requests are served";
  std::string event;
  pb::LeaseState a = lease.Handle(Ask("A"), &event);
  ASSERT_TRUE(a.granted());
  EXPECT_NE(a.lease_id(), 0u);
  EXPECT_NE(event.find("granted to A"), std::string::npos) << event;

  pb::LeaseState b = lease.Handle(Ask("B"), nullptr);
  EXPECT_FALSE(b.granted());
  EXPECT_EQ(b.holder(), "A");
  EXPECT_EQ(b.lease_id(), a.lease_id());
  // While A holds it: A's requests pass and renew, others are refused with the holder named.
  EXPECT_EQ(lease.Admit(0).code(), Status::Code::kFailedPrecondition);
  EXPECT_NE(lease.Admit(0).message().find("leased to A"), std::string::npos);
  EXPECT_EQ(lease.Admit(a.lease_id() + 1).code(), Status::Code::kFailedPrecondition);
  for (int i = 0; i < 5; ++i) {
    clock.now += milliseconds(4000);  // < 5 s each time: renewed
    EXPECT_TRUE(lease.Admit(a.lease_id()).ok());
  }
  EXPECT_FALSE(lease.Handle(Ask("B"), nullptr).granted());
  // A stops: after the duration B takes over with a new id; A's lease is then refused.
  clock.now += milliseconds(5001);
  event.clear();
  pb::LeaseState b2 = lease.Handle(Ask("B"), &event);
  ASSERT_TRUE(b2.granted());
  EXPECT_NE(b2.lease_id(), a.lease_id());
  EXPECT_NE(event.find("previous holder A: expired"), std::string::npos) << event;
  EXPECT_EQ(lease.Admit(a.lease_id()).code(), Status::Code::kFailedPrecondition);
  EXPECT_TRUE(lease.Admit(b2.lease_id()).ok());
}

TEST(DeviceLeaseTest, TheHolderRenewsWithTheSameIdAndReleases) {
  FakeClock clock;
  DeviceLease lease(clock.fn());
  pb::LeaseState first = lease.Handle(Ask("A"), nullptr);
  clock.now += milliseconds(3000);
  pb::LeaseState again = lease.Handle(Ask("A"), nullptr);
  EXPECT_TRUE(again.granted());
  EXPECT_EQ(again.lease_id(), first.lease_id());
  EXPECT_EQ(again.remaining_ms(), 5000u);
  // Only the holder with the right id releases.
  pb::LeaseRequest release = Ask("B");
  release.set_release(true);
  release.set_lease_id(first.lease_id());
  lease.Handle(release, nullptr);
  EXPECT_EQ(lease.State().holder(), "A");
  release.set_holder("A");
  std::string event;
  lease.Handle(release, &event);
  EXPECT_EQ(lease.State().lease_id(), 0u);
  EXPECT_NE(event.find("released by A"), std::string::npos);
  EXPECT_TRUE(lease.Admit(0).ok());
  EXPECT_EQ(lease.Admit(first.lease_id()).code(), Status::Code::kFailedPrecondition)
      << "a released lease is not held";
}

TEST(DeviceLeaseTest, DurationsAreClamped) {
  FakeClock clock;
  DeviceLease lease(clock.fn());
  EXPECT_EQ(lease.Handle(Ask("A", 1), nullptr).remaining_ms(),
            static_cast<uint64_t>(DeviceLease::kMinDuration.count()));
  clock.now += DeviceLease::kMinDuration;
  EXPECT_EQ(lease.Handle(Ask("B", 4000000000u), nullptr).remaining_ms(),
            static_cast<uint64_t>(DeviceLease::kMaxDuration.count()));
}

}  // namespace
}  // namespace r2f
