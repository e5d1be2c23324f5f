#include "common/net/reconnect_loop.h"

#include <gtest/gtest.h>

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

TEST(ReconnectLoopDetectorTest, ThreeShortConnectionsInARowAreALoop) {
  ReconnectLoopDetector d(milliseconds(500), 3);
  Clock::time_point t{};
  EXPECT_FALSE(Session(&d, &t, milliseconds(2)));
  EXPECT_FALSE(Session(&d, &t, milliseconds(3)));
  EXPECT_TRUE(Session(&d, &t, milliseconds(1)));
  // The count starts over after a loop.
  EXPECT_FALSE(Session(&d, &t, milliseconds(2)));
  EXPECT_FALSE(Session(&d, &t, milliseconds(2)));
  EXPECT_TRUE(Session(&d, &t, milliseconds(2)));
}

TEST(ReconnectLoopDetectorTest, ALongConnectionBreaksTheRow) {
  ReconnectLoopDetector d(milliseconds(500), 3);
  Clock::time_point t{};
  EXPECT_FALSE(Session(&d, &t, milliseconds(2)));
  EXPECT_FALSE(Session(&d, &t, milliseconds(2)));
  EXPECT_FALSE(Session(&d, &t, milliseconds(501)));  // a real session: the broker took us
  EXPECT_FALSE(Session(&d, &t, milliseconds(2)));
  EXPECT_FALSE(Session(&d, &t, milliseconds(2)));
  EXPECT_TRUE(Session(&d, &t, milliseconds(2)));
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
