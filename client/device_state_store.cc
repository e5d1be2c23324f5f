#include "client/device_state_store.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/base/atomic_file.h"
#include "common/base/checksum.h"
#include "common/base/logging.h"
#include "common/codec/weight_delta.h"
#include "common/ir/model_file.h"

namespace r2f {
namespace {

template <typename Proto>
Result<Proto> LoadProto(const std::string& path, uint64_t max_bytes, const std::string& what) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) return Status::NotFound("no " + what);
  Proto proto;
  R2F_RETURN_IF_ERROR(ReadProtoFile(path, max_bytes, what, &proto, /*empty_is_valid=*/true));
  return proto;
}

// A journal record: u32 payload length, u32 CRC-32 of the payload (both little-endian), then
// the serialised WeightDelta.
constexpr size_t kRecordHeader = 8;

void PutU32(std::string* s, uint32_t v) {
  for (int i = 0; i < 4; ++i) s->push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
}

uint32_t GetU32(const char* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

Status Errno(const std::string& what, const std::string& path) {
  return Status::IoError(what + " '" + path + "': " + std::strerror(errno));
}

Status SyncDirectory(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("cannot open directory", dir);
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  return synced ? Status::Ok() : Errno("cannot sync directory", dir);
}

}  // namespace

DeviceStateStore::~DeviceStateStore() { CloseJournal(); }

void DeviceStateStore::CloseJournal() {
  if (journal_fd_ >= 0) ::close(journal_fd_);
  journal_fd_ = -1;
}

Status DeviceStateStore::OpenJournal() {
  if (journal_fd_ >= 0) return Status::Ok();
  std::error_code ec;
  const bool existed = std::filesystem::exists(journal_path(), ec);
  journal_fd_ = ::open(journal_path().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (journal_fd_ < 0) return Errno("cannot open", journal_path());
  // A new file's name must survive a power cut too.
  return existed ? Status::Ok() : SyncDirectory(dir_);
}

Status DeviceStateStore::SaveModel(const pb::QuantizedModel& model) {
  if (!persistent()) return Status::Ok();
  R2F_RETURN_IF_ERROR(WriteFileAtomically(model_path(), model.SerializeAsString()));
  // The journal's deltas are older than this model: replay would skip them (their base versions
  // do not match), but they would only cost time, so the journal goes.
  CloseJournal();
  journal_records_ = 0;
  journal_damaged_ = false;
  if (::unlink(journal_path().c_str()) != 0 && errno != ENOENT) {
    // Deltas appended behind the old records would be dropped with them as stale on restart:
    // the next save writes the whole model again (and tries the removal again).
    journal_damaged_ = true;
    return Errno("cannot remove", journal_path());
  }
  return Status::Ok();
}

bool DeviceStateStore::NextDeltaAppends() const {
  if (!persistent() || journal_damaged_) return false;
  std::error_code ec;
  return journal_records_ + 1 < kCompactEvery && std::filesystem::exists(model_path(), ec);
}

Status DeviceStateStore::SaveDelta(const pb::WeightDelta& delta, const pb::QuantizedModel& result) {
  if (!persistent()) return Status::Ok();
  if (!NextDeltaAppends()) return SaveModel(result);
  const Status appended = AppendDelta(delta);
  if (appended.ok()) return appended;
  return SaveModel(result).ok() ? Status::Ok() : appended;
}

Status DeviceStateStore::AppendDelta(const pb::WeightDelta& delta) {
  if (!NextDeltaAppends()) return Status::FailedPrecondition("the next save must be a whole model");
  R2F_RETURN_IF_ERROR(OpenJournal());
  const off_t start = ::lseek(journal_fd_, 0, SEEK_END);
  if (start < 0) return Errno("cannot seek in", journal_path());
  const std::string payload = delta.SerializeAsString();
  std::string record;
  record.reserve(kRecordHeader + payload.size());
  PutU32(&record, static_cast<uint32_t>(payload.size()));
  PutU32(&record, Crc32(payload));
  record += payload;
  const char* p = record.data();
  size_t left = record.size();
  Status failed;
  while (left > 0 && failed.ok()) {
    const ssize_t n = ::write(journal_fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      failed = Errno("cannot append to", journal_path());
      break;
    }
    p += n;
    left -= static_cast<size_t>(n);
  }
  if (failed.ok() && ::fdatasync(journal_fd_) != 0) failed = Errno("cannot sync", journal_path());
  if (!failed.ok()) {
    // A partial record would hide every later one from replay, and a whole one that was never
    // acknowledged would be run after a restart: either way it goes.
    (void)TruncateJournal(start);
    return failed;
  }
  ++journal_records_;
  return Status::Ok();
}

Status DeviceStateStore::TruncateJournal(off_t size) {
  if (journal_fd_ >= 0 && ::ftruncate(journal_fd_, size) == 0 && ::fdatasync(journal_fd_) == 0) {
    return Status::Ok();
  }
  Status st = Errno("cannot cut back", journal_path());
  journal_damaged_ = true;
  CloseJournal();
  return st;
}

Status DeviceStateStore::SaveMode(const pb::SetAIoTModeRequest& mode) const {
  if (!persistent()) return Status::Ok();
  return WriteFileAtomically(mode_path(), mode.SerializeAsString());
}

Result<pb::QuantizedModel> DeviceStateStore::LoadModel(uint64_t max_bytes, int* replayed) {
  if (replayed != nullptr) *replayed = 0;
  if (!persistent()) return Status::NotFound("no state directory");
  R2F_ASSIGN_OR_RETURN(pb::QuantizedModel model,
                       LoadProto<pb::QuantizedModel>(model_path(), max_bytes, "saved model"));
  // Read whole, so bounded first: at most kCompactEvery records of at most max_bytes each (a
  // device file in its place would never end).
  std::error_code ec;
  const std::filesystem::file_status kind = std::filesystem::status(journal_path(), ec);
  if (!std::filesystem::exists(kind)) return model;  // no journal: the model as saved
  if (!std::filesystem::is_regular_file(kind)) {
    return Status::Corruption("journal " + journal_path() + " is not a regular file");
  }
  const uintmax_t journal_bytes = std::filesystem::file_size(journal_path(), ec);
  const uintmax_t limit = uintmax_t{kCompactEvery} * (max_bytes + kRecordHeader);
  if (ec || journal_bytes > limit) {
    return Status::Corruption("journal " + journal_path() + " has " +
                              std::to_string(journal_bytes) + " bytes, more than " +
                              std::to_string(kCompactEvery) + " records can (" +
                              std::to_string(limit) + ")");
  }
  std::ifstream in(journal_path(), std::ios::binary);
  if (!in) return model;
  std::stringstream buffer;
  buffer << in.rdbuf();
  const std::string journal = buffer.str();
  size_t at = 0;
  int applied = 0;
  while (at + kRecordHeader <= journal.size()) {
    const uint32_t size = GetU32(journal.data() + at);
    const uint32_t crc = GetU32(journal.data() + at + 4);
    if (journal.size() - at - kRecordHeader < size) break;  // the file ends inside it: torn
    const std::string_view payload(journal.data() + at + kRecordHeader, size);
    if (Crc32(payload) != crc) break;  // torn by a kill mid-append: never acknowledged
    const std::string where =
        "journal " + journal_path() + ": record " + std::to_string(applied + 1);
    if (size > max_bytes) {
      // Whole and intact, so acknowledged: a lower limit than it was written under must not
      // cut it (and every record after it) off.
      return Status::Corruption(where + " has " + std::to_string(size) +
                                " bytes, more than limits.max_model_bytes = " +
                                std::to_string(max_bytes) + "; raise the limit to load it");
    }
    pb::WeightDelta delta;
    if (!delta.ParseFromArray(payload.data(), static_cast<int>(payload.size()))) {
      return Status::Corruption(where + " passes its CRC but is not a WeightDelta");
    }
    Result<pb::QuantizedModel> next = ApplyWeightDelta(model, delta);
    if (!next.ok() && applied == 0) {
      // A journal left over from before model.pb was replaced (a kill between the two steps of
      // SaveModel): its deltas lead to model.pb, not from it (the weights CRC tells; a whole
      // deploy may replace model.pb under the same version, so the version does not).
      at = 0;
      break;
    }
    if (!next.ok()) {
      return Status::Corruption(where + " does not apply to version " +
                                std::to_string(model.model_version()) + ": " +
                                next.status().ToString());
    }
    at += kRecordHeader + size;
    model = std::move(next).value();
    ++applied;
  }
  // Bytes after the last good record (a torn append) would hide every record appended after
  // them, so they go now.
  journal_records_ = applied;
  if (at < journal.size() && ::truncate(journal_path().c_str(), static_cast<off_t>(at)) != 0) {
    const int error = errno;
    // The model itself is good: keep it, and let the next save be a whole model (which removes
    // the journal) rather than a delta appended behind the torn bytes.
    GetLogger("device")->error(
        "cannot truncate the torn end of {}: {}; the next deploy is "
        "saved whole",
        journal_path(), std::strerror(error));
    journal_damaged_ = true;
  }
  if (replayed != nullptr) *replayed = applied;
  return model;
}

Result<pb::SetAIoTModeRequest> DeviceStateStore::LoadMode() const {
  if (!persistent()) return Status::NotFound("no state directory");
  return LoadProto<pb::SetAIoTModeRequest>(mode_path(), 1 << 20, "saved mode");
}

}  // namespace r2f
