// r2f_transport_bench: goodput of the MQTT transport (common/net/transport.h) against the naive way
// of sending the same bytes, one unchunked QoS-1 publish with a plain Paho client
// (docs/protocol.md: large single publishes are slow and fragile). Both run through a throwaway
// mosquitto on loopback (tests/support/mosquitto_fixture.h).
//
//   ./build/bin/r2f_transport_bench      # 64 MiB, 3 iterations
//
// Per iteration: (1) Transport::Call of a 64 MiB MSG_DEPLOY_MODEL request, chunked at 512 KiB
// (the default) with CRCs and reassembly, to a device whose handler checks the payload's CRC and
// acks; timed from Call to the ack. (2) The same bytes as one QoS-1 publish from one Paho client to
// another, timed from publish to delivery. Counters (MB = 1e6 bytes): transport_MBps,
// unchunked_MBps and ratio = transport / unchunked. The benchmark's own time is the transport's.
//
// BM_ReplyGoodput/12/<KiB>: the shape of a getData call (MobileNetV2's DRM reply is ~11 MB): a
// tiny request, a 12 MiB reply chunked at 128 KiB or 1 MiB. Counter reply_MBps.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/base/checksum.h"
#include "common/base/malloc_policy.h"
#include "common/net/tcp_nodelay.h"
#include "common/net/transport.h"
#include "mqtt/async_client.h"
#include "tests/support/mosquitto_fixture.h"

namespace r2f {
namespace {

using Clock = std::chrono::steady_clock;

std::string RandomBytes(size_t n) {
  std::mt19937_64 rng(42);
  std::string s(n, '\0');
  for (size_t i = 0; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(&s[i], &v, 8);
  }
  return s;
}

TransportOptions Options(const testing::MosquittoBroker& broker, TransportOptions::Role role,
                         size_t chunk_bytes = kDefaultChunkBytes) {
  TransportOptions o;
  o.chunk_bytes = chunk_bytes;
  o.role = role;
  o.broker_uri = broker.uri();
  o.device_id = "bench-dev";
  o.client_id = role == TransportOptions::Role::kDevice ? "bench-dev" : "bench-srv";
  return o;
}

// A plain Paho client with a clean session.
std::unique_ptr<mqtt::async_client> PlainClient(const std::string& uri, const std::string& id) {
  auto cli = std::make_unique<mqtt::async_client>(uri, id);
  cli->start_consuming();
  mqtt::connect_options o;
  o.set_clean_session(true);
  cli->connect(o)->wait();
  return cli;
}

void BM_Goodput(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  const std::string payload = RandomBytes(bytes);
  const std::string expected_ack = std::to_string(Crc32(payload));

  testing::MosquittoBroker broker;
  if (!broker.Start()) {
    state.SkipWithError(("mosquitto did not start: " + broker.Log()).c_str());
    return;
  }
  auto device = Transport::Connect(Options(broker, TransportOptions::Role::kDevice));
  auto server = Transport::Connect(Options(broker, TransportOptions::Role::kServer));
  if (!device.ok() || !server.ok()) {
    state.SkipWithError("transport did not connect");
    return;
  }
  const Status served = (*device)->Serve([](const Message& request) -> Result<Message> {
    Message ack;
    ack.kind = pb::MSG_ACK;
    ack.payload = std::to_string(Crc32(request.payload));
    return ack;
  });
  if (!served.ok()) {
    state.SkipWithError(served.ToString().c_str());
    return;
  }
  auto sub = PlainClient(broker.uri(), "bench-sub");
  auto pub = PlainClient(broker.uri(), "bench-pub");
  sub->subscribe("bench/raw", 1)->wait();

  double transport_s = 0, unchunked_s = 0;
  for (auto _ : state) {
    Message request;
    request.kind = pb::MSG_DEPLOY_MODEL;
    request.job_id = "bench";
    request.payload = payload;
    const auto t0 = Clock::now();
    auto reply = (*server)->Call("bench-dev", std::move(request), std::chrono::seconds(300), 1);
    const double chunked = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!reply.ok() || reply->payload != expected_ack) {
      state.SkipWithError(reply.ok() ? "wrong ack" : reply.status().ToString().c_str());
      return;
    }
    state.SetIterationTime(chunked);
    transport_s += chunked;

    const auto t1 = Clock::now();
    auto token = pub->publish("bench/raw", payload.data(), payload.size(), 1, false);
    mqtt::const_message_ptr delivered;
    if (!sub->try_consume_message_for(&delivered, std::chrono::seconds(300)) || !delivered) {
      state.SkipWithError("the unchunked publish was not delivered");
      return;
    }
    unchunked_s += std::chrono::duration<double>(Clock::now() - t1).count();
    token->wait();
    if (delivered->get_payload().size() != bytes) {
      state.SkipWithError("the unchunked publish arrived truncated");
      return;
    }
  }
  const double megabytes = static_cast<double>(bytes) * state.iterations() / 1e6;
  state.counters["transport_MBps"] = megabytes / transport_s;
  state.counters["unchunked_MBps"] = megabytes / unchunked_s;
  state.counters["ratio"] = unchunked_s / transport_s;
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());

  try {
    sub->disconnect()->wait();
    pub->disconnect()->wait();
  } catch (const mqtt::exception&) {
  }
  (*server)->Stop();
  (*device)->Stop();
}

// A broker, a device transport that answers every request with `payload`, and a server
// transport that calls it: the set-up of the benchmarks of a getData-shaped call.
class ReplyBed {
 public:
  ReplyBed(std::string payload, size_t chunk_bytes, bool tuned_malloc)
      : payload_(std::move(payload)), broker_(BrokerOptions(tuned_malloc)) {
    if (!broker_.Start()) {
      error_ = "mosquitto did not start: " + broker_.Log();
      return;
    }
    auto device =
        Transport::Connect(Options(broker_, TransportOptions::Role::kDevice, chunk_bytes));
    auto server =
        Transport::Connect(Options(broker_, TransportOptions::Role::kServer, chunk_bytes));
    if (!device.ok() || !server.ok()) {
      error_ = "transport did not connect";
      return;
    }
    device_ = std::move(device).value();
    server_ = std::move(server).value();
    const Status served = device_->Serve([this](const Message&) -> Result<Message> {
      Message reply;
      reply.kind = pb::MSG_DATA;
      reply.payload = payload_;
      return reply;
    });
    if (!served.ok()) error_ = served.ToString();
  }
  ~ReplyBed() {
    if (server_) server_->Stop();
    if (device_) device_->Stop();
  }
  // Why the set-up failed; empty when it did not.
  const std::string& error() const { return error_; }

  // One call with a tiny request: its wall time in seconds, or why it failed.
  Result<double> TimedCall(std::chrono::seconds timeout) {
    Message request;
    request.kind = pb::MSG_GET_DATA;
    request.job_id = "bench";
    request.payload = "x";
    const auto t0 = Clock::now();
    auto reply = server_->Call("bench-dev", std::move(request), timeout, 1);
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    if (!reply.ok()) return reply.status();
    if (reply->payload.size() != payload_.size()) return Status::Corruption("wrong reply");
    return s;
  }

 private:
  static testing::MosquittoBroker::Options BrokerOptions(bool tuned_malloc) {
    testing::MosquittoBroker::Options o;
    o.tuned_malloc = tuned_malloc;
    return o;
  }
  std::string payload_;
  testing::MosquittoBroker broker_;
  std::unique_ptr<Transport> device_, server_;
  std::string error_;
};

// The benchmark's iterations as timed calls through `bed`, each call's seconds in order; empty
// (and the benchmark skipped with the reason) when the bed did not come up or a call failed.
std::vector<double> TimedCalls(benchmark::State& state, ReplyBed& bed,
                               std::chrono::seconds timeout) {
  std::vector<double> seconds;
  if (!bed.error().empty()) {
    state.SkipWithError(bed.error().c_str());
    return {};
  }
  for (auto _ : state) {
    Result<double> s = bed.TimedCall(timeout);
    if (!s.ok()) {
      state.SkipWithError(s.status().ToString().c_str());
      return {};
    }
    state.SetIterationTime(*s);
    seconds.push_back(*s);
  }
  return seconds;
}

void BM_ReplyGoodput(benchmark::State& state) {
  const size_t bytes = static_cast<size_t>(state.range(0)) << 20;
  ReplyBed bed(RandomBytes(bytes), static_cast<size_t>(state.range(1)) << 10, true);
  const std::vector<double> seconds = TimedCalls(state, bed, std::chrono::seconds(300));
  if (seconds.empty()) return;
  double total_s = 0;
  for (double s : seconds) total_s += s;
  state.counters["reply_MBps"] = static_cast<double>(bytes) * state.iterations() / 1e6 / total_s;
}

// BM_CallLatency/<reply KiB>/<tuned>/<chunk KiB>: one Call with a tiny request and a reply of the
// given size (0, 16, and 2048: DRM's ResNet18 reply is 1.9 MB), the cost per call that every
// deployModel and getData pays; <tuned> 1 runs the broker with the project's allocator settings
// (tests/support/mosquitto_fixture.h, configs/mosquitto/README), 0 with glibc's defaults;
// <chunk KiB> is the chunk size of both ends (broker.chunk_kib): the default, and for the 2 MiB
// reply the sizes around it.
// BM_PlainPahoLatency: the floor under it, the 2 MiB reply's bytes alone as QoS-1 publishes of
// the default chunk size from one plain Paho client to another through the tuned broker, Nagle
// off on both, timed from the first publish to the last delivery. Counter median_us.
double MedianMicros(std::vector<double> us) {
  if (us.empty()) return 0;
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

void BM_CallLatency(benchmark::State& state) {
  ReplyBed bed(RandomBytes(static_cast<size_t>(state.range(0)) << 10),
               static_cast<size_t>(state.range(2)) << 10, state.range(1) == 1);
  std::vector<double> us = TimedCalls(state, bed, std::chrono::seconds(30));
  if (us.empty()) return;
  for (double& s : us) s *= 1e6;
  state.counters["median_us"] = MedianMicros(us);
}

void BM_PlainPahoLatency(benchmark::State& state) {
  constexpr size_t kChunks = (size_t{2} << 20) / kDefaultChunkBytes;  // the 2 MiB reply
  const std::string chunk = RandomBytes(kDefaultChunkBytes);
  testing::MosquittoBroker broker;
  if (!broker.Start()) {
    state.SkipWithError(("mosquitto did not start: " + broker.Log()).c_str());
    return;
  }
  auto sub = PlainClient(broker.uri(), "bench-sub");
  auto pub = PlainClient(broker.uri(), "bench-pub");
  sub->subscribe("bench/raw", 1)->wait();
  DisableNagleTowards({BrokerPort(broker.uri())});
  std::vector<double> us;
  for (auto _ : state) {
    std::vector<mqtt::delivery_token_ptr> tokens;
    const auto t0 = Clock::now();
    for (size_t i = 0; i < kChunks; ++i) {
      tokens.push_back(pub->publish("bench/raw", chunk.data(), chunk.size(), 1, false));
    }
    for (size_t i = 0; i < kChunks; ++i) {
      mqtt::const_message_ptr m;
      if (!sub->try_consume_message_for(&m, std::chrono::seconds(30)) || !m) {
        state.SkipWithError("a plain publish was not delivered");
        return;
      }
    }
    const double s = std::chrono::duration<double>(Clock::now() - t0).count();
    for (auto& t : tokens) t->wait();
    state.SetIterationTime(s);
    us.push_back(s * 1e6);
  }
  state.counters["median_us"] = MedianMicros(us);
  try {
    sub->disconnect()->wait();
    pub->disconnect()->wait();
  } catch (const mqtt::exception&) {
  }
}

BENCHMARK(BM_CallLatency)
    ->ArgsProduct({{0, 16, 2048}, {1, 0}, {kDefaultChunkBytes >> 10}})
    ->Iterations(200)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_CallLatency)
    ->ArgsProduct({{2048}, {1}, {128, 256, 1024, 2048}})
    ->Iterations(200)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);
BENCHMARK(BM_PlainPahoLatency)->Iterations(200)->UseManualTime()->Unit(benchmark::kMicrosecond);

BENCHMARK(BM_ReplyGoodput)
    ->ArgsProduct({{12}, {128, 1024}})
    ->Iterations(20)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK(BM_Goodput)->Arg(64)->Iterations(3)->UseManualTime()->Unit(benchmark::kSecond);

}  // namespace
}  // namespace r2f

int main(int argc, char** argv) {
  r2f::KeepFreedMemoryForReuse();  // as the daemons run (malloc_policy.h)
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
