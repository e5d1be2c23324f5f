#include "common/net/tcp_nodelay.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>

namespace r2f {

uint16_t BrokerPort(const std::string& uri) {
  const size_t scheme = uri.find("://");
  if (scheme == std::string::npos) return 0;
  const std::string s = uri.substr(0, scheme);
  const bool tls = s == "ssl" || s == "mqtts" || s == "wss";
  std::string rest = uri.substr(scheme + 3);
  rest = rest.substr(0, rest.find('/'));
  const size_t bracket = rest.rfind(']');  // [v6 address]:port
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || (bracket != std::string::npos && colon < bracket)) {
    return tls ? 8883 : 1883;
  }
  const long port = std::strtol(rest.c_str() + colon + 1, nullptr, 10);
  return port > 0 && port < 65536 ? static_cast<uint16_t>(port) : 0;
}

int DisableNagleTowards(const std::vector<uint16_t>& ports) {
  int set = 0;
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd", ec)) {
    char* end = nullptr;
    const long fd = std::strtol(entry.path().filename().c_str(), &end, 10);
    if (end == nullptr || *end != '\0' || fd < 0) continue;
    int type = 0;
    socklen_t len = sizeof(type);
    if (getsockopt(static_cast<int>(fd), SOL_SOCKET, SO_TYPE, &type, &len) != 0 ||
        type != SOCK_STREAM) {
      continue;  // not a socket, or not TCP-like
    }
    sockaddr_storage peer{};
    socklen_t peer_len = sizeof(peer);
    if (getpeername(static_cast<int>(fd), reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) {
      continue;
    }
    uint16_t port = 0;
    if (peer.ss_family == AF_INET) {
      port = ntohs(reinterpret_cast<const sockaddr_in*>(&peer)->sin_port);
    } else if (peer.ss_family == AF_INET6) {
      port = ntohs(reinterpret_cast<const sockaddr_in6*>(&peer)->sin6_port);
    } else {
      continue;
    }
    if (std::find(ports.begin(), ports.end(), port) == ports.end()) continue;
    const int on = 1;
    if (setsockopt(static_cast<int>(fd), IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) == 0) ++set;
  }
  return set;
}

}  // namespace r2f
