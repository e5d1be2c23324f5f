// Test fixture for the daemon integration tests: a throwaway mosquitto, a real r2f_client
// process with a config written by the test, and the Table-I server API in-process.
#pragma once

#include <gtest/gtest.h>

#include <filesystem>
#include <iostream>
#include <memory>
#include <string>

#include "common/link/link_model.h"
#include "server/api/r2f_server_api.h"
#include "tests/support/daemon_test_util.h"
#include "tests/support/mosquitto_fixture.h"

namespace r2f::testing {

inline constexpr char kDevice[] = "dev-1";

class DaemonTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(std::string(kFashionMnistDir) + "/t10k-images-idx3-ubyte.gz")) {
      GTEST_SKIP() << "dataset-fashion-mnist is not installed";
    }
    ASSERT_TRUE(std::filesystem::exists(ClientProcess::Binary()))
        << ClientProcess::Binary() << " is not built";
    ASSERT_TRUE(broker_.Start()) << broker_.Log();
  }
  void TearDown() override {
    server_.reset();
    if (client_ && HasFailure()) std::cerr << "--- r2f_client log ---\n" << client_->Log();
    client_.reset();
  }

  // Writes the device config and starts r2f_client with it.
  void StartClient(DeviceYamlOptions o) {
    o.device_id = kDevice;
    o.broker_uri = broker_.uri();
    o.state_dir = dir_.File("state");
    o.log_file = dir_.File("client.log");
    device_options_ = o;
    WriteFile(dir_.File("client.yaml"), DeviceYaml(o));
    client_ = std::make_unique<ClientProcess>(dir_.File("client.yaml"), dir_.File("client.log"));
    ASSERT_TRUE(client_->Start());
  }

  R2fServerOptions ServerOptions() const {
    R2fServerOptions o;
    o.transport.broker_uri = broker_.uri();
    o.transport.client_id = "test-server";
    o.transport.connect_timeout = std::chrono::seconds(10);
    o.transport.reconnect_min = std::chrono::seconds(1);
    o.transport.reconnect_max = std::chrono::seconds(2);
    o.link = LinkPreset("hspa").value();
    o.job_id = "test-job";
    o.call_timeout = std::chrono::seconds(20);
    o.attempts = 2;
    return o;
  }

  // Connects the server API and waits until the device says it is online.
  void ConnectServer(R2fServerOptions o) {
    auto server = R2fServer::Connect(std::move(o));
    ASSERT_TRUE(server.ok()) << server.status().ToString();
    server_ = std::move(server).value();
    ASSERT_TRUE(WaitUntil([&] { return DeviceStatus() == "online"; }, std::chrono::seconds(20)))
        << "device never came online; status '" << DeviceStatus() << "'\n"
        << (client_ ? client_->Log() : "");
  }
  void ConnectServer() { ConnectServer(ServerOptions()); }

  // The common start of a test: the device daemon at `ber` (default options otherwise) and the
  // server API connected to it.
  void StartDeviceAndServer(double ber) {
    DeviceYamlOptions o;
    o.ber = ber;
    ASSERT_NO_FATAL_FAILURE(StartClient(o));
    ASSERT_NO_FATAL_FAILURE(ConnectServer());
  }

  std::string DeviceStatus() const {
    auto s = server_->DeviceStatus(kDevice);
    return s.ok() ? *s : "";
  }
  uint64_t RequestsHandled() const {
    auto ack = server_->LastAck(kDevice);
    return ack.ok() ? ack->requests_handled() : 0;
  }

  TempDir dir_;
  MosquittoBroker broker_;
  DeviceYamlOptions device_options_;
  std::unique_ptr<ClientProcess> client_;
  std::unique_ptr<R2fServer> server_;
};

}  // namespace r2f::testing
