// Tells a reconnect loop from ordinary connection losses: the connection closed again and again
// within a moment of being made. Paho C 1.3.12 can end up resending, after every reconnect, an
// in-flight packet the broker refuses (Mosquitto logs "disconnected due to malformed packet"),
// and then reconnects forever; only a new client, without that packet, gets out
// (paho_client.cc, docs/protocol.md).
#pragma once

#include <chrono>
#include <mutex>

namespace r2f {

class ReconnectLoopDetector {
 public:
  using Clock = std::chrono::steady_clock;

  // A loop: `in_a_row` connections in a row each lost within `short_session` of being made.
  ReconnectLoopDetector(std::chrono::milliseconds short_session, int in_a_row)
      : short_session_(short_session), in_a_row_(in_a_row) {}

  void OnConnected(Clock::time_point now) {
    std::lock_guard<std::mutex> l(mu_);
    connected_at_ = now;
    connected_ = true;
  }

  // True when this loss completes a loop; the count then starts over. A loss without a
  // connection before it (a failed reconnect attempt) neither counts nor breaks the row.
  bool OnLost(Clock::time_point now) {
    std::lock_guard<std::mutex> l(mu_);
    if (!connected_) return false;
    connected_ = false;
    if (now - connected_at_ > short_session_) {
      short_in_a_row_ = 0;
      return false;
    }
    if (++short_in_a_row_ < in_a_row_) return false;
    short_in_a_row_ = 0;
    return true;
  }

 private:
  const std::chrono::milliseconds short_session_;
  const int in_a_row_;
  std::mutex mu_;
  bool connected_ = false;
  Clock::time_point connected_at_;
  int short_in_a_row_ = 0;
};

}  // namespace r2f
