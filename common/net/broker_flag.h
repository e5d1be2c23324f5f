// The daemons' --broker flag (r2f_client, r2f_server): checked like the config's broker.uri
// when the command line is parsed, so that a typo is an error at once rather than a connect
// timeout (or a daemon retrying forever) later. Only the mains include it: it pulls in CLI11.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "common/net/broker_config.h"

namespace r2f {

inline CLI::Validator BrokerUriValidator() {
  return CLI::Validator([](std::string& uris) { return BrokerUrisProblem(uris); }, "URI[,URI...]");
}

}  // namespace r2f
