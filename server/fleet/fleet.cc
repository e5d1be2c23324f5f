#include "server/fleet/fleet.h"

#include <omp.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "common/base/atomic_file.h"
#include "common/base/json.h"
#include "common/base/logging.h"
#include "common/net/transport_topics.h"
#include "server/api/r2f_server_api.h"
#include "server/fleet/fleet_board.h"

extern char** environ;

namespace r2f {
namespace fs = std::filesystem;
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Pauses before a device is looked at again.
constexpr milliseconds kRetryAfterFailure{2000};
constexpr milliseconds kRetryWhenOffline{10000};
constexpr milliseconds kMaxWaitForHolder{5000};

double Since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

std::string SummaryPath(const RetrainConfig& job) { return job.run_dir + "/summary.json"; }

bool Exists(const std::string& path) {
  std::error_code ec;
  return fs::exists(path, ec);
}

Accuracy AccuracyFrom(const Json& a) {
  const int64_t n = a.value("images", int64_t{0});
  auto hits = [&](const char* key) {
    return static_cast<int64_t>(std::llround(a.value(key, 0.0) * static_cast<double>(n) / 100.0));
  };
  return Accuracy::FromCounts(n, hits("top1"), hits("top5"));
}

// A finished run as its summary.json `s` tells it (the timing totals are the stage sums).
// Throws Json::exception where a value has the wrong type.
RetrainResult SummaryFromJson(const RetrainConfig& job, const Json& s) {
  RetrainResult r;
  r.run_dir = job.run_dir;
  r.device_id = s.value("device", job.session.device_id);
  r.served_by = s.value("served_by", "");
  r.iterations = s.value("iterations", int64_t{0});
  r.before = AccuracyFrom(s.value("accuracy_before", Json::object()));
  r.after = AccuracyFrom(s.value("accuracy_after", Json::object()));
  const Json timing = s.value("timing", Json::object());
  r.timing.iterations = timing.value("iterations", int64_t{0});
  r.timing.uplink_bytes = timing.value("uplink_bytes", uint64_t{0});
  r.timing.downlink_bytes = timing.value("downlink_bytes", uint64_t{0});
  for (Stage st : AllStages()) {
    r.timing.modelled_s[StageIndex(st)] =
        timing.value("modelled_s", Json::object()).value(StageName(st), 0.0);
    r.timing.measured_s[StageIndex(st)] =
        timing.value("measured_s", Json::object()).value(StageName(st), 0.0);
  }
  r.final_model_path = job.run_dir + "/model.pb";
  return r;
}

// A finished run as its summary.json tells it.
Result<RetrainResult> ReadSummary(const RetrainConfig& job) {
  R2F_ASSIGN_OR_RETURN(Json s, ReadJsonFile(SummaryPath(job)));
  // The file may come from another server process (or version) sharing the run directory:
  // a value of the wrong type is this job's error, not the end of the fleet's process.
  try {
    return SummaryFromJson(job, s);
  } catch (const Json::exception& e) {
    return Status::Corruption(SummaryPath(job) + ": not a retraining summary: " + e.what());
  }
}

// Unpaired 95% half-width of the change in top-1 points: conservative for the paired Base and
// retrained evaluations (same images, same faults).
double ChangeCi95(const Accuracy& a, const Accuracy& b) {
  auto var = [](const Accuracy& x) {
    if (x.count() == 0) return 0.0;
    const double p = x.Top1() / 100.0;
    return p * (1 - p) / static_cast<double>(x.count());
  };
  return 100.0 * 1.96 * std::sqrt(var(a) + var(b));
}

const char* StateName(FleetJob::State s) {
  switch (s) {
    case FleetJob::State::kDone:
      return "done";
    case FleetJob::State::kDoneElsewhere:
      return "done elsewhere";
    case FleetJob::State::kFailed:
      return "failed";
  }
  return "?";
}

// The jobs of one server process: a queue of devices, max_concurrent workers taking from it.
class FleetRunner {
 public:
  FleetRunner(const FleetConfig& c, R2fServer& server, const std::vector<std::string>& devices,
              FleetBoard& board, const ProgressSink& observer)
      : c_(c), server_(server), board_(board), observer_(observer) {
    for (const std::string& d : devices) {
      queue_.push_back({d, Clock::now()});
      jobs_[d].device = d;
    }
  }

  std::map<std::string, FleetJob> Run(int threads_per_job) {
    const size_t workers = std::min<size_t>(c_.max_concurrent, queue_.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < workers; ++i) {
      threads.emplace_back([this, threads_per_job] {
        omp_set_num_threads(threads_per_job);  // this job's simulator (the device mirror)
        std::string device;
        while (Next(&device)) Serve(device);
      });
    }
    for (std::thread& t : threads) t.join();
    return jobs_;
  }

 private:
  struct Pending {
    std::string device;
    Clock::time_point not_before;
  };

  // The next device that is due; false when none is left and no job could add one.
  bool Next(std::string* device) {
    std::unique_lock<std::mutex> l(mu_);
    for (;;) {
      if (queue_.empty() && running_ == 0) return false;
      auto due = std::min_element(queue_.begin(), queue_.end(), [](const auto& a, const auto& b) {
        return a.not_before < b.not_before;
      });
      if (due != queue_.end() && due->not_before <= Clock::now()) {
        *device = due->device;
        queue_.erase(due);
        ++running_;
        return true;
      }
      if (due == queue_.end()) {
        cv_.wait(l);
      } else {
        cv_.wait_until(l, due->not_before);
      }
    }
  }

  // One look at a device: done already, or lease, run (or resume) its job, release.
  void Serve(const std::string& device) {
    const RetrainConfig job = c_.JobFor(device);
    const auto start = Clock::now();
    milliseconds again{0};
    Status failure = TryJob(job, &again);
    std::lock_guard<std::mutex> l(mu_);
    FleetJob& j = jobs_[device];
    j.wall_s += Since(start);
    if (!failure.ok()) j.last_error = failure;
    const bool done = j.state != FleetJob::State::kFailed;
    if (!done && again.count() > 0) {
      queue_.push_back({device, Clock::now() + again});
    } else if (!done) {
      board_.State(device, "failed: " + failure.ToString());
    }
    --running_;
    cv_.notify_all();
  }

  // Sets the job's state when it is finished; otherwise returns why not and, in *again, when to
  // look at the device next (0: give up).
  Status TryJob(const RetrainConfig& job, milliseconds* again) {
    const std::string& device = job.session.device_id;
    if (Exists(SummaryPath(job))) return FinishFromSummary(job, FleetJob::State::kDoneElsewhere);
    Result<std::string> status = server_.DeviceStatus(device);
    if (status.ok() && *status == kStatusOffline) {
      *again = CountAttempt(device) ? kRetryWhenOffline : milliseconds(0);
      board_.State(device, "offline");
      return Status::Unavailable("device " + device + " is offline");
    }
    Result<pb::LeaseState> lease = server_.AcquireLease(device, c_.lease);
    if (!lease.ok()) {
      *again = CountAttempt(device) ? kRetryAfterFailure : milliseconds(0);
      board_.State(device, "unreachable");
      return lease.status();
    }
    if (!lease->granted()) {
      // Another server drives it: look again when its lease could have run out.
      *again = std::min(kMaxWaitForHolder, milliseconds(lease->remaining_ms() + 100));
      board_.State(device, "held by " + lease->holder());
      return Status::FailedPrecondition("leased to " + lease->holder());
    }
    return RunJob(job, again);
  }

  Status RunJob(const RetrainConfig& job, milliseconds* again) {
    const std::string& device = job.session.device_id;
    const bool resume = Exists(job.run_dir + "/checkpoint/state.yaml");
    board_.State(device, resume ? "resuming" : "starting");
    CountAttempt(device);
    Result<RetrainResult> r = Status::Internal("the job did not run");
    if (Status s = server_.SetDeviceLink(device, job.session.link.spec, job.session.link.throttle);
        !s.ok()) {
      r = s;
    } else {
      r = RunRetrain(job, resume, server_, [this](const RetrainProgress& p) {
        board_.Progress(p);
        if (observer_) observer_(p);
      });
    }
    server_.ReleaseDevice(device);
    if (r.ok()) {
      std::lock_guard<std::mutex> l(mu_);
      jobs_[device].state = FleetJob::State::kDone;
      jobs_[device].result = std::move(r).value();
      board_.State(device, "done");
      return Status::Ok();
    }
    GetLogger("fleet")->warn("{}: job stopped: {}", device, r.status().ToString());
    if (Exists(SummaryPath(job))) return FinishFromSummary(job, FleetJob::State::kDoneElsewhere);
    std::lock_guard<std::mutex> l(mu_);
    *again = jobs_[device].attempts < c_.job_attempts ? kRetryAfterFailure : milliseconds(0);
    return r.status();
  }

  Status FinishFromSummary(const RetrainConfig& job, FleetJob::State state) {
    Result<RetrainResult> r = ReadSummary(job);
    if (!r.ok()) return r.status();
    std::lock_guard<std::mutex> l(mu_);
    FleetJob& j = jobs_[job.session.device_id];
    j.state = state;
    j.result = std::move(r).value();
    board_.State(job.session.device_id, "done by " + j.result.served_by);
    return Status::Ok();
  }

  // Counts one more attempt; true while attempts remain.
  bool CountAttempt(const std::string& device) {
    std::lock_guard<std::mutex> l(mu_);
    return ++jobs_[device].attempts < c_.job_attempts;
  }

  const FleetConfig& c_;
  R2fServer& server_;
  FleetBoard& board_;
  const ProgressSink& observer_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;
  int running_ = 0;
  std::map<std::string, FleetJob> jobs_;
};

// The devices to serve: the config's list, or every device online after discover_wait.
std::vector<std::string> ResolveDevices(const FleetConfig& c, R2fServer& server) {
  if (!c.discover) return c.devices;
  std::this_thread::sleep_for(c.discover_wait);
  std::vector<std::string> online;
  for (const auto& [device, status] : server.transport().DeviceStatuses()) {
    if (status == kStatusOnline) online.push_back(device);
  }
  GetLogger("fleet")->info("discovered {} online devices under {}", online.size(),
                           c.base.session.server.transport.topic_prefix);
  return online;
}

Json JobJson(const FleetJob& j) {
  const RetrainResult& r = j.result;
  Json stages = Json::object();
  for (Stage st : AllStages()) stages[StageName(st)] = r.timing.modelled_s[StageIndex(st)];
  auto accuracy = [](const Accuracy& a) {
    return Json{{"images", a.count()}, {"top1", a.Top1()}, {"top1_ci95", a.Top1Ci95()}};
  };
  Json out = {{"device", j.device},
              {"state", StateName(j.state)},
              {"attempts", j.attempts},
              {"served_by", r.served_by},
              {"run_dir", r.run_dir},
              {"iterations", r.iterations},
              {"before", accuracy(r.before)},
              {"after", accuracy(r.after)},
              {"change", r.after.Top1() - r.before.Top1()},
              {"change_ci95", ChangeCi95(r.before, r.after)},
              {"uplink_bytes", r.timing.uplink_bytes},
              {"downlink_bytes", r.timing.downlink_bytes},
              {"modelled_s", r.timing.ModelledTotal()},
              {"measured_s", r.timing.MeasuredTotal()},
              {"modelled_stage_s", stages},
              {"wall_s", j.wall_s}};
  if (!j.last_error.ok()) out["last_error"] = j.last_error.ToString();
  return out;
}

// The project's plot of the fleet (per-device accuracy and stage shares), when python3 with
// matplotlib is there; a missing plot is a warning, not a failure of the fleet.
std::string Plot(const std::string& script, const std::string& json_path) {
  if (script.empty()) return "";
  if (!Exists(script)) {
    GetLogger("fleet")->warn("no plot: fleet.plot_script '{}' does not exist", script);
    return "";
  }
  const std::string png = fs::path(json_path).replace_extension(".png").string();
  const std::string python = Exists("/usr/bin/python3") ? "/usr/bin/python3" : "python3";
  std::vector<std::string> args = {python, script, json_path, png};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_t pid = 0;
  int status = -1;
  if (posix_spawnp(&pid, argv[0], nullptr, nullptr, argv.data(), environ) != 0 ||
      waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    GetLogger("fleet")->warn("the plot script {} failed (exit status {})", script, status);
    return "";
  }
  return png;
}

}  // namespace

Result<FleetResult> RunFleet(const FleetConfig& c, bool restart, const ProgressSink& observer) {
  const auto start = Clock::now();
  if (restart) {
    std::error_code ec;
    fs::remove_all(c.base.run_dir, ec);
  }
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  const int threads = c.threads_per_job > 0 ? c.threads_per_job
                                            : std::max(1, cores / std::max(1, c.max_concurrent));
  SetTrainingThreads(threads);
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<R2fServer> server,
                       R2fServer::Connect(c.base.session.server));
  const std::vector<std::string> devices = ResolveDevices(c, *server);
  if (devices.empty()) return Status::NotFound("no device to serve (none online under discover)");
  GetLogger("fleet")->info("{} devices, {} jobs at a time, {} threads each; runs in {}",
                           devices.size(), c.max_concurrent, threads, c.base.run_dir);
  FleetBoard board(devices, isatty(STDERR_FILENO) == 1);
  FleetRunner runner(c, *server, devices, board, observer);
  std::map<std::string, FleetJob> jobs = runner.Run(threads);

  FleetResult result;
  result.server = server->transport().client_id();
  result.bytes_received = server->transport().stats().bytes_received;
  for (const std::string& d : devices) result.jobs.push_back(jobs[d]);
  result.wall_s = Since(start);
  Json list = Json::array();
  for (const FleetJob& j : result.jobs) list.push_back(JobJson(j));
  const Json json = {{"config", c.source},
                     {"server", result.server},
                     {"wall_s", result.wall_s},
                     {"max_concurrent", c.max_concurrent},
                     {"bytes_received", result.bytes_received},
                     {"devices", list}};
  result.json_path = c.base.run_dir + "/fleet.json";
  R2F_RETURN_IF_ERROR(WriteFileAtomically(result.json_path, DumpJson(json, 2) + "\n"));
  result.plot_path = Plot(c.plot_script, result.json_path);
  return result;
}

std::string FormatFleetTable(const FleetResult& r) {
  std::string out;
  char line[256];
  std::snprintf(line, sizeof line, "%-12s %-15s %8s %8s %15s %10s %12s %10s  %s\n", "device",
                "state", "Base", "after", "change [pts]", "uplink MB", "modelled [s]", "wall [s]",
                "served by");
  out += line;
  for (const FleetJob& j : r.jobs) {
    const RetrainResult& x = j.result;
    const bool has = j.state != FleetJob::State::kFailed;
    char change[32] = "-";
    if (has) {
      std::snprintf(change, sizeof change, "%+.2f ±%.2f", x.after.Top1() - x.before.Top1(),
                    ChangeCi95(x.before, x.after));
    }
    std::snprintf(line, sizeof line, "%-12s %-15s %7.2f%% %7.2f%% %15s %10.2f %12.1f %10.1f  %s\n",
                  j.device.c_str(), StateName(j.state), has ? x.before.Top1() : 0.0,
                  has ? x.after.Top1() : 0.0, change, x.timing.uplink_bytes / 1e6,
                  x.timing.ModelledTotal(), j.wall_s,
                  has ? x.served_by.c_str() : j.last_error.ToString().c_str());
    out += line;
  }
  return out;
}

}  // namespace r2f
