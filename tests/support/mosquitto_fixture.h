// A throwaway mosquitto broker for tests: its own free loopback port, config and log in a
// TempDir, started as a child process; Kill() (SIGKILL, like a crash), Stop() (SIGTERM, saves
// persistence) and Restart() on the same port. Header-only so that any test binary can include
// it without a CMake change (tests/support/test_util.cc is what every test binary compiles besides
// its own *_test.cc files).
//
//   r2f::testing::MosquittoBroker broker;
//   ASSERT_TRUE(broker.Start()) << broker.Log();
//   opts.broker_uri = broker.uri();
#pragma once

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "tests/support/test_util.h"

extern char** environ;

namespace r2f::testing {

// glibc returns the pages of every freed message of ~128 KiB to the kernel by default, so a
// broker relaying megabytes took a page fault per 4 KiB it moved: a 1.9 MB reply spent ~3 ms
// more in Mosquitto (docs/protocol.md, "Per-call latency, and the broker's allocator"). Same values
// as the daemons' own policy (common/base/malloc_policy.h).
inline const std::string kBrokerMallocTunables =
    "glibc.malloc.mmap_threshold=33554432:glibc.malloc.trim_threshold=268435456";

class MosquittoBroker {
 public:
  // A port the kernel just handed out for 127.0.0.1 (free now; a race with other processes is
  // possible but harmless in practice: Start then fails visibly).
  static int FreePort() {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = 0;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    int port = 0;
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
  }

  struct Options {
    // Keep sessions and retained messages across Stop()/Restart() (saved on SIGTERM only).
    bool persistence = false;
    // Extra lines appended to the config (e.g. "message_size_limit 1000").
    std::string extra_config;
    // When set, the whole config instead of the generated one (the security tests run the
    // project's configs/mosquitto files): "{port}" and "{dir}" become port() and dir(). It must
    // open a listener on 127.0.0.1:{port} (Start waits for it) and say "user root" when run as
    // root; `persistence` and `extra_config` are ignored.
    std::string config;
    // Run the broker with the project's allocator settings (kBrokerMallocTunables); false gives
    // glibc's defaults, for benchmarks that show the difference.
    bool tuned_malloc = true;
  };

  MosquittoBroker() : MosquittoBroker(Options()) {}
  explicit MosquittoBroker(Options options) : options_(std::move(options)) {}
  ~MosquittoBroker() { Kill(); }
  MosquittoBroker(const MosquittoBroker&) = delete;
  MosquittoBroker& operator=(const MosquittoBroker&) = delete;

  // Picks a port (first call only), writes the config and starts the broker; true once the port
  // accepts connections. On false, Log() tells why.
  bool Start() {
    if (pid_ > 0) return true;
    if (port_ == 0) port_ = FreePort();
    if (port_ == 0) return false;
    WriteFile(dir_.File("mosquitto.conf"), Config());
    // A restart right after a kill may find the port briefly busy; mosquitto then exits and we
    // try again.
    for (int spawn = 0; spawn < 5; ++spawn) {
      if (!Spawn()) return false;
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
      bool exited = false;
      while (!exited && std::chrono::steady_clock::now() < deadline) {
        if (Accepts()) return true;
        int status = 0;
        exited = waitpid(pid_, &status, WNOHANG) == pid_;
        if (!exited) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (!exited) break;
      pid_ = -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    Kill();
    return false;
  }

  // SIGKILL, as a crash: no persistence is written, clients see the connection drop.
  void Kill() { Signal(SIGKILL); }
  // SIGTERM: mosquitto saves its persistence database (if enabled) and exits.
  void Stop() { Signal(SIGTERM); }
  // Starts again on the same port with the same config (and database, if persistent).
  bool Restart() {
    Kill();
    return Start();
  }

  bool running() const { return pid_ > 0; }
  int port() const { return port_; }
  std::string uri() const { return "tcp://127.0.0.1:" + std::to_string(port_); }
  const std::string& dir() const { return dir_.path(); }
  std::string Log() const {
    return ReadFile(dir_.File("mosquitto.log")) + ReadFile(dir_.File("mosquitto.stdout"));
  }

 private:
  std::string Config() const {
    if (!options_.config.empty()) {
      std::string c = options_.config;
      for (const auto& [key, value] :
           {std::pair<std::string, std::string>{"{port}", std::to_string(port_)},
            {"{dir}", dir_.path()}}) {
        for (size_t at = c.find(key); at != std::string::npos;
             at = c.find(key, at + value.size())) {
          c.replace(at, key.size(), value);
        }
      }
      return c;
    }
    std::string c;
    c += "listener " + std::to_string(port_) + " 127.0.0.1\n";
    c += "allow_anonymous true\n";
    // As root mosquitto would drop to user 'mosquitto', who cannot read our TempDir.
    if (geteuid() == 0) c += "user root\n";
    c += "log_dest file " + dir_.File("mosquitto.log") + "\n";
    c += "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n";
    // A 64 MB message is 512 chunks; the default of 1000 queued messages per client is too
    // tight when a subscriber stalls. 0 = unlimited.
    c += "max_queued_messages 0\n";
    // Small request and reply segments wait out delayed ACKs with Nagle on
    // (common/net/tcp_nodelay.h).
    c += "set_tcp_nodelay true\n";
    if (options_.persistence) {
      c += "persistence true\n";
      c += "persistence_location " + dir_.path() + "/\n";
      c += "autosave_interval 0\n";
    } else {
      c += "persistence false\n";
    }
    c += options_.extra_config;
    if (!c.empty() && c.back() != '\n') c += '\n';
    return c;
  }

  bool Spawn() {
    const std::string bin = "/usr/sbin/mosquitto";
    const std::string conf = dir_.File("mosquitto.conf");
    const std::string out = dir_.File("mosquitto.stdout");
    std::vector<char*> argv = {const_cast<char*>(bin.c_str()), const_cast<char*>("-c"),
                               const_cast<char*>(conf.c_str()), nullptr};
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    // The allocator settings the project's brokers run with (configs/mosquitto/README), unless
    // the environment has its own.
    std::vector<std::string> env;
    const std::string tunables_var = "GLIBC_TUNABLES=";
    std::string inherited;  // the environment's own tunables, kept
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string var = *e;
      if (var.rfind(tunables_var, 0) == 0) {
        inherited = var.substr(tunables_var.size());
      } else {
        env.push_back(var);
      }
    }
    std::string tunables = inherited;
    if (options_.tuned_malloc) tunables += (tunables.empty() ? "" : ":") + kBrokerMallocTunables;
    if (!tunables.empty()) env.push_back(tunables_var + tunables);
    std::vector<char*> envp;
    for (std::string& e : env) envp.push_back(e.data());
    envp.push_back(nullptr);
    pid_t pid = 0;
    const int rc = posix_spawn(&pid, bin.c_str(), &fa, nullptr, argv.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0) return false;
    pid_ = pid;
    return true;
  }

  void Signal(int sig) {
    if (pid_ <= 0) return;
    kill(pid_, sig);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

  bool Accepts() const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return false;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    return ok;
  }

  Options options_;
  TempDir dir_;
  int port_ = 0;
  pid_t pid_ = -1;
};

}  // namespace r2f::testing
