// An MQTT-aware loopback TCP proxy that injects message faults, for the fault campaign
// (tests/integration/campaign_test.cc, docs/fault_campaign.md). Header-only: the test CMake
// compiles only *_test.cc files.
//
// The device daemon and the server connect to the proxy instead of the broker. Every accepted
// connection gets its own upstream connection to the broker; the proxy cuts both byte streams
// into MQTT 3.1.1 control packets (fixed header + remaining-length varint) and forwards them
// whole, so that it can act on one PUBLISH at a time while the framing stays valid. The CONNECT
// packet's client id tells whose connection it is (device, server, anyone else); only the
// device's and the server's PUBLISH packets are faulted, in both directions (what a client
// publishes and what the broker delivers to it), each with the rates of FaultRates, at most one
// fault per packet, drawn from a per-connection, per-direction generator seeded from the
// proxy's seed:
//
//   drop       The packet is swallowed and the connection is cut a little later (a random
//              cut_after_drop_ms). Over TCP a packet cannot vanish from a connection that stays
//              up, and neither Paho nor Mosquitto retransmit a QoS-1 PUBLISH inside one
//              connection: a lone drop would only pin an in-flight slot forever. What a lost
//              packet really looks like is a connection that breaks after it was sent; the
//              packets that follow the gap still arrive until the cut, and the sender
//              retransmits the lost one (DUP=1) when its persistent session resumes.
//   duplicate  The packet is forwarded twice, the copy with DUP=1 (what a retransmission looks
//              like). The receiver acknowledges both; the proxy swallows the second PUBACK so the
//              sender sees one acknowledgement per packet it sent, as after a real resend.
//   delay      The packet is held for a random delay_ms; everything behind it in that direction
//              waits too (per-connection order is kept, as TCP would).
//   corrupt    One byte of the application payload (after the topic and the packet id) is
//              XORed with a random non-zero value. Framing stays valid: the envelope's checks
//              (protobuf parsing, chunk and payload CRC-32, routing) must catch it.
//   cut        The connection is closed at this packet (the packet is lost with it): both
//              clients see the connection drop and reconnect.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <list>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/base/random.h"

namespace r2f::testing::campaign {

enum class FaultKind { kDrop, kDuplicate, kDelay, kCorrupt, kCut };
inline constexpr int kNumFaultKinds = 5;
inline const char* FaultKindName(FaultKind k) {
  switch (k) {
    case FaultKind::kDrop:
      return "drop";
    case FaultKind::kDuplicate:
      return "duplicate";
    case FaultKind::kDelay:
      return "delay";
    case FaultKind::kCorrupt:
      return "corrupt";
    case FaultKind::kCut:
      return "cut";
  }
  return "?";
}

// Whose connection it is (from the CONNECT packet's client id).
enum class Peer { kUnknown, kDevice, kServer, kOther };
inline constexpr int kNumPeers = 4;
inline const char* PeerName(Peer p) {
  switch (p) {
    case Peer::kDevice:
      return "device";
    case Peer::kServer:
      return "server";
    case Peer::kOther:
      return "other";
    default:
      return "unknown";
  }
}

// Probabilities per PUBLISH packet crossing the proxy (either direction); their sum must be
// at most 1. All zero: a transparent proxy.
struct FaultRates {
  double drop = 0;
  double duplicate = 0;
  double delay = 0;
  double corrupt = 0;
  double cut = 0;
  int delay_min_ms = 50;
  int delay_max_ms = 1500;
  int cut_after_drop_min_ms = 20;
  int cut_after_drop_max_ms = 400;

  double Total() const { return drop + duplicate + delay + corrupt + cut; }
};

struct FaultCounts {
  // [peer][kind]: faults injected into that peer's connections.
  std::array<std::array<uint64_t, kNumFaultKinds>, kNumPeers> injected{};
  std::array<uint64_t, kNumPeers> publishes{};  // PUBLISH packets seen, per peer
  uint64_t connections = 0;                     // accepted
  uint64_t refused = 0;          // accepted while the broker was down: closed at once
  uint64_t refused_resends = 0;  // connections closed on a resent PUBLISH (RefuseResends)

  uint64_t Kind(FaultKind k) const {
    uint64_t n = 0;
    for (const auto& peer : injected) n += peer[static_cast<int>(k)];
    return n;
  }
  uint64_t Total() const {
    uint64_t n = 0;
    for (int k = 0; k < kNumFaultKinds; ++k) n += Kind(static_cast<FaultKind>(k));
    return n;
  }
};

class FaultProxy {
 public:
  using Classifier = std::function<Peer(const std::string& client_id)>;

  FaultProxy(int broker_port, uint64_t seed, Classifier classify)
      : broker_port_(broker_port), seed_(seed), classify_(std::move(classify)) {}
  ~FaultProxy() { Stop(); }
  FaultProxy(const FaultProxy&) = delete;
  FaultProxy& operator=(const FaultProxy&) = delete;

  // Listens on a free 127.0.0.1 port; false (with errno-based text in Log()) on failure.
  bool Start() {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    if (listen_fd_ < 0) return Fail("socket");
    const int one = 1;
    setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    sockaddr_in addr = Loopback(0);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      return Fail("bind");
    }
    if (listen(listen_fd_, 64) != 0) return Fail("listen");
    if (getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return Fail("getsockname");
    }
    port_ = ntohs(addr.sin_port);
    acceptor_ = std::thread([this] { AcceptLoop(); });
    return true;
  }

  void Stop() {
    if (stopping_.exchange(true)) return;
    if (acceptor_.joinable()) acceptor_.join();
    std::list<std::shared_ptr<Conn>> conns;
    {
      std::lock_guard<std::mutex> l(mu_);
      conns.swap(conns_);
    }
    for (auto& c : conns) c->Cut();
    for (auto& c : conns) c->Join();
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
  }

  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }

  // Applies to the packets that follow.
  void SetRates(const FaultRates& rates) {
    std::lock_guard<std::mutex> l(mu_);
    rates_ = rates;
  }

  // The next PUBLISH on a connection of `peer` (either direction) gets fault `kind`, whatever
  // the rates: the campaign places a few faults of every kind at random points this way, so
  // that each kind is exercised whatever the seed. `corrupt_at` in [0, 1) makes a corruption hit
  // the payload byte at that fraction of its length (a focused test's choice: the middle of a
  // large payload is inside the envelope's chunk bytes); otherwise the byte is random.
  void Arm(FaultKind kind, Peer peer, double corrupt_at = -1) {
    std::lock_guard<std::mutex> l(mu_);
    armed_.push_back({kind, peer, corrupt_at});
  }

  // While on, a PUBLISH that `peer` resends (DUP=1) closes its connection, as a broker closes
  // one on a packet it refuses. Paho resends its unacknowledged QoS-1 packets after every
  // reconnect, so this is the reconnect loop a broker that keeps refusing one resent packet
  // causes (common/net/reconnect_loop.h).
  void RefuseResends(Peer peer, bool on) {
    std::lock_guard<std::mutex> l(mu_);
    refuse_resends_[static_cast<int>(peer)] = on;
  }

  // Cuts every open connection now (a network partition of a moment).
  void CutAll() {
    std::lock_guard<std::mutex> l(mu_);
    for (auto& c : conns_) c->Cut();
  }

  FaultCounts counts() const {
    std::lock_guard<std::mutex> l(mu_);
    return counts_;
  }

  // One line per injected fault and connection event.
  std::string Log() const {
    std::lock_guard<std::mutex> l(mu_);
    std::string out;
    for (const std::string& line : log_) out += line + "\n";
    return out;
  }

 private:
  using Clock = std::chrono::steady_clock;

  struct Conn {
    int id = 0;
    int client_fd = -1;
    int broker_fd = -1;
    std::atomic<bool> closed{false};
    std::atomic<Peer> peer{Peer::kUnknown};
    std::string client_id;  // written by the client->broker pump before any PUBLISH
    std::mutex ack_mu;
    // Packet ids whose next PUBACK travelling in direction d is swallowed (duplicates).
    std::array<std::multiset<uint16_t>, 2> swallow;
    std::atomic<int64_t> cut_at_ms{INT64_MAX};
    std::array<std::thread, 2> pumps;
    std::atomic<int> pumps_done{0};

    void Cut() {
      if (closed.exchange(true)) return;
      // shutdown, not close: the pumps still hold the descriptors; they are closed in Join.
      shutdown(client_fd, SHUT_RDWR);
      shutdown(broker_fd, SHUT_RDWR);
    }
    void Join() {
      for (auto& t : pumps) {
        if (t.joinable()) t.join();
      }
      if (client_fd >= 0) close(client_fd);
      if (broker_fd >= 0) close(broker_fd);
      client_fd = broker_fd = -1;
    }
  };

  static sockaddr_in Loopback(int port) {
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return addr;
  }

  bool Fail(const char* what) {
    Note(std::string("proxy: ") + what + " failed: " + std::strerror(errno));
    if (listen_fd_ >= 0) close(listen_fd_);
    listen_fd_ = -1;
    return false;
  }

  static int64_t NowMs() {
    return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now().time_since_epoch())
        .count();
  }

  void Note(const std::string& line) {
    char stamp[32];
    std::snprintf(stamp, sizeof stamp, "%10.3f ",
                  std::chrono::duration<double>(Clock::now() - start_).count());
    std::lock_guard<std::mutex> l(mu_);
    if (log_.size() < 20000) log_.push_back(stamp + line);
  }

  void AcceptLoop() {
    while (!stopping_) {
      pollfd p{listen_fd_, POLLIN, 0};
      if (poll(&p, 1, 20) > 0 && (p.revents & POLLIN)) Accept();
      // Due cuts (after drops) and finished connections.
      const int64_t now = NowMs();
      std::list<std::shared_ptr<Conn>> done;
      {
        std::lock_guard<std::mutex> l(mu_);
        for (auto it = conns_.begin(); it != conns_.end();) {
          if ((*it)->cut_at_ms.load() <= now) (*it)->Cut();
          if ((*it)->pumps_done.load() == 2) {
            done.push_back(*it);
            it = conns_.erase(it);
          } else {
            ++it;
          }
        }
      }
      for (auto& c : done) c->Join();
    }
  }

  void Accept() {
    const int fd = accept(listen_fd_, nullptr, nullptr);
    if (fd < 0) return;
    const int upstream = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr = Loopback(broker_port_);
    if (upstream < 0 || connect(upstream, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      // The broker is down: the client sees its connection closed, as if refused.
      if (upstream >= 0) close(upstream);
      close(fd);
      std::lock_guard<std::mutex> l(mu_);
      ++counts_.refused;
      return;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    setsockopt(upstream, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    auto c = std::make_shared<Conn>();
    c->client_fd = fd;
    c->broker_fd = upstream;
    {
      std::lock_guard<std::mutex> l(mu_);
      c->id = next_conn_id_++;
      ++counts_.connections;
      conns_.push_back(c);
    }
    for (int dir = 0; dir < 2; ++dir) {
      c->pumps[dir] = std::thread([this, c, dir] {
        Pump(*c, dir);
        c->Cut();
        ++c->pumps_done;
      });
    }
  }

  // dir 0: client -> broker, dir 1: broker -> client.
  void Pump(Conn& c, int dir) {
    const int src = dir == 0 ? c.client_fd : c.broker_fd;
    const int dst = dir == 0 ? c.broker_fd : c.client_fd;
    Rng rng(MixKey({seed_, static_cast<uint64_t>(c.id), static_cast<uint64_t>(dir)}));
    std::string buf;
    std::vector<char> tmp(1 << 16);
    while (!c.closed) {
      const ssize_t n = read(src, tmp.data(), tmp.size());
      if (n <= 0) return;
      buf.append(tmp.data(), static_cast<size_t>(n));
      size_t used = 0;
      for (;;) {
        size_t header = 0, total = 0;
        if (!PacketAt(buf, used, &header, &total)) break;
        std::string packet = buf.substr(used, total);
        used += total;
        if (!Handle(c, dir, rng, std::move(packet), header, dst)) return;
      }
      buf.erase(0, used);
    }
  }

  // A whole packet at `pos`: its fixed header length and total length.
  static bool PacketAt(const std::string& buf, size_t pos, size_t* header, size_t* total) {
    uint64_t remaining = 0;
    int shift = 0;
    for (size_t i = pos + 1; i < buf.size() && i < pos + 5; ++i) {
      const uint8_t b = static_cast<uint8_t>(buf[i]);
      remaining |= uint64_t{b & 0x7Fu} << shift;
      shift += 7;
      if ((b & 0x80) == 0) {
        *header = i + 1 - pos;
        *total = *header + remaining;
        return buf.size() - pos >= *total;
      }
    }
    return false;
  }

  static uint16_t U16(const std::string& p, size_t at) {
    return static_cast<uint16_t>(static_cast<uint8_t>(p[at]) << 8 |
                                 static_cast<uint8_t>(p[at + 1]));
  }

  // Forwards (or faults) one packet; false when the connection is gone.
  bool Handle(Conn& c, int dir, Rng& rng, std::string packet, size_t header, int dst) {
    const int type = static_cast<uint8_t>(packet[0]) >> 4;
    if (dir == 0 && type == 1) OnConnect(c, packet, header);
    if (type == 4 && packet.size() >= header + 2) {  // PUBACK: one swallowed per duplicate
      std::lock_guard<std::mutex> l(c.ack_mu);
      auto it = c.swallow[dir].find(U16(packet, header));
      if (it != c.swallow[dir].end()) {
        c.swallow[dir].erase(it);
        return true;
      }
    }
    if (type != 3) return Write(c, dst, packet);
    const Peer peer = c.peer.load();
    if (dir == 0 && (static_cast<uint8_t>(packet[0]) & 0x08) != 0) {
      std::unique_lock<std::mutex> l(mu_);
      if (refuse_resends_[static_cast<int>(peer)]) {
        ++counts_.refused_resends;
        l.unlock();
        Note("conn " + std::to_string(c.id) + ": refused a resent PUBLISH of " + PeerName(peer) +
             ", closing");
        return false;
      }
    }
    if (peer != Peer::kDevice && peer != Peer::kServer) return Write(c, dst, packet);

    // The payload: after the topic (2-byte length + name) and, for QoS > 0, the packet id.
    const int qos = (static_cast<uint8_t>(packet[0]) >> 1) & 3;
    size_t payload = header + 2 + U16(packet, header);
    const size_t id_at = payload;
    if (qos > 0) payload += 2;
    if (payload > packet.size()) return Write(c, dst, packet);  // malformed: leave to the broker
    const std::string topic = packet.substr(header + 2, U16(packet, header));

    // The same draws for every packet, so the stream does not depend on the rates' values.
    const double u = rng.UniformDouble();
    const uint64_t r1 = rng.Next(), r2 = rng.Next();
    FaultRates rates;
    std::optional<FaultKind> fault;
    double corrupt_at = -1;
    {
      std::lock_guard<std::mutex> l(mu_);
      ++counts_.publishes[static_cast<int>(peer)];
      rates = rates_;
      for (auto it = armed_.begin(); it != armed_.end(); ++it) {
        // A corruption needs a payload to flip: it waits for the next packet that has one.
        if (it->peer == peer && (it->kind != FaultKind::kCorrupt || payload < packet.size())) {
          fault = it->kind;
          corrupt_at = it->corrupt_at;
          armed_.erase(it);
          break;
        }
      }
    }
    double edge = 0;
    for (FaultKind k : {FaultKind::kDrop, FaultKind::kDuplicate, FaultKind::kDelay,
                        FaultKind::kCorrupt, FaultKind::kCut}) {
      edge += RateOf(rates, k);
      if (!fault && u < edge) fault = k;
    }
    if (fault == FaultKind::kCorrupt && payload == packet.size()) fault.reset();  // nothing to flip
    if (!fault) return Write(c, dst, packet);

    std::string what = std::string(FaultKindName(*fault)) + " " + PeerName(peer) +
                       (dir == 0 ? " ->broker " : " <-broker ") + topic + " (" +
                       std::to_string(packet.size() - payload) + " B)";
    switch (*fault) {
      case FaultKind::kDrop: {
        const int span = std::max(0, rates.cut_after_drop_max_ms - rates.cut_after_drop_min_ms);
        const int64_t at = NowMs() + rates.cut_after_drop_min_ms +
                           static_cast<int64_t>(r1 % static_cast<uint64_t>(span + 1));
        int64_t cur = c.cut_at_ms.load();
        while (at < cur && !c.cut_at_ms.compare_exchange_weak(cur, at)) {
        }
        Count(peer, *fault, what + ", cut in " + std::to_string(at - NowMs()) + " ms");
        return true;
      }
      case FaultKind::kDuplicate: {
        Count(peer, *fault, what);
        if (!Write(c, dst, packet)) return false;
        if (qos > 0) {
          packet[0] = static_cast<char>(static_cast<uint8_t>(packet[0]) | 0x08);  // DUP
          std::lock_guard<std::mutex> l(c.ack_mu);
          c.swallow[1 - dir].insert(U16(packet, id_at));
        }
        return Write(c, dst, packet);
      }
      case FaultKind::kDelay: {
        const int span = std::max(0, rates.delay_max_ms - rates.delay_min_ms);
        const int ms = rates.delay_min_ms + static_cast<int>(r1 % static_cast<uint64_t>(span + 1));
        Count(peer, *fault, what + " by " + std::to_string(ms) + " ms");
        const auto until = Clock::now() + std::chrono::milliseconds(ms);
        while (Clock::now() < until && !c.closed) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
        return Write(c, dst, packet);
      }
      case FaultKind::kCorrupt: {
        const size_t len = packet.size() - payload;
        const size_t at =
            payload +
            (corrupt_at >= 0 && corrupt_at < 1 ? static_cast<size_t>(corrupt_at * len) : r1 % len);
        const uint8_t mask = static_cast<uint8_t>(1 + r2 % 255);
        packet[at] = static_cast<char>(static_cast<uint8_t>(packet[at]) ^ mask);
        Count(peer, *fault,
              what + " at payload byte " + std::to_string(at - payload) + " ^" +
                  std::to_string(mask));
        return Write(c, dst, packet);
      }
      case FaultKind::kCut:
        Count(peer, *fault, what);
        c.Cut();
        return false;
    }
    return Write(c, dst, packet);
  }

  static double RateOf(const FaultRates& r, FaultKind k) {
    switch (k) {
      case FaultKind::kDrop:
        return r.drop;
      case FaultKind::kDuplicate:
        return r.duplicate;
      case FaultKind::kDelay:
        return r.delay;
      case FaultKind::kCorrupt:
        return r.corrupt;
      case FaultKind::kCut:
        return r.cut;
    }
    return 0;
  }

  void OnConnect(Conn& c, const std::string& packet, size_t header) {
    // Variable header: protocol name (2 + n), level, flags, keep-alive; then the client id.
    if (packet.size() < header + 2) return;
    size_t at = header + 2 + U16(packet, header) + 4;
    if (packet.size() < at + 2) return;
    const size_t len = U16(packet, at);
    if (packet.size() < at + 2 + len) return;
    c.client_id = packet.substr(at + 2, len);
    const Peer peer = classify_ ? classify_(c.client_id) : Peer::kOther;
    c.peer = peer;
    Note("conn " + std::to_string(c.id) + ": " + c.client_id + " (" + PeerName(peer) + ")");
  }

  void Count(Peer peer, FaultKind k, const std::string& what) {
    {
      std::lock_guard<std::mutex> l(mu_);
      ++counts_.injected[static_cast<int>(peer)][static_cast<int>(k)];
    }
    Note(what);
  }

  static bool Write(Conn& c, int fd, const std::string& bytes) {
    size_t off = 0;
    while (off < bytes.size()) {
      const ssize_t n = send(fd, bytes.data() + off, bytes.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        c.Cut();
        return false;
      }
      off += static_cast<size_t>(n);
    }
    return true;
  }

  const int broker_port_;
  const uint64_t seed_;
  const Classifier classify_;
  const Clock::time_point start_ = Clock::now();
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread acceptor_;
  mutable std::mutex mu_;
  FaultRates rates_;
  FaultCounts counts_;
  struct Armed {
    FaultKind kind;
    Peer peer;
    double corrupt_at;
  };
  std::list<Armed> armed_;
  std::array<bool, kNumPeers> refuse_resends_{};
  std::list<std::shared_ptr<Conn>> conns_;
  int next_conn_id_ = 1;
  std::vector<std::string> log_;
};

}  // namespace r2f::testing::campaign
