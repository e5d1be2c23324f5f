// The `broker` section of a daemon config: where the MQTT broker is and how to log in. Shared by
// the device daemon (configs/client.yaml) and the server commands (configs/eval.yaml, ...).
//
//   broker:
//     uri: tcp://127.0.0.1:1883   # tcp://host:port, or ssl://host:port for TLS; several URIs
//                                 # separated by commas for the nodes of a broker cluster
//     client_id: ""               # empty: r2f-dev-<device> / r2f-server-<hostname>
//     username: ""                # a device logs in with its device id (configs/mosquitto/acl)
//     password: ""                # never logged (RedactSecret); better one of the next two:
//     password_file: ""           # the password is this file's content (one line)
//     password_env: ""            # the password is this environment variable's value
//     ca_file: ""                 # TLS, PEM files; must be readable when given
//     cert_file: ""
//     key_file: ""
//     verify_hostname: true       # TLS: the broker's certificate must name the URI's host
//     chunk_kib: 512              # payload bytes per MQTT publish of what this process sends;
//                                 # the broker's message size limit must allow it with the
//                                 # envelope's header (127 for brokers capped at 128 KB, such
//                                 # as AWS IoT Core)
//
// At most one of password, password_file and password_env may be given (docs/security.md).
#pragma once

#include <cstdint>
#include <string>

#include "common/base/config.h"
#include "common/base/status.h"
#include "common/net/transport.h"

namespace r2f {

// Largest password file read (a password is a line, not a document).
inline constexpr size_t kMaxPasswordFileBytes = 4096;
// chunk_kib's range: below 4 KiB a 256 MiB message would exceed the receivers' default chunk
// count limit (TransportOptions::max_chunk_count: 65536), 16 KiB leaves room; above 16 MiB one
// publish would hold the connection, and the broker's memory, for most of a large message
// (docs/protocol.md, "Chunking").
inline constexpr int64_t kMinChunkKib = 16;
inline constexpr int64_t kMaxChunkKib = 16 * 1024;

// Reads the keys above into the connection fields and chunk_bytes of *out (other fields are
// left alone) and
// returns section.Finish(). Checks the URI's form (scheme tcp, ssl, ws or wss, a host and a
// port), that the TLS files exist, and resolves password_file / password_env into
// out->password (an unreadable or empty file, or an unset or empty variable, is an error naming
// the key, never the secret). A password file that every user may read is accepted with a
// warning in the log.
Status ParseBrokerConfig(ConfigMap& section, TransportOptions* out);

// What is wrong with a broker.uri value ("tcp://a:1883, tcp://b:1883"), or "" when every URI
// has the form above: the same check for the config key and the daemons' --broker flag.
std::string BrokerUrisProblem(const std::string& uris);

}  // namespace r2f
