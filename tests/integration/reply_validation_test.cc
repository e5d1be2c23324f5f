// The server API checks what a device sends before anything reads it: a DataReply whose sizes
// or labels do not fit its samples and classes is an error naming the device and the problem,
// never an out-of-bounds read (a device is a peer, not trusted code). The device here is a bare
// transport serving crafted replies.
#include <gtest/gtest.h>

#include <chrono>
#include <functional>
#include <string>

#include "common/net/transport.h"
#include "tests/support/daemon_fixture.h"

namespace r2f::testing {
namespace {

class ReplyValidationTest : public DaemonTest {
 protected:
  // A device that answers every getData with `make(request)`.
  void StartFakeDevice(std::function<pb::DataReply(const pb::GetDataRequest&)> make) {
    TransportOptions o;
    o.role = TransportOptions::Role::kDevice;
    o.broker_uri = broker_.uri();
    o.device_id = kDevice;
    o.client_id = "fake-device";
    o.connect_timeout = std::chrono::seconds(5);
    auto t = Transport::Connect(o);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    device_ = std::move(t).value();
    ASSERT_TRUE(device_
                    ->Serve([make](const Message& m) -> Result<Message> {
                      pb::GetDataRequest request;
                      if (!request.ParseFromString(m.payload)) {
                        return Status::InvalidArgument("not a GetDataRequest");
                      }
                      Message reply;
                      reply.kind = pb::MSG_DATA;
                      reply.payload = make(request).SerializeAsString();
                      return reply;
                    })
                    .ok());
  }
  void TearDown() override {
    server_.reset();
    device_.reset();
    DaemonTest::TearDown();
  }

  static pb::GetDataRequest Request() {
    pb::GetDataRequest r;
    r.set_mode(pb::MODE_INFERENCE);
    r.set_split(pb::SPLIT_TEST);
    for (uint64_t id : {7, 8, 9}) r.add_sample_ids(id);
    return r;
  }
  // A well-formed reply: 10 classes, labels 0, 1, 2.
  static pb::DataReply Reply(const pb::GetDataRequest& request) {
    pb::DataReply d;
    *d.mutable_sample_ids() = request.sample_ids();
    d.set_num_classes(10);
    d.set_logits(std::string(10 * request.sample_ids_size(), '\0'));
    std::string labels;
    for (int i = 0; i < request.sample_ids_size(); ++i) labels.push_back(static_cast<char>(i));
    d.set_labels(labels);
    return d;
  }

  std::unique_ptr<Transport> device_;
};

TEST_F(ReplyValidationTest, AWellFormedReplyIsAccepted) {
  ASSERT_NO_FATAL_FAILURE(StartFakeDevice(Reply));
  ASSERT_NO_FATAL_FAILURE(ConnectServer());
  auto data = server_->getData(kDevice, Request());
  ASSERT_TRUE(data.ok()) << data.status().ToString();
  EXPECT_EQ(data->labels().size(), 3u);
}

TEST_F(ReplyValidationTest, ALabelOutsideTheClassesIsCorruptionNamingIt) {
  ASSERT_NO_FATAL_FAILURE(StartFakeDevice([](const pb::GetDataRequest& r) {
    pb::DataReply d = Reply(r);
    d.mutable_labels()->at(1) = 10;  // classes 0..9
    return d;
  }));
  ASSERT_NO_FATAL_FAILURE(ConnectServer());
  auto data = server_->getData(kDevice, Request());
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), Status::Code::kCorruption) << data.status().ToString();
  EXPECT_NE(data.status().message().find("label 10 for sample 8, outside its 10 classes"),
            std::string::npos)
      << data.status().ToString();
}

TEST_F(ReplyValidationTest, LogitsThatDoNotFitTheSamplesAreCorruption) {
  ASSERT_NO_FATAL_FAILURE(StartFakeDevice([](const pb::GetDataRequest& r) {
    pb::DataReply d = Reply(r);
    d.set_num_classes(12);  // 30 logits are not 3 rows of 12
    return d;
  }));
  ASSERT_NO_FATAL_FAILURE(ConnectServer());
  auto data = server_->getData(kDevice, Request());
  ASSERT_FALSE(data.ok());
  EXPECT_EQ(data.status().code(), Status::Code::kCorruption) << data.status().ToString();
  EXPECT_NE(data.status().message().find("30 logits and 3 labels for 3 samples of 12 classes"),
            std::string::npos)
      << data.status().ToString();
}

}  // namespace
}  // namespace r2f::testing
