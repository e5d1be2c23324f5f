// A throwaway two-node RabbitMQ 3.10 cluster with the MQTT plugin on loopback, for the tests
// labelled "cluster" (docs/fleet.md). tests/support/rabbitmq_cluster.sh does the work: its own
// epmd and free ports, both nodes started in parallel, node 2 joined to node 1; Start returns
// once both MQTT listeners serve and the cluster has formed (~10-20 s on 2 cores).
//
//   r2f::testing::RabbitMqCluster cluster;
//   ASSERT_TRUE(cluster.Start()) << cluster.Log();
//   device.broker_uri = cluster.uri(1) + "," + cluster.uri(2);   // fails over to node 2
#pragma once

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "tests/support/test_util.h"

extern char** environ;

namespace r2f::testing {

class RabbitMqCluster {
 public:
  RabbitMqCluster() = default;
  ~RabbitMqCluster() {
    if (started_) Run({"stop", dir_.path() + "/c"});
  }
  RabbitMqCluster(const RabbitMqCluster&) = delete;
  RabbitMqCluster& operator=(const RabbitMqCluster&) = delete;

  // Whether Debian's rabbitmq-server (with its MQTT plugin) is installed.
  static bool Installed() {
    return std::system(
               "ls -d /usr/lib/rabbitmq/lib/rabbitmq_server-3.*/plugins/rabbitmq_mqtt-* "
               "> /dev/null 2>&1") == 0;
  }

  bool Start() {
    if (!Run({"start", dir_.path() + "/c"})) return false;
    started_ = true;
    std::istringstream env(ReadFile(dir_.path() + "/c/ports.env"));
    for (std::string line; std::getline(env, line);) {
      const size_t eq = line.find('=');
      if (eq != std::string::npos) ports_[line.substr(0, eq)] = line.substr(eq + 1);
    }
    return !ports_["MQTT1"].empty() && !ports_["MQTT2"].empty();
  }
  // SIGKILL of node n (1 or 2): a crash.
  bool Kill(int n) { return Run({"kill", dir_.path() + "/c", std::to_string(n)}); }
  // Starts node n again; true once it has rejoined and serves MQTT.
  bool Restart(int n) { return Run({"restart", dir_.path() + "/c", std::to_string(n)}); }

  std::string uri(int n) const {
    return "tcp://127.0.0.1:" + ports_.at("MQTT" + std::to_string(n));
  }
  // The script's output and both nodes' logs.
  std::string Log() const {
    std::string log = ReadFile(dir_.File("script.log"));
    for (int n : {1, 2}) {
      log += "--- node " + std::to_string(n) + " ---\n" +
             ReadFile(dir_.path() + "/c/node" + std::to_string(n) + "/stdout.log");
    }
    return log;
  }

 private:
  bool Run(std::vector<std::string> args) {
    const std::string script = SourceDir() + "/tests/support/rabbitmq_cluster.sh";
    args.insert(args.begin(), {"/bin/bash", script});
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    const std::string log = dir_.File("script.log");
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    // A test throws its cluster away: stop it at once.
    std::vector<std::string> env_strings = {"R2F_RMQ_STOP_TIMEOUT=0"};
    for (char** e = environ; *e != nullptr; ++e) env_strings.push_back(*e);
    std::vector<char*> env;
    for (std::string& e : env_strings) env.push_back(e.data());
    env.push_back(nullptr);
    pid_t pid = -1;
    const int rc = posix_spawn(&pid, argv[0], &fa, nullptr, argv.data(), env.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return false;
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) && WEXITSTATUS(status) == 0;
  }

  TempDir dir_;
  bool started_ = false;
  std::map<std::string, std::string> ports_;
};

}  // namespace r2f::testing
