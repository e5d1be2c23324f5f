// Helpers of the security tests (tests/integration/security_*_test.cc): a mosquitto that runs the
// project's own broker files (configs/mosquitto/r2f.conf, r2f-tls.conf and the real acl), password
// files made with mosquitto_passwd, test certificates made with
// configs/mosquitto/make_test_certs.sh, and a plain Paho client with credentials for playing a
// misbehaving peer. Header-only, like tests/support/mosquitto_fixture.h.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "common/net/transport.h"
#include "mqtt/async_client.h"
#include "tests/support/mosquitto_fixture.h"
#include "tests/support/test_util.h"

namespace r2f::testing {

inline constexpr char kServerUser[] = "r2f-server";

inline std::string MosquittoConfigDir() { return SourceDir() + "/configs/mosquitto"; }

// A mosquitto password file holding these (user, password) pairs, made by mosquitto_passwd.
inline bool MakePasswordFile(const std::string& path,
                             const std::vector<std::pair<std::string, std::string>>& users) {
  bool first = true;
  for (const auto& [user, password] : users) {
    const std::string cmd = std::string("mosquitto_passwd ") + (first ? "-c " : "") + "-b '" +
                            path + "' '" + user + "' '" + password + "' >/dev/null 2>&1";
    if (std::system(cmd.c_str()) != 0) return false;
    first = false;
  }
  return true;
}

// Runs configs/mosquitto/make_test_certs.sh into `dir` (client certificates for `clients`);
// `hosts` overrides the server certificate's names (R2F_CERT_HOSTS).
inline bool MakeTestCerts(const std::string& dir, const std::vector<std::string>& clients,
                          const std::string& hosts = "") {
  std::string cmd = (hosts.empty() ? "" : "R2F_CERT_HOSTS='" + hosts + "' ") +
                    MosquittoConfigDir() + "/make_test_certs.sh '" + dir + "'";
  for (const std::string& c : clients) cmd += " '" + c + "'";
  cmd += " >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

struct ProjectBrokerFiles {
  std::string passwd_file;  // stands for /etc/mosquitto/r2f/passwd
  std::string certs_dir;    // stands for /etc/mosquitto/r2f/certs; empty: no TLS listener
  // Lines appended after the project's files (they apply to the last listener: the TLS one
  // when certs_dir is set), e.g. "require_certificate true".
  std::string extra;
};

// The config the security tests run, for MosquittoBroker::Options::config: a main config like
// Debian's /etc/mosquitto/mosquitto.conf (persistence location, log file; "user root" when run
// as root) followed by configs/mosquitto/r2f.conf and, with certs_dir, r2f-tls.conf, exactly as
// shipped except for the paths (the ACL is the real configs/mosquitto/acl) and the listeners:
// the TLS listener on the broker's port when certs_dir is set (the plain one then on
// *other_port), else the plain one. Empty with *error set when a file is not as expected.
inline std::string ProjectBrokerConfig(const ProjectBrokerFiles& files, int* other_port,
                                       std::string* error) {
  std::string c;
  c += "persistence_location {dir}/\n";
  c += "log_dest file {dir}/mosquitto.log\n";
  c += "log_type error\nlog_type warning\nlog_type notice\nlog_type information\n";
  if (geteuid() == 0) c += "user root\n";

  std::string plain = ReadFile(MosquittoConfigDir() + "/r2f.conf");
  const bool tls = !files.certs_dir.empty();
  *other_port = tls ? MosquittoBroker::FreePort() : 0;
  const std::string plain_port = tls ? std::to_string(*other_port) : "{port}";
  if (ReplaceAll(&plain, "\nlistener 1883\n", "\nlistener " + plain_port + " 127.0.0.1\n") != 1) {
    *error = "configs/mosquitto/r2f.conf: expected one 'listener 1883' line";
    return "";
  }
  ReplaceAll(&plain, "/etc/mosquitto/r2f/passwd", files.passwd_file);
  ReplaceAll(&plain, "/etc/mosquitto/r2f/acl", MosquittoConfigDir() + "/acl");
  c += "# --- configs/mosquitto/r2f.conf\n" + plain + "\n";
  if (tls) {
    std::string t = ReadFile(MosquittoConfigDir() + "/r2f-tls.conf");
    if (ReplaceAll(&t, "\nlistener 8883\n", "\nlistener {port} 127.0.0.1\n") != 1) {
      *error = "configs/mosquitto/r2f-tls.conf: expected one 'listener 8883' line";
      return "";
    }
    ReplaceAll(&t, "/etc/mosquitto/r2f/certs/", files.certs_dir + "/");
    c += "# --- configs/mosquitto/r2f-tls.conf\n" + t + "\n";
  }
  // Every path of the shipped files must have been mapped to a test file.
  for (size_t at = c.find("/etc/mosquitto"); at != std::string::npos;) {
    const size_t line = c.rfind('\n', at);
    if (c.compare(line + 1, 1, "#") != 0) {
      *error = "unmapped path in the project's broker config: " +
               c.substr(line + 1, c.find('\n', at) - line - 1);
      return "";
    }
    at = c.find("/etc/mosquitto", at + 1);
  }
  c += files.extra + "\n";
  return c;
}

// Transport options of one role with credentials, quick to give up in tests.
inline TransportOptions SecureOptions(const std::string& uri, TransportOptions::Role role,
                                      const std::string& device_id, const std::string& user,
                                      const std::string& password) {
  TransportOptions o;
  o.role = role;
  o.device_id = role == TransportOptions::Role::kDevice ? device_id : "";
  o.broker_uri = uri;
  o.client_id = "test-" + (role == TransportOptions::Role::kDevice ? device_id : "server");
  o.username = user;
  o.password = password;
  o.connect_timeout = std::chrono::seconds(5);
  o.reconnect_min = std::chrono::seconds(1);
  o.reconnect_max = std::chrono::seconds(2);
  return o;
}

// A plain Paho client logged in as `user`: a peer that plays by no rules but the broker's.
class CredentialClient {
 public:
  CredentialClient(const std::string& uri, const std::string& client_id, const std::string& user,
                   const std::string& password)
      : cli_(uri, client_id) {
    cli_.start_consuming();
    mqtt::connect_options o;
    o.set_clean_session(true);
    o.set_user_name(user);
    o.set_password(password);
    try {
      cli_.connect(o)->wait();
      connected_ = true;
    } catch (const mqtt::exception& e) {
      error_ = e.what();
    }
  }
  ~CredentialClient() {
    try {
      cli_.stop_consuming();
      if (connected_) cli_.disconnect()->wait();
    } catch (const mqtt::exception&) {
    }
  }
  bool connected() const { return connected_; }
  const std::string& error() const { return error_; }

  // The broker's SUBACK code for `topic` (0..2 granted QoS, 0x80 refused); -1 on a Paho error.
  int Subscribe(const std::string& topic) {
    try {
      auto tok = cli_.subscribe(topic, 1);
      tok->wait();
      const auto codes = tok->get_subscribe_response().get_reason_codes();
      return codes.empty() ? 0 : static_cast<int>(codes[0]);
    } catch (const mqtt::exception& e) {
      return e.get_return_code() == 0x80 ? 0x80 : -1;
    }
  }
  // True when the broker acknowledged the publish (Mosquitto 2.0 also acknowledges a QoS-1
  // publish its ACL drops).
  bool Publish(const std::string& topic, const std::string& bytes, bool retained = false) {
    try {
      cli_.publish(topic, bytes.data(), bytes.size(), 1, retained)->wait();
      return true;
    } catch (const mqtt::exception&) {
      return false;
    }
  }
  // Next message received within `timeout`.
  mqtt::const_message_ptr Next(std::chrono::milliseconds timeout) {
    mqtt::const_message_ptr m;
    if (cli_.try_consume_message_for(&m, timeout)) return m;
    return nullptr;
  }

 private:
  mqtt::async_client cli_;
  bool connected_ = false;
  std::string error_;
};

}  // namespace r2f::testing
