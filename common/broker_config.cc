#include "common/broker_config.h"

#include <unistd.h>

#include <string>

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

}  // namespace

Status ParseBrokerConfig(ConfigMap& section, TransportOptions* out) {
  out->broker_uri = section.GetString("uri", out->broker_uri);
  if (std::string why = CheckUri(out->broker_uri); !why.empty()) section.Fail("uri", why);
  out->client_id = section.GetString("client_id", out->client_id);
  out->username = section.GetString("username", out->username);
  out->password = section.GetString("password", out->password);
  out->ca_file = ReadableFile(section, "ca_file");
  out->cert_file = ReadableFile(section, "cert_file");
  out->key_file = ReadableFile(section, "key_file");
  return section.Finish();
}

}  // namespace r2f
