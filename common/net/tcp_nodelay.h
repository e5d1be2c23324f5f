// Nagle's algorithm off on the MQTT client's own sockets.
//
// A request/reply over MQTT is a few small TCP segments each way; with Nagle on, a small segment
// waits for the ACK of the previous one, which the peer delays by up to 40 ms (Linux delayed
// ACK). Measured on loopback: a ~10 KB deployModel took 44 ms. Paho C enables TCP_NODELAY only
// from 1.3.16 on and has no option for it before; Debian 12 ships 1.3.12. So the client finds
// its sockets to the broker after each connect and sets it itself. The broker's side is its own
// setting (Mosquitto: set_tcp_nodelay true, which every config of this project sets).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace r2f {

// The TCP port of a broker URI (tcp://host:port, ssl://host:port, ...; MQTT's default 1883, or
// 8883 for TLS, when it names none); 0 for a URI without a host (such as a unix socket).
uint16_t BrokerPort(const std::string& uri);

// Sets TCP_NODELAY on every TCP socket of this process whose peer port is one of `ports`;
// returns how many it set. Sockets of other clients of the same broker in this process get it
// too, which only helps them.
int DisableNagleTowards(const std::vector<uint16_t>& ports);

}  // namespace r2f
