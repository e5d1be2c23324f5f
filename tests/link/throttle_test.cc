#include "common/link/throttle.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

namespace r2f {
namespace {

// A clock that only moves when told to. With `advance_on_sleep` a sleep moves it forward (one
// caller at a time, as in a single-threaded schedule); without, sleeps are only recorded.
class FakeClock : public ThrottleClock {
 public:
  explicit FakeClock(bool advance_on_sleep) : advance_on_sleep_(advance_on_sleep) {}
  double NowSeconds() override {
    std::lock_guard<std::mutex> lock(mu_);
    return now_;
  }
  void SleepSeconds(double seconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    sleeps_.push_back(seconds);
    if (advance_on_sleep_) now_ += seconds;
  }
  void Advance(double seconds) {
    std::lock_guard<std::mutex> lock(mu_);
    now_ += seconds;
  }
  std::vector<double> sleeps() {
    std::lock_guard<std::mutex> lock(mu_);
    return sleeps_;
  }

 private:
  const bool advance_on_sleep_;
  std::mutex mu_;
  double now_ = 100.0;
  std::vector<double> sleeps_;
};

std::unique_ptr<Throttle> MakeThrottle(double rate, uint64_t burst, ThrottleClock* clock) {
  Result<std::unique_ptr<Throttle>> t = Throttle::Create(rate, burst, clock);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

TEST(ThrottleTest, BurstPassesThenRateApplies) {
  FakeClock clock(/*advance_on_sleep=*/true);
  auto t = MakeThrottle(1000.0, 500, &clock);
  ASSERT_NE(t, nullptr);
  t->Acquire(500);  // the full bucket covers it
  EXPECT_TRUE(clock.sleeps().empty());
  t->Acquire(100);
  t->Acquire(250);
  ASSERT_EQ(clock.sleeps().size(), 2u);
  EXPECT_NEAR(clock.sleeps()[0], 0.100, 1e-12);
  EXPECT_NEAR(clock.sleeps()[1], 0.250, 1e-12);
  EXPECT_EQ(t->Reserve(0), 0.0);
}

TEST(ThrottleTest, IdleRefillIsCappedAtBurst) {
  FakeClock clock(true);
  auto t = MakeThrottle(1000.0, 500, &clock);
  ASSERT_NE(t, nullptr);
  clock.Advance(1000.0);  // a long idle time must not bank more than one burst
  EXPECT_NEAR(t->Reserve(1500), 1.0, 1e-12);
}

TEST(ThrottleTest, RequestLargerThanBurstWaitsForTheExcess) {
  FakeClock clock(true);
  auto t = MakeThrottle(2000.0, 100, &clock);
  ASSERT_NE(t, nullptr);
  EXPECT_NEAR(t->Reserve(10100), 5.0, 1e-12);
  // The debt is carried: the next byte waits for the previous excess to drain first.
  EXPECT_NEAR(t->Reserve(1), 5.0 + 1.0 / 2000.0, 1e-12);
}

// Whatever the request sizes, a caller granted at time t has seen at most
// burst + rate * (t - t0) bytes granted in total, and the schedule is tight (not slower).
TEST(ThrottleTest, LongRunScheduleNeverExceedsRate) {
  FakeClock clock(true);
  const double rate = 5.76e6 / 8;  // HSPA uplink
  const uint64_t burst = 64 * 1024;
  Result<LinkSpec> hspa = LinkPreset("hspa");
  ASSERT_TRUE(hspa.ok());
  auto made = Throttle::ForLink(*hspa, Direction::kUplink, burst, &clock);
  ASSERT_TRUE(made.ok());
  std::unique_ptr<Throttle> t = std::move(made).value();
  EXPECT_DOUBLE_EQ(t->bytes_per_second(), rate);

  std::mt19937 rng(7);
  std::uniform_int_distribution<uint64_t> size(1, 200000);
  const double t0 = clock.NowSeconds();
  uint64_t granted = 0;
  for (int i = 0; i < 2000; ++i) {
    if (i % 50 == 0) clock.Advance(0.01 * (i % 7));  // some idle gaps
    uint64_t n = size(rng);
    t->Acquire(n);
    granted += n;
    double now = clock.NowSeconds();
    ASSERT_LE(static_cast<double>(granted), burst + rate * (now - t0) + 1e-6 * granted) << i;
  }
  // Tight: traffic was always queued after the first burst except for idle gaps, so the
  // elapsed time is what the rate demands, within the idle time that was added.
  double elapsed = clock.NowSeconds() - t0;
  double idle = 0;
  for (int i = 0; i < 2000; i += 50) idle += 0.01 * (i % 7);
  EXPECT_GE(elapsed, (static_cast<double>(granted) - burst) / rate - 1e-6);
  EXPECT_LE(elapsed, (static_cast<double>(granted) - burst) / rate + idle + 1e-6);
}

// Concurrent callers with a frozen clock: every reservation must be accounted exactly once,
// so the multiset of waits is {max(0, k*n - burst) / rate : k = 1..N} whatever the order.
TEST(ThrottleTest, ConcurrentReservationsAreSerialised) {
  FakeClock clock(/*advance_on_sleep=*/false);
  const double rate = 1e4;
  const uint64_t burst = 1000, n = 100;
  auto t = MakeThrottle(rate, burst, &clock);
  ASSERT_NE(t, nullptr);
  const int kThreads = 8, kPerThread = 100;
  std::vector<std::thread> threads;
  std::mutex mu;
  std::vector<double> waits;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([&] {
      std::vector<double> local;
      for (int k = 0; k < kPerThread; ++k) local.push_back(t->Reserve(n));
      std::lock_guard<std::mutex> lock(mu);
      waits.insert(waits.end(), local.begin(), local.end());
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(waits.size(), static_cast<size_t>(kThreads * kPerThread));
  std::sort(waits.begin(), waits.end());
  for (size_t k = 1; k <= waits.size(); ++k) {
    double expected = std::max(0.0, static_cast<double>(k * n) - burst) / rate;
    ASSERT_NEAR(waits[k - 1], expected, 1e-9) << k;
  }
}

TEST(ThrottleTest, RealClockSleepsAtLeastTheScheduledTime) {
  auto t = MakeThrottle(1e6, 1000, nullptr);  // 1 MB/s, 1 KB burst
  ASSERT_NE(t, nullptr);
  auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 11; ++i) t->Acquire(1000);
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_GE(elapsed, 0.0099);  // 10 KB beyond the burst at 1 MB/s
}

TEST(ThrottleTest, RejectsBadParameters) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  EXPECT_FALSE(Throttle::Create(0.0, 10).ok());
  EXPECT_FALSE(Throttle::Create(-1.0, 10).ok());
  EXPECT_FALSE(Throttle::Create(nan, 10).ok());
  EXPECT_FALSE(Throttle::Create(std::numeric_limits<double>::infinity(), 10).ok());
  EXPECT_FALSE(Throttle::Create(100.0, 0).ok());
  LinkSpec bad{"custom", 0.0, 1.0, 0.0};
  EXPECT_FALSE(Throttle::ForLink(bad, Direction::kUplink, 10).ok());
}

}  // namespace
}  // namespace r2f
