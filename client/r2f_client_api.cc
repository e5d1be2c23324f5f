#include "client/r2f_client_api.h"

namespace r2f {

Message sendAck(const pb::Ack& ack) {
  Message reply;
  reply.kind = pb::MSG_ACK;
  reply.payload = ack.SerializeAsString();
  return reply;
}

Message sendData(const pb::DataReply& data) {
  Message reply;
  reply.kind = pb::MSG_DATA;
  reply.payload = data.SerializeAsString();
  return reply;
}

}  // namespace r2f
