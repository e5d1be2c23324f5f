// The client (device) side of the paper's Table-I API, in one place.
//
//   Table I                      here
//   6 client.sendAck(deviceID)   sendAck(ack)    -> the MSG_ACK reply to setAIoTMode/deployModel
//   7 client.sendData(id, mode)  sendData(data)  -> the MSG_DATA reply to getData
//
// The requests they answer (Table I #1-#3: setAIoTMode, deployModel, getData) are served by
// DeviceService::Handle (client/device_service.h) on the simulated accelerator; it builds its
// replies with these two functions. The transport (common/net/transport.h) publishes them on
// r2f/v1/<device>/ack and .../data and fills in the device, job and request ids, so a reply
// always answers its request.
#pragma once

#include "common/net/transport_message.h"
#include "r2f.pb.h"

namespace r2f {

// Table I #6: the acknowledgement that a command (setAIoTMode, deployModel) is done.
Message sendAck(const pb::Ack& ack);

// Table I #7: the outputs requested by getData (inference: logits; training: inputs, labels,
// encoded intermediate outputs and logits).
Message sendData(const pb::DataReply& data);

}  // namespace r2f
