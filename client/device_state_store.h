// What a device keeps across restarts: the deployed model and the mode set by setAIoTMode.
//
//   model.pb       the last whole model, replaced atomically (common/base/atomic_file.h)
//   model.journal  the weight deltas deployed since, appended and synced one by one
//   mode.pb        the mode, replaced atomically
//
// Retraining deploys a ~10 KB delta every iteration; rewriting the whole model file for each
// (write, fsync, rename, directory fsync) was a millisecond or more of every deployModel. A delta
// is appended to the journal and synced (fdatasync) before deployModel is acknowledged, and
// every kCompactEvery deltas the model is written whole and the journal started afresh. A device
// killed at any point restarts with the model it last acknowledged: model.pb plus the journal's
// records in order. A record cut short by the kill was never acknowledged and is dropped; each
// record is checked (length, CRC-32, the delta's base version and its weights CRC) before use.
// A journal whose first record does not apply to model.pb is one left from before model.pb was
// last replaced (killed between the two steps) and is dropped; a later record that does not
// apply is Corruption.
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "common/base/status.h"
#include "r2f.pb.h"

namespace r2f {

class DeviceStateStore {
 public:
  // Deltas between whole-model rewrites.
  static constexpr int kCompactEvery = 64;

  // `dir` empty: nothing is persisted (Save* succeed and do nothing, Load* find nothing).
  explicit DeviceStateStore(std::string dir) : dir_(std::move(dir)) {}
  ~DeviceStateStore();
  DeviceStateStore(const DeviceStateStore&) = delete;
  DeviceStateStore& operator=(const DeviceStateStore&) = delete;

  // The whole model; empties the journal.
  Status SaveModel(const pb::QuantizedModel& model);
  // `delta` took the saved model to `result`: appended to the journal, or, every kCompactEvery
  // deltas (or when no whole model is saved), `result` saved whole instead. When the append
  // fails, `result` is saved whole: a partial record would hide every later one from replay.
  Status SaveDelta(const pb::WeightDelta& delta, const pb::QuantizedModel& result);
  // SaveDelta in two steps, for a caller that wants the append to wait on the disk while it
  // does other work: whether SaveDelta would append, and the append alone (then, if it fails,
  // SaveModel of the result). A failed append leaves the journal as it was (the partial record
  // is cut off again; if even that fails, the next save is a whole model).
  bool NextDeltaAppends() const;
  Status AppendDelta(const pb::WeightDelta& delta);
  Status SaveMode(const pb::SetAIoTModeRequest& mode) const;

  // NotFound when nothing was saved; Corruption naming the file when it does not parse;
  // ResourceExhausted when it is larger than `max_bytes`. The model has the journal's deltas
  // applied; *replayed (optional) gets their number.
  Result<pb::QuantizedModel> LoadModel(uint64_t max_bytes, int* replayed = nullptr);
  Result<pb::SetAIoTModeRequest> LoadMode() const;

  std::string model_path() const { return dir_ + "/model.pb"; }
  std::string journal_path() const { return dir_ + "/model.journal"; }
  std::string mode_path() const { return dir_ + "/mode.pb"; }
  bool persistent() const { return !dir_.empty(); }

 private:
  Status OpenJournal();
  void CloseJournal();
  // Cuts the journal back to `size` bytes and syncs it; on failure the next save is whole.
  Status TruncateJournal(off_t size);

  std::string dir_;
  int journal_fd_ = -1;
  int journal_records_ = 0;       // records in the journal since the last whole model
  bool journal_damaged_ = false;  // the journal could not be repaired: save whole next
};

}  // namespace r2f
