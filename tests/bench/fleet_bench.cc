// r2f_fleet_bench: the fleet's targets (docs/fleet.md, "Measured"), each measured side by side
// within one benchmark run: a throwaway mosquitto, real r2f_client processes with the full
// Fashion-MNIST data, and the default ResNet18 of configs/pretrain/resnet18.yaml (pre-train it
// first: ./run.sh demo or r2f_server pretrain).
//
//   ./build/bin/r2f_fleet_bench --benchmark_format=json --benchmark_out=fleet_bench.json
//
//   BM_EvalPairOverAlone   `r2f_server eval` of 2000 images on one device, then two at once on
//                          two devices with the shipped configs: pair_over_alone (target
//                          <= 1.3) and the broker's "already connected" takeovers (target 0).
//   BM_BytesPerServer      two fleet servers of four devices each (DRM): bytes each process
//                          received over the replies of its own devices (target <= 1.05).
//   BM_FleetThroughput/N   N devices on one server, DRM, HSPA held to real time: iterations per
//                          second of the fleet in its steady state, efficiency = speed-up / N
//                          (target >= 0.75 at N = 8), server CPU use and RSS per job.
//   BM_RetrainIteration/M/P/C  one device on loopback, DRM (M 0) or APRM exact (1), run.pipeline
//                          off or on (P), broker.chunk_kib C, 150 iterations:
//                          wall_over_work = iteration wall / (FP + BP + codec) (target
//                          <= 1.25), deploy_ms (a weight delta, target <= 5) and
//                          getdata_transport_ms (target <= 15), medians over the iterations
//                          of the steady state (and of the warm-up, suffix _warmup); also
//                          the device's part of both calls and server_rest_ms, the server's
//                          time outside BP, codec and the calls.
// The machine and its CPU are in the JSON context (--benchmark_context is added).
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <fstream>
#include <future>
#include <map>
#include <mutex>
#include <sstream>
#include <thread>

#include "accel_sim/omp_wait_policy.h"
#include "common/base/cpu_features.h"
#include "common/base/json.h"
#include "common/base/malloc_policy.h"
#include "server/fleet/fleet.h"
#include "tests/bench/process_cpu.h"
#include "tests/support/daemon_test_util.h"
#include "tests/support/mosquitto_fixture.h"

namespace r2f::testing {
namespace {

using Clock = std::chrono::steady_clock;

// The broker section of every config: its address, and the chunk size unless 0 (the default).
std::string BrokerYaml(const std::string& uri, int chunk_kib) {
  std::string y = "broker: {uri: '" + uri + "'";
  if (chunk_kib > 0) y += ", chunk_kib: " + std::to_string(chunk_kib);
  return y + "}\n";
}

// The demo device with BER and seed of its own, on the full data set.
std::string DeviceConfig(int k, const std::string& uri, int chunk_kib, const std::string& state_dir,
                         const std::string& log) {
  std::ostringstream y;
  y << "device_id: dev-" << k << "\n"
    << BrokerYaml(uri, chunk_kib) << "data:\n  train: {format: idx, dir: " << kFashionMnistDir
    << ", split: train}\n"
    << "  test: {format: idx, dir: " << kFashionMnistDir << ", split: test}\n"
    << "fault: {ber: " << 2e-5 * k << ", seed: " << 10 + k << "}\n"
    << "state_dir: '" << state_dir << "'\nlog: {level: info, file: '" << log << "'}\n";
  return y.str();
}

// A broker and `n` device daemons dev-1 .. dev-n, serving once constructed; chunk_kib as in
// BrokerYaml.
class Bed {
 public:
  explicit Bed(int n, int chunk_kib = 0) : chunk_kib_(chunk_kib) {
    if (!broker_.Start()) throw std::runtime_error("mosquitto did not start: " + broker_.Log());
    for (int k = 1; k <= n; ++k) {
      const std::string cfg = dir_.File("dev-" + std::to_string(k) + ".yaml");
      const std::string log = dir_.File("dev-" + std::to_string(k) + ".log");
      WriteFile(cfg, DeviceConfig(k, broker_.uri(), chunk_kib,
                                  dir_.File("state-" + std::to_string(k)), log));
      auto c = std::make_unique<ClientProcess>(cfg, log);
      if (!c->Start()) throw std::runtime_error("r2f_client did not start");
      devices_.push_back(std::move(c));
    }
    for (auto& c : devices_) {
      if (!WaitUntil([&] { return c->CountInLog("serving as") > 0; }, std::chrono::seconds(60))) {
        throw std::runtime_error("a device did not come up: " + c->Log());
      }
    }
  }
  const MosquittoBroker& broker() const { return broker_; }
  const TempDir& dir() const { return dir_; }
  int chunk_kib() const { return chunk_kib_; }

 private:
  int chunk_kib_;
  TempDir dir_;
  MosquittoBroker broker_;
  std::vector<std::unique_ptr<ClientProcess>> devices_;
};

double SecondsSince(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// `r2f_server eval` of the shipped configs/eval.yaml on `device`, 2000 images.
std::string EvalConfig(const Bed& bed, const std::string& device) {
  std::string text = ReadFile("configs/eval.yaml");
  ReplaceAll(&text, "device_id: dev-1", "device_id: " + device);
  ReplaceAll(&text, "  images: 1000 ", "  images: 2000 ");
  const std::string path = bed.dir().File("eval-" + device + ".yaml");
  WriteFile(path, text);
  return path;
}

double RunEvals(const Bed& bed, const std::vector<std::string>& devices) {
  const auto start = Clock::now();
  std::vector<pid_t> pids;
  for (const std::string& d : devices) {
    pids.push_back(
        SpawnServerCommand({"eval", "--config", EvalConfig(bed, d), "--broker", bed.broker().uri()},
                           bed.dir().File("eval-" + d + ".log")));
  }
  for (pid_t p : pids) {
    int status = 0;
    waitpid(p, &status, 0);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      throw std::runtime_error("r2f_server eval failed: " +
                               ReadFile(bed.dir().File("eval-" + devices[0] + ".log")));
    }
  }
  return SecondsSince(start);
}

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

void BM_EvalPairOverAloneBody(benchmark::State& state) {
  Bed bed(2);
  RunEvals(bed, {"dev-1"});  // warm: the devices hold the model and their data in cache
  double alone = 0, pair = 0;
  for (auto _ : state) {
    alone = RunEvals(bed, {"dev-1"});
    pair = RunEvals(bed, {"dev-1", "dev-2"});
  }
  state.counters["alone_s"] = alone;
  state.counters["pair_s"] = pair;
  state.counters["pair_over_alone"] = pair / alone;
  state.counters["takeovers"] = static_cast<double>(Count(bed.broker().Log(), "already connected"));
}

// A fleet config for `devices` of the bed.
FleetConfig BenchFleet(const Bed& bed, const std::vector<std::string>& devices,
                       const std::string& name, bool throttle, int iterations,
                       const std::string& method = "{mode: drm}", bool pipeline = true) {
  std::ostringstream y;
  y << "job_id: " << name << "\n"
    << BrokerYaml(bed.broker().uri(), bed.chunk_kib())
    << "link: {preset: " << (throttle ? "hspa" : "ieee802154g")
    << ", throttle: " << (throttle ? "true" : "false") << "}\n"
    << "model: {pretrain_config: configs/pretrain/resnet18.yaml}\n"
    << "method: " << method << "\n"
    << "train: {samples: 4800, batch_size: 16, max_iterations: " << iterations << "}\n"
    << "eval: {images: 100, batch_size: 100, before: false}\n"
    << "validation: {enabled: false}\n"  // final models compared as trained (no do no harm)
    << "run: {dir: '" << bed.dir().File("run-" + name)
    << "', checkpoint_every: 0, pipeline: " << (pipeline ? "true" : "false") << "}\n"
    << "call: {timeout_s: 120, attempts: 3}\n"
    << "fleet:\n  devices: [";
  for (size_t i = 0; i < devices.size(); ++i) y << (i ? ", " : "") << devices[i];
  y << "]\n  max_concurrent: " << devices.size() << "\n  plot_script: ''\n";
  WriteFile(bed.dir().File(name + ".yaml"), y.str());
  auto config = LoadFleetConfig(bed.dir().File(name + ".yaml"));
  if (!config.ok()) throw std::runtime_error(config.status().ToString());
  return *config;
}

std::vector<std::string> Devices(int first, int n) {
  std::vector<std::string> d;
  for (int k = first; k < first + n; ++k) d.push_back("dev-" + std::to_string(k));
  return d;
}

void BM_BytesPerServerBody(benchmark::State& state) {
  Bed bed(8);
  double worst = 0;
  for (auto _ : state) {
    auto run = [&](int first, const std::string& name) {
      return RunFleet(BenchFleet(bed, Devices(first, 4), name, false, 10), true);
    };
    auto a = std::async(std::launch::async, run, 1, "a");
    auto b = std::async(std::launch::async, run, 5, "b");
    for (auto* f : {&a, &b}) {
      Result<FleetResult> r = f->get();
      if (!r.ok()) throw std::runtime_error(r.status().ToString());
      uint64_t own = 0;
      for (const FleetJob& j : r->jobs) own += j.result.timing.uplink_bytes;
      const double ratio = static_cast<double>(r->bytes_received) / static_cast<double>(own);
      state.counters[f == &a ? "server_a_received_over_own" : "server_b_received_over_own"] = ratio;
      worst = std::max(worst, ratio);
    }
  }
  state.counters["worst_received_over_own"] = worst;
}

// Resident set size of this process now, in MB.
double RssMb() {
  std::ifstream in("/proc/self/statm");
  long pages_total = 0, pages_resident = 0;
  in >> pages_total >> pages_resident;
  return static_cast<double>(pages_resident) * static_cast<double>(sysconf(_SC_PAGESIZE)) / 1e6;
}

double g_single_device_rate = 0;  // BM_FleetThroughput/1, for the speed-ups of the others

void BM_FleetThroughputBody(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  Bed bed(n);
  constexpr int kIterations = 12;
  double rate = 0, cpu = 0, rss = 0;
  for (auto _ : state) {
    // The steady state: from the moment every device has finished its first iteration to the
    // moment the first one finished its last.
    std::mutex mu;
    std::map<std::string, std::vector<Clock::time_point>> done;
    ProgressSink observe = [&](const RetrainProgress& p) {
      std::lock_guard<std::mutex> l(mu);
      done[p.device].push_back(Clock::now());
    };
    std::atomic<bool> running{true};
    double peak_rss = 0;
    std::thread sampler([&] {
      while (running) {
        peak_rss = std::max(peak_rss, RssMb());
        std::this_thread::sleep_for(std::chrono::milliseconds(200));
      }
    });
    const double cpu0 = bench::ProcessCpuSeconds();
    const auto t0 = Clock::now();
    Result<FleetResult> r =
        RunFleet(BenchFleet(bed, Devices(1, n), "tp", true, kIterations), true, observe);
    const double wall = SecondsSince(t0);
    running = false;
    sampler.join();
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
    Clock::time_point from = Clock::time_point::min(), to = Clock::time_point::max();
    for (const auto& [d, times] : done) {
      from = std::max(from, times.front());
      to = std::min(to, times.back());
    }
    size_t in_window = 0;
    for (const auto& [d, times] : done) {
      in_window += std::count_if(times.begin(), times.end(),
                                 [&](Clock::time_point t) { return t > from && t <= to; });
    }
    rate = static_cast<double>(in_window) / std::chrono::duration<double>(to - from).count();
    cpu = (bench::ProcessCpuSeconds() - cpu0) / wall /
          std::max(1u, std::thread::hardware_concurrency());
    rss = peak_rss;
  }
  if (n == 1) g_single_device_rate = rate;
  state.counters["iterations_per_s"] = rate;
  state.counters["server_cpu_share"] = cpu;
  state.counters["server_rss_mb"] = rss;
  state.counters["server_rss_mb_per_job"] = rss / n;
  if (g_single_device_rate > 0) {
    state.counters["speedup"] = rate / g_single_device_rate;
    state.counters["efficiency"] = rate / g_single_device_rate / n;
  }
}

double Median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// BM_RetrainIteration/<method>/<pipeline>/<chunk KiB>: one device on loopback, no throttle: a
// short real retraining (method 0: DRM, 1: APRM with the exact reference) through the broker and
// the daemon, with run.pipeline off or on and the given broker.chunk_kib on both ends, its
// stages.jsonl read back. Medians over the iterations of the steady state: the iteration's wall
// time against the device's FP, the server's BP and the codec (both ends), the deployModel call
// of a weight delta, and the part of the getData call that is transport (the call's wall time
// minus the device's handler time and, pipelined, minus the time the request waited on the
// device while it deployed: getdata_queued_ms).
//
// The steady state starts when the device's reply cache (64 replies, common/net/transport.h) is
// full: until then every reply is held, so the next one is built on fresh pages, and the page
// faults (~5 ms per 1.9 MB reply on this VM) are part of every call. The same figures over
// iterations 6-60 are reported with the suffix _warmup.
void BM_RetrainIterationBody(benchmark::State& state) {
  const bool exact = state.range(0) == 1;
  const bool pipeline = state.range(1) == 1;
  const int chunk_kib = static_cast<int>(state.range(2));
  state.SetLabel(std::string(exact ? "aprm_exact" : "drm") + (pipeline ? " pipelined" : "") +
                 " chunk " + std::to_string(chunk_kib) + " KiB");
  Bed bed(1, chunk_kib);
  constexpr int kIterations = 150;
  constexpr size_t kSteadyFrom = 80;
  for (auto _ : state) {
    Result<FleetResult> r =
        RunFleet(BenchFleet(bed, Devices(1, 1), "it", false, kIterations,
                            exact ? "{mode: aprm, reference: exact}" : "{mode: drm}", pipeline),
                 true);
    if (!r.ok()) throw std::runtime_error(r.status().ToString());
  }
  const std::vector<std::string> lines = NonEmptyLines(bed.dir().File("run-it/dev-1/stages.jsonl"));
  auto report = [&](size_t from, size_t to, const std::string& suffix) {
    std::vector<double> wall, work, deploy, deploy_device, getdata_transport, getdata_device,
        getdata_queued, server_rest;
    for (size_t i = from; i < std::min(to, lines.size()); ++i) {
      Result<Json> j = ParseJson(lines[i], "stage line " + std::to_string(i + 1));
      if (!j.ok()) throw std::runtime_error(j.status().ToString());
      const Json& m = (*j)["measured_s"];
      const Json& x = (*j)["extra"];
      wall.push_back(x.value("wall_s", 0.0));
      work.push_back(m.value("fp", 0.0) + m.value("bp", 0.0) + m.value("codec", 0.0));
      deploy.push_back(x.value("deploy_device_s", 0.0) + x.value("deploy_transport_s", 0.0));
      deploy_device.push_back(x.value("deploy_device_s", 0.0));
      getdata_transport.push_back(x.value("getdata_transport_s", 0.0));
      getdata_device.push_back(x.value("getdata_device_s", 0.0));
      getdata_queued.push_back(x.value("getdata_queued_s", 0.0));
      // The server's own time outside BP, the codec and the two calls (the weight delta,
      // parsing the reply, the stage line): the wall minus everything measured. Pipelined, the
      // deploy runs inside the getData call (as its queued time) but for its request's way out,
      // which is then counted here.
      server_rest.push_back(wall.back() - m.value("bp", 0.0) - m.value("codec", 0.0) -
                            getdata_device.back() - getdata_transport.back() -
                            getdata_queued.back() - (pipeline ? 0.0 : deploy.back()));
    }
    if (wall.empty()) throw std::runtime_error("no stage lines from " + std::to_string(from));
    state.counters["wall_ms" + suffix] = 1e3 * Median(wall);
    state.counters["fp_bp_codec_ms" + suffix] = 1e3 * Median(work);
    state.counters["wall_over_work" + suffix] = Median(wall) / Median(work);
    state.counters["deploy_ms" + suffix] = 1e3 * Median(deploy);
    state.counters["getdata_transport_ms" + suffix] = 1e3 * Median(getdata_transport);
    state.counters["getdata_device_ms" + suffix] = 1e3 * Median(getdata_device);
    state.counters["getdata_queued_ms" + suffix] = 1e3 * Median(getdata_queued);
    state.counters["deploy_device_ms" + suffix] = 1e3 * Median(deploy_device);
    state.counters["server_rest_ms" + suffix] = 1e3 * Median(server_rest);
  };
  report(kSteadyFrom, lines.size(), "");
  report(5, 60, "_warmup");
}

// Set-up failures (no model, a daemon that does not start) end the benchmark with the reason.
template <void (*Body)(benchmark::State&)>
void Guarded(benchmark::State& state) {
  try {
    Body(state);
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}
void BM_EvalPairOverAlone(benchmark::State& s) { Guarded<BM_EvalPairOverAloneBody>(s); }
void BM_BytesPerServer(benchmark::State& s) { Guarded<BM_BytesPerServerBody>(s); }
void BM_FleetThroughput(benchmark::State& s) { Guarded<BM_FleetThroughputBody>(s); }
void BM_RetrainIteration(benchmark::State& s) { Guarded<BM_RetrainIterationBody>(s); }

// DRM with 128 KiB chunks and no pipeline (the earlier defaults), each of the two defaults
// alone, both; APRM exact without and with the pipeline.
BENCHMARK(BM_RetrainIteration)
    ->Args({0, 0, 128})
    ->Args({0, 0, 512})
    ->Args({0, 1, 128})
    ->Args({0, 1, 512})
    ->Args({1, 0, 512})
    ->Args({1, 1, 512})
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();
BENCHMARK(BM_EvalPairOverAlone)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_BytesPerServer)->Iterations(1)->Unit(benchmark::kSecond)->UseRealTime();
BENCHMARK(BM_FleetThroughput)
    ->Arg(1)
    ->Arg(2)
    ->Arg(4)
    ->Arg(8)
    ->Iterations(1)
    ->Unit(benchmark::kSecond)
    ->UseRealTime();

}  // namespace
}  // namespace r2f::testing

int main(int argc, char** argv) {
  // The fleet's server runs in this process: as r2f_server does (omp_wait_policy.h).
  r2f::accel::ApplyDefaultOmpWaitPolicy(argc, argv);
  r2f::KeepFreedMemoryForReuse();  // as the daemons run (malloc_policy.h)
  // The configs and the model cache are named relative to the source tree.
  if (chdir(R2F_SOURCE_DIR) != 0) return 1;
  benchmark::AddCustomContext("cpu_model", r2f::CpuModelName());
  const char* spin = std::getenv("GOMP_SPINCOUNT");
  benchmark::AddCustomContext("GOMP_SPINCOUNT", spin != nullptr ? spin : "(unset)");
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
