// The server side of the paper's Table-I API, in one header.
//
//   Table I                                   here
//   1 server.setAIoTMode(deviceID, mode)      R2fServer::setAIoTMode  -> MSG_SET_AIOT_MODE, Ack
//   2 server.deployModel(deviceID, model)     R2fServer::deployModel  -> MSG_DEPLOY_MODEL, Ack
//   3 server.getData(deviceID, mode)          R2fServer::getData      -> MSG_GET_DATA, DataReply
//   4 server.convertFloat2Int(fData, iData)   ConvertFloat2Int in server/model/quantize.h
//   5 server.convertInt2Float(iData, fData)   ConvertInt2Float in server/model/quantize.h
//   6 client.sendAck / 7 client.sendData      client/r2f_client_api.h (the device's replies)
//
// #4 and #5 work on LibTorch tensors, so they live with the rest of the LibTorch code and this
// header stays free of it: the retraining loop reaches them through HilTrainer
// (server/model/hil_trainer.h: Create converts the deployed int8 model to float master weights,
// Export converts them back with the deployed formats).
//
// Requests travel over MQTT through common/net/transport.h (chunked, checksummed, retried with the
// same request id; the device answers retries from its reply cache). Every call is logged with
// its payload bytes each way, the time the configured IoT link would take for them
// (common/link/link_model.h) and the measured wall time, and kept as a CallRecord for the
// retraining loop. docs/daemons.md has the message flow and the idempotency of each call.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "accel_sim/accelerator.h"
#include "common/base/status.h"
#include "common/link/link_model.h"
#include "common/link/throttle.h"
#include "common/net/transport.h"
#include "r2f.pb.h"

namespace r2f {

struct R2fServerOptions {
  TransportOptions transport;  // broker connection; the role is always kServer
  // The modelled link of every device (SetDeviceLink overrides it for one); must be valid
  // (common/link/link_config.h).
  LinkSpec link;
  // Hold each call to its device's link bit rates with token buckets (common/link/throttle.h),
  // one pair per device (each device has a link of its own): before a request is sent the
  // downlink bucket is charged its bytes, after a reply arrives the uplink bucket. The MQTT
  // traffic itself stays at loopback speed; the run's wall time follows the link. Latency is
  // not added (it is in the model).
  bool throttle = false;
  uint64_t throttle_burst_bytes = 64 * 1024;
  std::string job_id = "r2f";  // part of the device's idempotency key
  // Per attempt: covers sending the request, the device's work and the reply. Size it to the
  // slowest call (a large getData) on the real link.
  std::chrono::milliseconds call_timeout{60000};
  int attempts = 3;
};

// One API call as the retraining loop sees it (docs/link_and_codec.md: modelled time beside
// measured time).
struct CallRecord {
  std::string device_id;
  pb::MessageKind kind = pb::MSG_UNSPECIFIED;
  uint64_t request_id = 0;
  Status status;  // OK, or why the call failed
  // Bytes on the wire at the MQTT payload level (serialised envelopes, all chunks) of one
  // attempt: the request (server -> device, downlink) and the reply (uplink).
  uint64_t downlink_bytes = 0;
  uint64_t uplink_bytes = 0;
  double modelled_downlink_s = 0;  // ModelledSeconds(link, kDownlink, downlink_bytes)
  double modelled_uplink_s = 0;    // 0 when there was no reply
  double measured_s = 0;           // wall time of the MQTT exchange, retries included
  double device_s = 0;             // of which the device's handler ran (its reply says)
  double device_queue_s = 0;       // and the request waited for the device to finish another
  double throttle_s = 0;           // time spent waiting in the throttles
  uint64_t retries = 0;            // transport retries during the call (approximate when
                                   // several threads call at once)
};

class R2fServer {
 public:
  // Validates the link, connects to the broker (TransportOptions::connect_timeout) and creates
  // the throttles when asked for.
  static Result<std::unique_ptr<R2fServer>> Connect(R2fServerOptions options);
  ~R2fServer();
  R2fServer(const R2fServer&) = delete;
  R2fServer& operator=(const R2fServer&) = delete;

  // Table I #1. Sets the device's mode and TMR protection (TmrMode::kPartial protects
  // tmr.protected_layers, which must be MAC layers of the deployed model).
  Status setAIoTMode(const std::string& device, pb::AIoTMode mode, const accel::TmrConfig& tmr);

  // Table I #2. Deploys `model` (model_version >= 1). With as_delta_if_possible, when the
  // device is known to hold the model this server deployed last and `model` differs from it
  // only in weights and biases (common/codec/weight_delta.h), only the changed weights are sent; if
  // the device refuses the delta, the whole model follows. Returns the device's Ack, whose
  // model_version equals model.model_version().
  Result<pb::Ack> deployModel(const std::string& device, const pb::QuantizedModel& model,
                              bool as_delta_if_possible = true);

  // Table I #3. request.mode must be the device's mode. The reply answers exactly the requested
  // samples, in order (checked).
  Result<pb::DataReply> getData(const std::string& device, const pb::GetDataRequest& request);

  // Table I #2, then #3 without waiting for #2's Ack: the getData request goes out as soon as
  // the deploy request is on its way. The device handles requests in arrival order, so it
  // runs them back to back, and the round trip between them (the Ack travelling back, the
  // request travelling out) is saved. Fails if and only if the deploy fails, as deployModel
  // would. The data is returned only if it came from `model` (its model_version); otherwise
  // (the deploy was resent, or refused and sent again whole, so getData overtook it; or
  // getData failed) `data` is empty and the caller asks with getData, as it would have without
  // this call. The getData's attempt timeout includes the deploy's time on the device.
  struct DeployedData {
    pb::Ack ack;
    std::optional<pb::DataReply> data;
  };
  Result<DeployedData> deployModelThenGetData(const std::string& device,
                                              const pb::QuantizedModel& model,
                                              bool as_delta_if_possible,
                                              const pb::GetDataRequest& request);

  // Fleet coordination (docs/fleet.md): asks `device` for the lease that lets this server alone
  // drive it for `duration` (renewed by every later request). When granted, every later request
  // to the device carries the lease; when another server holds it, the returned state names it
  // (granted false). A request the device refuses for want of the lease fails with
  // FailedPrecondition.
  Result<pb::LeaseState> AcquireLease(const std::string& device,
                                      std::chrono::milliseconds duration);
  // Gives the lease back (best effort) and stops following the device's replies.
  void ReleaseDevice(const std::string& device);

  // The link of one device, instead of options().link and options().throttle.
  Status SetDeviceLink(const std::string& device, const LinkSpec& link, bool throttle);
  // The link modelled for `device`.
  LinkSpec DeviceLink(const std::string& device) const;

  // The device's last Ack to this server (mode, model version, sizes of its data splits).
  Result<pb::Ack> LastAck(const std::string& device) const;
  // "online" / "offline" from the device's retained status; NotFound if none seen yet.
  Result<std::string> DeviceStatus(const std::string& device) const;
  // The records of the calls made since the last TakeRecords(), oldest first: all of them, or
  // only those with `device` (runs that share this server each take their own).
  std::vector<CallRecord> TakeRecords();
  std::vector<CallRecord> TakeRecords(const std::string& device);

  const R2fServerOptions& options() const { return options_; }
  Transport& transport() { return *transport_; }

 private:
  struct DeviceView {
    std::optional<pb::QuantizedModel> deployed;  // what this server deployed last
    std::optional<uint64_t> version_on_device;   // from the device's latest reply
    std::optional<pb::Ack> last_ack;
    uint64_t lease_id = 0;         // the lease this server holds on the device (0: none)
    std::optional<LinkSpec> link;  // SetDeviceLink; else options().link
    bool throttle = false;
    std::shared_ptr<Throttle> downlink_throttle, uplink_throttle;  // null unless throttled
  };
  struct LinkOfCall {
    LinkSpec spec;
    std::shared_ptr<Throttle> downlink, uplink;
  };

  R2fServer(R2fServerOptions options, std::unique_ptr<Transport> transport);
  // The device's link and throttles, created on first use. Takes mu_.
  Result<LinkOfCall> LinkFor(const std::string& device);
  // One request/reply over MQTT with its record and log line; the call's timeout and attempts
  // are the options' unless given.
  // `on_sent` as in Transport::Call.
  Result<Message> Exchange(const std::string& device, pb::MessageKind kind, std::string payload,
                           std::optional<std::chrono::milliseconds> timeout = std::nullopt,
                           int attempts = 0, const std::function<void()>& on_sent = {});
  Result<pb::Ack> SendDeploy(const std::string& device, const pb::DeployModelRequest& request,
                             const std::function<void()>& on_sent);
  // deployModel, calling `on_sent` when its first request has been sent.
  Result<pb::Ack> Deploy(const std::string& device, const pb::QuantizedModel& model,
                         bool as_delta_if_possible, const std::function<void()>& on_sent);
  void NoteVersion(const std::string& device, uint64_t version, const pb::Ack* ack);

  R2fServerOptions options_;
  std::unique_ptr<Transport> transport_;
  mutable std::mutex mu_;
  std::map<std::string, DeviceView> devices_;  // guarded by mu_
  std::vector<CallRecord> records_;            // guarded by mu_
};

}  // namespace r2f
