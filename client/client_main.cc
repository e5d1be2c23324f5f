// r2f_client: the device daemon. Loads its config and data, restores the model it last ran,
// connects to the broker and answers the server's Table-I requests until SIGINT/SIGTERM, then
// says "offline" and exits 0. docs/daemons.md describes the protocol and the state it keeps.
#include <pthread.h>
#include <signal.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstdio>
#include <ctime>
#include <memory>

#include "accel_sim/int16_gemm.h"
#include "accel_sim/omp_wait_policy.h"
#include "client/device_config.h"
#include "client/device_service.h"
#include "common/base/cpu_features.h"
#include "common/base/logging.h"
#include "common/base/malloc_policy.h"
#include "common/codec/flag_pack.h"
#include "common/net/broker_flag.h"
#include "common/net/transport.h"

namespace {

int Fail(const r2f::Status& status) {
  std::fprintf(stderr, "r2f_client: error: %s\n", status.ToString().c_str());
  return 1;
}

// Waits up to `seconds` for one of `signals`; returns it, or 0 on timeout.
int WaitForSignal(const sigset_t& signals, int seconds) {
  timespec timeout{seconds, 0};
  int sig = -1;
  do {
    sig = sigtimedwait(&signals, nullptr, &timeout);
  } while (sig < 0 && errno == EINTR);
  return sig < 0 ? 0 : sig;
}

}  // namespace

int main(int argc, char** argv) {
  // Devices share hosts (a fleet on one machine): no long OpenMP spinning between batches.
  r2f::accel::ApplyDefaultOmpWaitPolicy(argc, argv);
  r2f::KeepFreedMemoryForReuse();  // every getData allocates megabytes (malloc_policy.h)
  CLI::App app{"R2F device daemon: a simulated faulty int8 accelerator serving the Table-I API"};
  std::string config_path;
  app.add_option("--config", config_path, "device YAML config (see configs/client.yaml)")
      ->required();
  std::string broker_override;
  app.add_option("--broker", broker_override,
                 "broker URI, overriding the config's broker.uri (e.g. tcp://10.0.0.5:1883)")
      ->check(r2f::BrokerUriValidator());
  CLI11_PARSE(app, argc, argv);

  // Termination signals are blocked in every thread (Paho's threads inherit this mask) and
  // taken synchronously with sigwait below, so no code runs in a signal handler.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  auto config = r2f::LoadDeviceConfig(config_path);
  if (!config.ok()) return Fail(config.status());
  if (!broker_override.empty()) config->transport.broker_uri = broker_override;
  const r2f::DeviceConfig& cfg = *config;
  if (auto st = r2f::InitLogging(cfg.log_level, cfg.log_file); !st.ok()) return Fail(st);
  auto log = r2f::GetLogger("client");
  log->info("device '{}' from {}: broker {} (client id '{}', user '{}', password '{}'), state {}",
            cfg.transport.device_id, cfg.source, cfg.transport.broker_uri, cfg.transport.client_id,
            cfg.transport.username, r2f::RedactSecret(cfg.transport.password),
            cfg.service.state_dir);
  log->info("faults: ber {} seed {}; accelerator {}x{} at {} MHz", cfg.service.faults.ber,
            cfg.service.faults.seed, cfg.service.accelerator.rows, cfg.service.accelerator.cols,
            cfg.service.accelerator.clock_mhz);
  // The figures this daemon measures (forward-pass and codec times) depend on the host.
  log->info("host: {}; GEMM kernel {}, codec kernel {} (R2F_CPU_ISA {})", r2f::CpuModelName(),
            r2f::accel::GemmIsaName(r2f::accel::BestGemmIsa()), r2f::FlagPackIsaName(),
            r2f::CpuIsaCapName(r2f::ProcessCpuIsaCap()));
  if (cfg.service.reply_delay.count() > 0) {
    log->warn("debug.handler_delay_ms = {}: replies are delayed (test hook)",
              cfg.service.reply_delay.count());
  }

  auto train = r2f::LoadDataset(cfg.train_data);
  if (!train.ok()) return Fail(train.status().WithContext(cfg.source + ": data.train"));
  auto test = r2f::LoadDataset(cfg.test_data);
  if (!test.ok()) return Fail(test.status().WithContext(cfg.source + ": data.test"));
  log->info("data: train '{}' {} samples, test '{}' {} samples", train->name, train->size(),
            test->name, test->size());
  auto service =
      r2f::DeviceService::Create(cfg.service, std::move(train).value(), std::move(test).value());
  if (!service.ok()) return Fail(service.status());

  // A daemon outlives broker outages: keep trying to connect until told to stop.
  std::unique_ptr<r2f::Transport> transport;
  for (;;) {
    auto connected = r2f::Transport::Connect(cfg.transport);
    if (connected.ok()) {
      transport = std::move(connected).value();
      break;
    }
    log->warn("cannot connect yet: {}; retrying in 5 s", connected.status().ToString());
    if (int sig = WaitForSignal(signals, 5); sig != 0) {
      log->info("received signal {} before connecting; exiting", sig);
      return 0;
    }
  }
  r2f::DeviceService* handler_service = service->get();
  if (auto st = transport->Serve([handler_service](const r2f::Message& request) {
        return handler_service->Handle(request);
      });
      !st.ok()) {
    return Fail(st);
  }
  log->info("serving as '{}' (model version {})", cfg.transport.device_id,
            (*service)->model_version());

  int sig = 0;
  while (sigwait(&signals, &sig) != 0) {
  }
  log->info("received signal {}; going offline", sig);
  transport->Stop();
  const r2f::TransportStats stats = transport->stats();
  log->info("stopped: {} requests handled, {} answered from the reply cache, {} rejected",
            stats.handler_calls, stats.cache_hits, stats.rejected);
  return 0;
}
