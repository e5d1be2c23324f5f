// The `broker` section of a daemon config: where the MQTT broker is and how to log in. Shared by
// the device daemon (configs/client.yaml) and the server commands (configs/eval.yaml, ...).
//
//   broker:
//     uri: tcp://127.0.0.1:1883   # tcp://host:port, or ssl://host:port for TLS
//     client_id: ""               # empty: r2f-dev-<device> / r2f-server-<hostname>
//     username: ""
//     password: ""                # never logged (RedactSecret)
//     ca_file: ""                 # TLS, PEM files; must be readable when given
//     cert_file: ""
//     key_file: ""
#pragma once

#include "common/config.h"
#include "common/status.h"
#include "common/transport.h"

namespace r2f {

// Reads the keys above into the connection fields of *out (other fields are left alone) and
// returns section.Finish(). Checks the URI's form (scheme tcp, ssl, ws or wss, a host and a
// port) and that the TLS files exist.
Status ParseBrokerConfig(ConfigMap& section, TransportOptions* out);

}  // namespace r2f
