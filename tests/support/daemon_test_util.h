// Helpers shared by the daemon integration tests (tests/integration/*_test.cc; also used in
// tests/client/, tests/cluster/ and tests/bench/): a test model, device configs written as
// YAML, and a real r2f_client process that can be stopped, killed and restarted. Header-only:
// the test CMake compiles only *_test.cc files and test_util.cc.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "accel_sim/random_model.h"
#include "common/data/dataset.h"
#include "common/ir/model_zoo.h"
#include "common/net/chunker.h"
#include "common/net/reassembler.h"
#include "mqtt/async_client.h"
#include "r2f.pb.h"
#include "tests/support/test_util.h"

extern char** environ;

namespace r2f::testing {

inline constexpr char kFashionMnistDir[] = "/usr/share/datasets/fashion-mnist";
inline constexpr int64_t kTrainLimit = 512;
inline constexpr int64_t kTestLimit = 1024;

inline bool WaitUntil(const std::function<bool()>& cond, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cond()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return cond();
}

// A small resnet18 (the zoo's default width) for 28x28x1 images with random full-range int8
// parameters (accel_sim/random_model.h): every MAC layer, residual adds and pooling are
// exercised, no training needed. Deterministic in `seed`.
inline pb::QuantizedModel TestModel(uint64_t seed = 7, uint64_t version = 1) {
  NetworkSpec spec = DefaultNetworkSpec("resnet18").value();
  spec.width = 0.125;
  pb::Graph graph = BuildNetwork(spec).value();
  pb::QuantizedModel model = accel::MakeRandomQuantizedModel(graph, seed).value();
  model.set_model_version(version);
  return model;
}

// `base` with a few weights of its first and last MAC layers changed: what a retraining step
// produces (same graph and formats, new weights), deployable as a weight delta.
inline pb::QuantizedModel Retrained(const pb::QuantizedModel& base, uint64_t version) {
  pb::QuantizedModel model = base;
  model.set_model_version(version);
  for (int l : {0, model.layers_size() - 1}) {
    std::string* w = model.mutable_layers(l)->mutable_weights();
    for (size_t i = 0; i < w->size(); i += 37) (*w)[i] = static_cast<char>((*w)[i] ^ 0x15);
  }
  model.mutable_layers(0)->set_bias(0, model.layers(0).bias(0) + 3);
  return model;
}

inline DatasetSpec TestSplit(const std::string& split) {
  DatasetSpec spec;
  spec.dir = kFashionMnistDir;
  spec.split = split;
  spec.limit = split == "train" ? kTrainLimit : kTestLimit;
  return spec;
}

struct DeviceYamlOptions {
  std::string device_id = "dev-1";
  std::string broker_uri;
  std::string state_dir;
  std::string log_file;
  double ber = 0.0;
  uint64_t seed = 11;
  int handler_delay_ms = 0;
  int64_t max_samples = 1024;
  std::string log_level = "debug";  // tests count the per-request lines
  bool persistent_session = true;
  double status_interval_s = 5;
};

// A complete device config for the test data (kTrainLimit / kTestLimit samples).
inline std::string DeviceYaml(const DeviceYamlOptions& o) {
  std::string y;
  y += "device_id: " + o.device_id + "\n";
  y += "broker: {uri: '" + o.broker_uri +
       "', persistent_session: " + (o.persistent_session ? "true" : "false") +
       ", status_interval_s: " + std::to_string(o.status_interval_s) +
       ", client_id: 'test-client-" + o.device_id + "'}\n";
  y += "data:\n";
  y += "  train: {dir: " + std::string(kFashionMnistDir) +
       ", limit: " + std::to_string(kTrainLimit) + "}\n";
  y += "  test: {dir: " + std::string(kFashionMnistDir) + ", limit: " + std::to_string(kTestLimit) +
       "}\n";
  y += "fault: {ber: " + std::to_string(o.ber) + ", seed: " + std::to_string(o.seed) + "}\n";
  y += "state_dir: '" + o.state_dir + "'\n";
  y += "limits: {max_samples_per_request: " + std::to_string(o.max_samples) + "}\n";
  y += "log: {level: " + o.log_level + ", file: '" + o.log_file + "'}\n";
  y += "debug: {handler_delay_ms: " + std::to_string(o.handler_delay_ms) + "}\n";
  return y;
}

// The real device daemon (build/bin/r2f_client) as a child process.
class ClientProcess {
 public:
  ClientProcess(std::string config_path, std::string log_path)
      : config_(std::move(config_path)), log_(std::move(log_path)) {}
  ~ClientProcess() { Kill(); }
  ClientProcess(const ClientProcess&) = delete;
  ClientProcess& operator=(const ClientProcess&) = delete;

  static std::string Binary() { return BinDir() + "/r2f_client"; }

  bool Start() {
    if (pid_ > 0) return true;
    const std::string bin = Binary();
    std::vector<char*> argv = {const_cast<char*>(bin.c_str()), const_cast<char*>("--config"),
                               const_cast<char*>(config_.c_str()), nullptr};
    const std::string out = log_ + ".stderr";
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return false;
    pid_ = pid;
    return true;
  }
  // SIGKILL: a crash, no clean "offline" (the broker's last will says it).
  void Kill() { Signal(SIGKILL); }
  // SIGTERM; the exit status (-1 if it did not exit normally within 15 s).
  int Terminate() { return Signal(SIGTERM); }
  // SIGSTOP and SIGCONT: requests sent in between wait at the broker and reach the device in
  // the order they were sent.
  void Pause() {
    if (pid_ > 0) kill(pid_, SIGSTOP);
  }
  void Resume() {
    if (pid_ > 0) kill(pid_, SIGCONT);
  }
  bool Restart() {
    Kill();
    return Start();
  }
  bool running() const { return pid_ > 0; }
  // The daemon's log file and its stderr.
  std::string Log() const { return ReadFile(log_) + ReadFile(log_ + ".stderr"); }
  size_t CountInLog(const std::string& text) const {
    const std::string log = ReadFile(log_);
    size_t count = 0;
    for (size_t pos = log.find(text); pos != std::string::npos; pos = log.find(text, pos + 1)) {
      ++count;
    }
    return count;
  }

  // Waits for the process to exit on its own; its exit status, or -1 (after a SIGKILL) when it
  // did not exit normally within `timeout`.
  int Wait(std::chrono::milliseconds timeout) {
    if (pid_ <= 0) return -1;
    int status = 0;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (waitpid(pid_, &status, WNOHANG) == 0) {
      if (std::chrono::steady_clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &status, 0);
        pid_ = -1;
        return -1;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

 private:
  int Signal(int sig) {
    if (pid_ <= 0) return -1;
    kill(pid_, sig);
    return Wait(std::chrono::seconds(15));
  }

  std::string config_;
  std::string log_;
  pid_t pid_ = -1;
};

// `r2f_server <args>` as a child process, output appended to `log`; -1 when it cannot be
// started.
inline pid_t SpawnServerCommand(std::vector<std::string> args, const std::string& log) {
  const std::string bin = BinDir() + "/r2f_server";
  args.insert(args.begin(), bin);
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  if (posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), environ) != 0) pid = -1;
  posix_spawn_file_actions_destroy(&fa);
  return pid;
}

// `r2f_server retrain --config F [--resume]` as a child process.
inline pid_t SpawnServer(const std::string& config, bool resume, const std::string& log) {
  std::vector<std::string> args{"retrain", "--config", config};
  if (resume) args.push_back("--resume");
  return SpawnServerCommand(args, log);
}

// Publishes `bytes` once with QoS 1 through the mosquitto_pub command-line client (a peer that
// shares no code with ours). True when mosquitto_pub succeeded.
inline bool MosquittoPub(int port, const std::string& topic, const std::string& bytes,
                         const std::string& scratch_file) {
  WriteFile(scratch_file, bytes);
  const std::string cmd = "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(port) +
                          " -q 1 -i r2f-test-pub -t '" + topic + "' -f '" + scratch_file + "'";
  return std::system(cmd.c_str()) == 0;
}

// The envelope of a one-chunk message, for hand-made requests.
inline pb::Envelope OneChunkEnvelope(pb::MessageKind kind, const std::string& device,
                                     const std::string& job, uint64_t request_id,
                                     const std::string& payload) {
  Message m;
  m.kind = kind;
  m.job_id = job;
  m.request_id = request_id;
  m.device_id = device;
  m.payload = payload;
  return SplitIntoChunks(m, kDefaultChunkBytes).value().at(0);
}

// A plain Paho subscriber that watches replies on the wire.
class RawSubscriber {
 public:
  RawSubscriber(const std::string& uri, const std::string& client_id) : cli_(uri, client_id) {
    cli_.start_consuming();
    mqtt::connect_options o;
    o.set_clean_session(true);
    cli_.connect(o)->wait();
  }
  ~RawSubscriber() {
    try {
      cli_.stop_consuming();
      cli_.disconnect()->wait();
    } catch (const mqtt::exception&) {
    }
  }
  void Subscribe(const std::string& topic) { cli_.subscribe(topic, 1)->wait(); }

  // The next complete message (reassembled) whose request id is `request_id`.
  std::optional<Message> Await(uint64_t request_id, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      mqtt::const_message_ptr m;
      if (!cli_.try_consume_message_for(&m, std::chrono::milliseconds(50)) || !m) continue;
      auto env = ParseEnvelope(m->get_payload());
      if (!env.ok() || env->request_id() != request_id) continue;
      auto msg = reassembler_.Add(std::move(env).value());
      if (msg.ok() && msg->has_value()) return std::move(msg).value();
    }
    return std::nullopt;
  }

 private:
  mqtt::async_client cli_;
  Reassembler reassembler_;
};

}  // namespace r2f::testing
