#include "common/net/reconnect_loop.h"

#include <gtest/gtest.h>

#include <vector>

namespace r2f {
namespace {

using std::chrono::milliseconds;
using Clock = ReconnectLoopDetector::Clock;

// One connection made at `t` and lost `lasted` later; whether that loss completed a loop.
bool Session(ReconnectLoopDetector* d, Clock::time_point* t, milliseconds lasted) {
  d->OnConnected(*t);
  *t += lasted;
  const bool loop = d->OnLost(*t);
  *t += milliseconds(1000);  // the reconnect delay
  return loop;
}

// Connections of the given lengths (ms) one after another; which losses completed a loop.
std::vector<bool> Loops(const std::vector<int>& lengths_ms) {
  ReconnectLoopDetector d(milliseconds(500), 3);
  Clock::time_point t{};
  std::vector<bool> loops;
  for (int ms : lengths_ms) loops.push_back(Session(&d, &t, milliseconds(ms)));
  return loops;
}

TEST(ReconnectLoopDetectorTest, ThreeShortConnectionsInARowAreALoop) {
  // The count starts over after a loop.
  EXPECT_EQ(Loops({2, 3, 1, 2, 2, 2}), (std::vector<bool>{false, false, true, false, false, true}));
}

TEST(ReconnectLoopDetectorTest, ALongConnectionBreaksTheRow) {
  // 501 ms: a real session, the broker took us.
  EXPECT_EQ(Loops({2, 2, 501, 2, 2, 2}),
            (std::vector<bool>{false, false, false, false, false, true}));
}

TEST(ReconnectLoopDetectorTest, LossesWithoutAConnectionDoNotCount) {
  // Failed reconnect attempts (the broker is down) report no connection: they neither count
  // nor break the row.
  ReconnectLoopDetector d(milliseconds(500), 2);
  Clock::time_point t{};
  EXPECT_FALSE(d.OnLost(t));
  EXPECT_FALSE(Session(&d, &t, milliseconds(2)));
  EXPECT_FALSE(d.OnLost(t));
  EXPECT_FALSE(d.OnLost(t + milliseconds(5)));
  EXPECT_TRUE(Session(&d, &t, milliseconds(2)));
}

}  // namespace
}  // namespace r2f
