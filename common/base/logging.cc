#include "common/base/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/dist_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>

#include <mutex>
#include <vector>

namespace r2f {
namespace {

constexpr const char* kPattern = "[%Y-%m-%d %H:%M:%S.%e] [%^%l%$] [%n] %v";
constexpr const char* kDefaultComponent = "r2f";

// Every component logger writes into this one distributing sink; InitLogging swaps the sinks
// behind it, so loggers handed out earlier follow without being touched (dist_sink locks).
struct Registry {
  std::mutex mu;
  std::shared_ptr<spdlog::sinks::dist_sink_mt> dist;
  spdlog::level::level_enum level = spdlog::level::info;
};

std::shared_ptr<spdlog::logger> MakeLogger(Registry& r, const std::string& component) {
  auto logger = std::make_shared<spdlog::logger>(component, r.dist);
  logger->set_level(r.level);
  logger->flush_on(spdlog::level::trace);  // a crash must not eat the last lines of the file
  return logger;
}

Registry& GetRegistry() {
  static Registry* registry = [] {
    auto* r = new Registry;  // never destroyed: loggers may be used during static destruction
    r->dist = std::make_shared<spdlog::sinks::dist_sink_mt>();
    auto err = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    err->set_pattern(kPattern);
    r->dist->add_sink(err);
    // set_default_logger also registers it by name (replacing, never throwing).
    spdlog::set_default_logger(MakeLogger(*r, kDefaultComponent));
    return r;
  }();
  return *registry;
}

bool ParseLevel(const std::string& text, spdlog::level::level_enum* out) {
  static const std::pair<const char*, spdlog::level::level_enum> kLevels[] = {
      {"trace", spdlog::level::trace}, {"debug", spdlog::level::debug},
      {"info", spdlog::level::info},   {"warn", spdlog::level::warn},
      {"error", spdlog::level::err},   {"off", spdlog::level::off},
  };
  for (const auto& [name, level] : kLevels) {
    if (text == name) {
      *out = level;
      return true;
    }
  }
  return false;
}

}  // namespace

Status InitLogging(const std::string& level, const std::string& log_file) {
  spdlog::level::level_enum parsed;
  if (!ParseLevel(level, &parsed)) {
    return Status::InvalidArgument("unknown log level '" + level +
                                   "' (use trace, debug, info, warn, error or off)");
  }
  std::vector<spdlog::sink_ptr> sinks;
  sinks.push_back(std::make_shared<spdlog::sinks::stderr_color_sink_mt>());
  if (!log_file.empty()) {
    try {
      sinks.push_back(std::make_shared<spdlog::sinks::basic_file_sink_mt>(log_file, false));
    } catch (const spdlog::spdlog_ex& e) {
      return Status::IoError("cannot open log file '" + log_file + "': " + e.what());
    }
  }
  for (auto& sink : sinks) sink->set_pattern(kPattern);

  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  r.dist->flush();  // what the old file sink buffered must reach it before it is dropped
  r.dist->set_sinks(std::move(sinks));
  r.level = parsed;
  // Sets the level of every registered logger (all of ours are registered).
  spdlog::set_level(parsed);
  return Status::Ok();
}

std::shared_ptr<spdlog::logger> GetLogger(const std::string& component) {
  Registry& r = GetRegistry();
  std::lock_guard<std::mutex> lock(r.mu);
  if (auto existing = spdlog::get(component)) return existing;
  auto logger = MakeLogger(r, component);
  try {
    spdlog::register_logger(logger);
  } catch (const spdlog::spdlog_ex&) {
    // Someone registered the name in between, outside this module: use theirs.
    if (auto existing = spdlog::get(component)) return existing;
  }
  return logger;
}

std::string RedactSecret(const std::string& secret) { return secret.empty() ? "" : "***"; }

}  // namespace r2f
