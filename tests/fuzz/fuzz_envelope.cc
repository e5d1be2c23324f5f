// Fuzz target: MQTT payloads -> Envelope parse -> Reassembler, with small limits.
//
// Input: a sequence of records, each a little-endian uint16 length and that many bytes (one MQTT
// message); bytes left over that do not make a whole record are the last record. Between
// records a fake clock moves 700 ms (timeout 2 s), so stalled messages expire on the way.
// Checked: nothing crashes; a completed message has the size and CRC-32 its header announced;
// the budgets are never passed; and once everything expired, no byte or message is still
// accounted for (the per-device bookkeeping adds up).
#include <chrono>
#include <set>
#include <string>
#include <string_view>

#include "common/base/checksum.h"
#include "common/net/reassembler.h"
#include "common/net/transport_message.h"
#include "tests/fuzz/fuzz_target.h"

namespace {

using r2f::Reassembler;
using r2f::ReassemblerOptions;

constexpr uint32_t kMaxMessagesPerDevice = 4;

ReassemblerOptions Limits(std::chrono::steady_clock::time_point* now) {
  ReassemblerOptions o;
  o.max_payload_bytes = 1u << 20;
  o.max_chunk_count = 4096;
  o.max_inflight_bytes = 512u << 10;
  o.max_inflight_bytes_per_device = 256u << 10;
  o.max_inflight_messages_per_device = kMaxMessagesPerDevice;
  o.max_id_bytes = 64;
  o.timeout = std::chrono::milliseconds(2000);
  o.clock = [now] { return *now; };
  return o;
}

void Feed(Reassembler& r, std::string_view bytes, std::set<std::string>* devices) {
  auto env = r2f::ParseEnvelope(bytes);
  if (!env.ok()) return;
  const uint64_t size = env->payload_size();
  const uint32_t crc = env->payload_crc32();
  devices->insert(env->device_id());
  auto done = r.Add(std::move(env).value());
  if (done.ok() && done->has_value()) {
    const r2f::Message& m = **done;
    R2F_FUZZ_CHECK(m.payload.size() == size);
    R2F_FUZZ_CHECK(r2f::Crc32(m.payload) == crc);
    if (m.kind == r2f::pb::MSG_ERROR) (void)r2f::DecodeErrorReply(m.payload);
  }
  const ReassemblerOptions& o = r.options();
  R2F_FUZZ_CHECK(r.inflight_charged_bytes() <= o.max_inflight_bytes);
  R2F_FUZZ_CHECK(r.inflight_bytes() <= r.inflight_charged_bytes());
  for (const std::string& d : *devices) {
    R2F_FUZZ_CHECK(r.inflight_messages(d) <= kMaxMessagesPerDevice);
    R2F_FUZZ_CHECK(r.inflight_charged_bytes(d) <= o.max_inflight_bytes_per_device);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  QuietProtobuf();
  std::chrono::steady_clock::time_point now{};
  Reassembler r(Limits(&now));
  std::set<std::string> devices;
  const char* p = reinterpret_cast<const char*>(data);
  size_t left = size;
  while (left > 0) {
    size_t len = left;
    if (left >= 2) {
      const size_t want =
          static_cast<uint8_t>(p[0]) | static_cast<size_t>(static_cast<uint8_t>(p[1])) << 8;
      if (want <= left - 2) {
        p += 2;
        left -= 2;
        len = want;
      }
    }
    Feed(r, std::string_view(p, len), &devices);
    p += len;
    left -= len;
    now += std::chrono::milliseconds(700);
  }
  // Everything left expires; the accounting must come back to zero.
  now += std::chrono::hours(1);
  r.EvictExpired();
  R2F_FUZZ_CHECK(r.inflight_messages() == 0);
  R2F_FUZZ_CHECK(r.inflight_bytes() == 0);
  R2F_FUZZ_CHECK(r.inflight_charged_bytes() == 0);
  for (const std::string& d : devices) {
    R2F_FUZZ_CHECK(r.inflight_messages(d) == 0);
    R2F_FUZZ_CHECK(r.inflight_charged_bytes(d) == 0);
  }
  return 0;
}
