// Logging for R2F: spdlog with one logger per component ("server", "mqtt", "accel", ...), all
// writing through the same sinks (stderr, and a file when configured) with the same pattern:
//   [2024-05-01 12:00:00.123] [info] [mqtt] connected to tcp://127.0.0.1:1883
// spdlog's default logger is the component "r2f", so spdlog::info(...) works everywhere.
#pragma once

#include <memory>
#include <string>

#include <spdlog/spdlog.h>

#include "common/base/status.h"

namespace r2f {

// (Re)configures logging: `level` is trace, debug, info, warn, error or off; `log_file`, when
// not empty, receives every message as well as stderr (appended to; missing directories are
// created).
// Loggers obtained before the call keep working and follow the new sinks and level. On error
// (InvalidArgument for a bad level, IoError for a file that cannot be opened) nothing changes.
// Call from one thread at start-up; logging itself is thread-safe.
Status InitLogging(const std::string& level, const std::string& log_file);

// The logger of a component, created on first use with the current sinks and level.
// Thread-safe.
std::shared_ptr<spdlog::logger> GetLogger(const std::string& component);

// What to log in place of a secret (password, token, key): "***" when it is set, "" when it is
// empty, so that a log shows whether a secret was configured but never its value or length.
std::string RedactSecret(const std::string& secret);

}  // namespace r2f
