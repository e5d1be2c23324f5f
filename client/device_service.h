// The device side of the Table-I API without MQTT: answers setAIoTMode, deployModel and getData
// on the simulated accelerator (accel_sim), so that it can be tested in-process. The daemon
// (client/client_main.cc) hands Handle() to the transport; the protocol and the idempotency of
// each call are described in docs/daemons.md.
//
// Determinism: the soft errors of a getData are keyed by (device seed, execution_tag, sample id,
// layer, replica, site), so a request's reply is a pure function of its content and the device
// state (model, mode). A retried request therefore gives the same answer whether the transport's
// reply cache still holds it or the device ran it again after a restart, and deployModel /
// setAIoTMode are idempotent by construction (re-applying the same model or mode is a no-op).
//
// Not thread-safe: calls must be serialised (the transport runs the handler on one thread).
#pragma once

#include <chrono>
#include <cstdint>
#include <future>
#include <map>
#include <memory>
#include <string>

#include "accel_sim/accelerator.h"
#include "client/device_config.h"
#include "client/device_lease.h"
#include "client/device_state_store.h"
#include "common/base/status.h"
#include "common/data/dataset.h"
#include "common/net/transport_message.h"
#include "r2f.pb.h"

namespace r2f {

class DeviceService {
 public:
  // The service over the device's own data. Restores the model and mode saved in
  // options.state_dir; a saved model that cannot be read or no longer validates (for instance
  // after a change of the data set) is logged and ignored, so the device starts empty and the
  // server's next deployModel repairs it. Errors: InvalidArgument for bad options.
  static Result<std::unique_ptr<DeviceService>> Create(DeviceServiceOptions options, Dataset train,
                                                       Dataset test);

  // Table I #1, setAIoTMode: sets the mode and the TMR protection of later getData calls.
  // TMR_PARTIAL needs a deployed model whose MAC layers contain every protected layer (no
  // duplicates); other TMR modes take no protected layers. Saved before it is acknowledged.
  Result<pb::Ack> SetAIoTMode(const pb::SetAIoTModeRequest& request);

  // Table I #2, deployModel. A whole model is validated (Accelerator::Create: errors name the
  // layer; its input shape must fit the device's data), saved, then run. The model the device
  // already runs (same version and contents) is acknowledged without re-applying it. A
  // WeightDelta applies only to the version it names (else InvalidArgument, and the server
  // sends the whole model); the result must match weights_crc32 (else Corruption); a delta to
  // the version already running, with matching weights, is a no-op. If a new model no longer
  // has a protected layer, the TMR mode falls back to none (said in Ack.detail). The model is
  // on disk when this returns OK.
  Result<pb::Ack> DeployModel(const pb::DeployModelRequest& request);

  // Table I #3, getData. Needs a model and request.mode equal to the device's mode; samples must
  // exist in the split and number at most max_samples_per_request. Inference: logits (+ per
  // layer similarity to clean when asked). Training: inputs, labels, logits and every MAC
  // layer's output encoded by the request's policy (docs/daemons.md).
  Result<pb::DataReply> GetData(const pb::GetDataRequest& request);

  // Fleet coordination (MSG_LEASE, client/device_lease.h): grants, renews or releases the lease
  // that lets one server drive the device; the Ack's `lease` says who holds it.
  pb::Ack Lease(const pb::LeaseRequest& request);

  // The transport handler: checks the request's lease, parses the payload for its kind, runs
  // the call and wraps the result with sendAck / sendData (client/r2f_client_api.h). Errors
  // (also for payloads that do not parse or kinds this device does not serve) become MSG_ERROR
  // replies in the transport. Logs each request at debug and a summary at info every 30 s.
  // A weight delta's Ack is returned before the delta is on disk, with a before_send that
  // waits for it (Message::before_send): the transport may run the next getData meanwhile,
  // whose reply waits too. Call before_send on this object's thread, and the service stays
  // alive until it has run.
  Result<Message> Handle(const Message& request);

  uint64_t model_version() const;  // 0: no model
  // The model now running; null when none is deployed.
  const pb::QuantizedModel* deployed_model() const {
    return accelerator_ ? &accelerator_->model() : nullptr;
  }
  pb::AIoTMode mode() const { return mode_.mode(); }
  // Calls executed by this object (successful or not).
  uint64_t requests_handled() const { return requests_handled_; }
  const DeviceServiceOptions& options() const { return options_; }

 private:
  DeviceService(DeviceServiceOptions options, Dataset train, Dataset test);
  void Restore();
  // A version >= 1, Accelerator::Create (from the running model's prepared layers where they
  // fit), and an input that fits the device's data.
  // By value: a deploy moves the model it built from a delta in (a copy costs ~0.3 ms).
  Result<std::unique_ptr<accel::Accelerator>> Instantiate(pb::QuantizedModel model) const;
  static Status CheckVersion(const pb::QuantizedModel& model);
  Status CheckFitsData(const pb::QuantizedModel& model) const;
  // Replaces the running model by `accelerator`'s (already validated), saving it whole first
  // unless `saved` (a weight delta's journal record holds it, or will: PendingSave). The model
  // replaced goes to *replaced when given.
  Status Install(std::unique_ptr<accel::Accelerator> accelerator, std::string* detail,
                 bool saved = false, std::unique_ptr<accel::Accelerator>* replaced = nullptr);

  // A weight delta's journal append (and fdatasync), still running when StartDeploy returns:
  // Handle lets the transport run the next getData on the new model meanwhile and send the Ack
  // (and that getData's reply) once it is done (Message::before_send). Anything else waits for
  // it first: the store and the running model are then settled.
  struct PendingSave {
    std::future<Status> append;
    std::unique_ptr<accel::Accelerator> previous;  // the model acknowledged before
    uint64_t version = 0;                          // the model being saved
    bool finished = false;
    Status outcome;
  };
  // DeployModel, leaving a delta's append running in pending_save_.
  Result<pb::Ack> StartDeploy(const pb::DeployModelRequest& request);
  // Finishes `save`: joins the append; if it failed, saves the whole model instead; if that
  // fails too, the device goes back to the model it ran before (which a restart would load),
  // and the outcome is the error. Idempotent.
  Status FinishSave(PendingSave& save);
  Status FinishPendingSave();  // pending_save_'s, OK when none
  // Handle() without the logging and the debug delay; *samples gets getData's sample count.
  Result<Message> Dispatch(const Message& request, size_t* samples);
  Status CheckProtection(const pb::SetAIoTModeRequest& request) const;
  pb::Ack MakeAck(pb::MessageKind kind, std::string detail) const;
  Result<pb::DataReply> Inference(const pb::GetDataRequest& request,
                                  const accel::ImageBatch& images);
  Result<pb::DataReply> Training(const pb::GetDataRequest& request, const Dataset& data,
                                 const accel::ImageBatch& images);

  DeviceServiceOptions options_;
  Dataset train_, test_;
  DeviceStateStore store_;
  DeviceLease lease_;
  std::unique_ptr<accel::Accelerator> accelerator_;  // null: no model deployed
  std::shared_ptr<PendingSave> pending_save_;        // null: the running model is saved
  pb::SetAIoTModeRequest mode_;
  accel::TmrConfig tmr_;  // mode_ in accel_sim's terms
  uint64_t requests_handled_ = 0;
  // The periodic summary line: requests per kind since the last one.
  std::chrono::steady_clock::time_point summary_start_ = std::chrono::steady_clock::now();
  std::map<pb::MessageKind, uint64_t> summary_counts_;
  uint64_t summary_failed_ = 0;
  void CountForSummary(pb::MessageKind kind, bool ok);
};

}  // namespace r2f
