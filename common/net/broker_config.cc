#include "common/net/broker_config.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "common/base/logging.h"

namespace r2f {
namespace {

// "scheme://host:port" with a known scheme and a decimal port in [1, 65535]; an error message or
// "" when fine. Paho would accept more forms, but a typo here otherwise shows up only as a
// connect timeout much later.
std::string CheckUri(const std::string& uri) {
  const size_t sep = uri.find("://");
  if (sep == std::string::npos) return "expected scheme://host:port, got '" + uri + "'";
  const std::string scheme = uri.substr(0, sep);
  if (scheme != "tcp" && scheme != "ssl" && scheme != "ws" && scheme != "wss") {
    return "scheme must be tcp, ssl, ws or wss, got '" + scheme + "'";
  }
  const std::string rest = uri.substr(sep + 3);
  const size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0) {
    return "expected scheme://host:port, got '" + uri + "'";
  }
  std::string port = rest.substr(colon + 1);
  const size_t slash = port.find('/');  // ws://host:port/path
  if (slash != std::string::npos) port.resize(slash);
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
      std::stoi(port) > 65535) {
    return "port must be in [1, 65535], got '" + port + "'";
  }
  return "";
}

std::string ReadableFile(ConfigMap& section, const std::string& key) {
  std::string path = section.GetString(key, "");
  if (!path.empty() && ::access(path.c_str(), R_OK) != 0) {
    section.Fail(key, "cannot read file '" + path + "'");
  }
  return path;
}

// The password in `path`: its content without the trailing line break. Errors go to the
// section; they name the file, never its content.
std::string ReadPasswordFile(ConfigMap& section, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    section.Fail("password_file", "cannot read file '" + path + "'");
    return "";
  }
  std::string text;
  text.resize(kMaxPasswordFileBytes + 1);
  in.read(&text[0], static_cast<std::streamsize>(text.size()));
  text.resize(static_cast<size_t>(in.gcount()));
  if (text.size() > kMaxPasswordFileBytes) {
    section.Fail("password_file", "file '" + path + "' is larger than " +
                                      std::to_string(kMaxPasswordFileBytes) +
                                      " bytes; it must hold the password only");
    return "";
  }
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  if (text.empty()) {
    section.Fail("password_file", "file '" + path + "' is empty");
    return "";
  }
  if (text.find_first_of("\r\n") != std::string::npos) {
    section.Fail("password_file", "file '" + path + "' must hold one line (the password)");
    return "";
  }
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & S_IROTH) != 0) {
    GetLogger("config")->warn(
        "{}: broker.password_file '{}' is readable by every user of this machine (chmod o-r)",
        section.origin(), path);
  }
  return text;
}

}  // namespace

std::string BrokerUrisProblem(const std::string& uris) {
  const std::vector<std::string> list = SplitBrokerUris(uris);
  if (list.empty()) return "no broker URI given";
  for (const std::string& uri : list) {
    if (std::string why = CheckUri(uri); !why.empty()) return why;
  }
  return "";
}

Status ParseBrokerConfig(ConfigMap& section, TransportOptions* out) {
  out->broker_uri = section.GetString("uri", out->broker_uri);
  if (std::string why = BrokerUrisProblem(out->broker_uri); !why.empty()) section.Fail("uri", why);
  out->client_id = section.GetString("client_id", out->client_id);
  out->username = section.GetString("username", out->username);

  const bool has_password = section.Has("password");
  const std::string password = section.GetString("password", "");
  const std::string password_file = section.GetString("password_file", "");
  const std::string password_env = section.GetString("password_env", "");
  const int sources = int{has_password} + int{!password_file.empty()} + int{!password_env.empty()};
  if (sources > 1) {
    section.Fail(!password_env.empty() ? "password_env" : "password_file",
                 "give at most one of password, password_file and password_env");
  } else if (!password_file.empty()) {
    out->password = ReadPasswordFile(section, password_file);
  } else if (!password_env.empty()) {
    const char* value = std::getenv(password_env.c_str());
    if (value == nullptr || *value == '\0') {
      section.Fail("password_env",
                   "environment variable '" + password_env + "' is not set or empty");
    } else {
      out->password = value;
    }
  } else if (has_password) {
    out->password = password;
  }
  if (!out->password.empty() && out->username.empty()) {
    section.Fail("username", "a password is configured but no username");
  }

  out->ca_file = ReadableFile(section, "ca_file");
  out->cert_file = ReadableFile(section, "cert_file");
  out->key_file = ReadableFile(section, "key_file");
  if (!out->key_file.empty() && out->cert_file.empty()) {
    section.Fail("key_file", "a client key needs its certificate (cert_file)");
  }
  out->tls_verify_hostname = section.GetBool("verify_hostname", out->tls_verify_hostname);
  out->chunk_bytes =
      static_cast<size_t>(section.GetInt("chunk_kib", static_cast<int64_t>(out->chunk_bytes >> 10),
                                         kMinChunkKib, kMaxChunkKib))
      << 10;
  return section.Finish();
}

}  // namespace r2f
