// common/net/tcp_nodelay.h: the broker port is read from every URI form the daemons accept, and
// Nagle's algorithm is turned off on exactly the sockets connected to the given ports.
#include "common/net/tcp_nodelay.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

namespace r2f {
namespace {

TEST(TcpNoDelayTest, BrokerPortOfEveryUriForm) {
  EXPECT_EQ(BrokerPort("tcp://127.0.0.1:18830"), 18830);
  EXPECT_EQ(BrokerPort("mqtt://broker.example"), 1883);
  EXPECT_EQ(BrokerPort("ssl://broker.example:8884"), 8884);
  EXPECT_EQ(BrokerPort("ssl://broker.example"), 8883);
  EXPECT_EQ(BrokerPort("tcp://[::1]:2000"), 2000);
  EXPECT_EQ(BrokerPort("tcp://[::1]"), 1883);
  EXPECT_EQ(BrokerPort("ws://host:9001/mqtt"), 9001);
  EXPECT_EQ(BrokerPort("no scheme"), 0);
  EXPECT_EQ(BrokerPort("tcp://host:99999"), 0);
}

// A listening socket on a free loopback port and one client connected to it.
struct Connection {
  int listener = -1, client = -1, accepted = -1;
  uint16_t port = 0;
  Connection() {
    listener = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listener, reinterpret_cast<sockaddr*>(&addr), len) != 0 || listen(listener, 1) != 0 ||
        getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return;
    }
    port = ntohs(addr.sin_port);
    client = socket(AF_INET, SOCK_STREAM, 0);
    if (connect(client, reinterpret_cast<sockaddr*>(&addr), len) != 0) return;
    accepted = accept(listener, nullptr, nullptr);
  }
  ~Connection() {
    for (int fd : {listener, client, accepted}) {
      if (fd >= 0) close(fd);
    }
  }
};

bool NoDelay(int fd) {
  int on = 0;
  socklen_t len = sizeof(on);
  EXPECT_EQ(getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
  return on != 0;
}

TEST(TcpNoDelayTest, SetsItOnlyTowardsTheGivenPorts) {
  Connection broker, other;
  ASSERT_GE(broker.accepted, 0);
  ASSERT_GE(other.accepted, 0);
  ASSERT_FALSE(NoDelay(broker.client));  // Linux's default: Nagle on
  EXPECT_EQ(DisableNagleTowards({broker.port}), 1);
  EXPECT_TRUE(NoDelay(broker.client));
  EXPECT_FALSE(NoDelay(other.client));
  EXPECT_FALSE(NoDelay(broker.accepted));  // its peer port is the client's, not the broker's
  EXPECT_EQ(DisableNagleTowards({}), 0);
}

}  // namespace
}  // namespace r2f
