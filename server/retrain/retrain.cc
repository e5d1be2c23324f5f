#include "server/retrain/retrain.h"

#include <cstdio>
#include <sstream>

#include "common/base/json.h"
#include "server/api/r2f_server_api.h"
#include "server/retrain/retrain_loop.h"

namespace r2f {
namespace {

Json AccuracyJson(const Accuracy& a) {
  return {
      {"images", a.count()}, {"top1", a.Top1()}, {"top1_ci95", a.Top1Ci95()}, {"top5", a.Top5()}};
}

}  // namespace

Result<RetrainResult> RunRetrain(const RetrainConfig& config, bool resume, R2fServer& server,
                                 const ProgressSink& progress) {
  RetrainLoop loop(config, server, progress);
  return loop.Run(resume);
}

Result<RetrainResult> RunRetrain(const RetrainConfig& config, bool resume) {
  R2F_ASSIGN_OR_RETURN(std::unique_ptr<R2fServer> server,
                       R2fServer::Connect(config.session.server));
  ProgressPrinter printer;
  return RunRetrain(config, resume, *server, [&printer](const RetrainProgress& p) { printer(p); });
}

std::string RetrainSummaryJson(const RetrainConfig& c, const RetrainResult& r) {
  const Json json = {
      {"config", c.source},
      {"device", c.session.device_id},
      {"method", RetrainMethodName(c.method)},
      {"threshold_policy", ThresholdPolicyName(c.policy)},
      // DRM runs no reference.
      {"reference",
       c.method == RetrainMethod::kDrm
           ? "none"
           : accel::TrainingReferenceName(accel::TrainingReferenceFromProto(c.reference))},
      {"similarity_threshold", c.similarity_threshold},
      {"link", c.session.link.spec.name},
      {"batch_size", c.batch_size},
      {"iterations", r.iterations},
      {"resumed_from", r.resumed_from},
      {"protected_layers", c.session.tmr.protected_layers},
      {"increment_layers", r.increment_layers},
      {"accuracy_before", AccuracyJson(r.before)},
      {"accuracy_after", AccuracyJson(r.after)},
      {"eval_device", c.EvalDevice()},
      {"tmr_overhead", r.tmr_overhead},
      {"final_model_version", r.final_model_version},
      {"served_by", r.served_by},
      {"pipeline",
       {{"enabled", c.pipeline}, {"prefetched", r.prefetched}, {"overtaken", r.overtaken}}},
      {"timing", TimingSummaryJson(r.timing)}};
  Json out = json;
  if (c.reference == pb::REFERENCE_LOCAL_EXACT || c.verify_rebuild) {
    out["rebuild"] = {{"patched_elements", r.rebuild.patched_elements},
                      {"disagreeing_layers", r.rebuild.disagreeing_layers}};
    if (c.verify_rebuild) out["rebuild"]["mismatched_layers"] = r.rebuild.mismatched_layers;
  }
  if (r.validation.has_base()) {
    out["validation"] = r.validation.ToJson(c.validation);
    if (r.after_last.count() > 0) out["accuracy_last"] = AccuracyJson(r.after_last);
  }
  return DumpJson(out, 2) + "\n";
}

std::string FormatStageTable(const TimingTotals& t) {
  std::ostringstream os;
  char line[160];
  std::snprintf(line, sizeof line, "%-10s %14s %8s %14s %12s\n", "stage", "modelled [s]", "share",
                "measured [s]", "per iter [s]");
  os << line;
  const StageArray shares = t.Shares();
  for (Stage s : AllStages()) {
    const size_t i = StageIndex(s);
    std::snprintf(line, sizeof line, "%-10s %14.3f %7.1f%% %14.3f %12.4f\n", StageName(s),
                  t.modelled_s[i], 100 * shares[i], t.measured_s[i],
                  t.iterations ? t.modelled_s[i] / t.iterations : 0.0);
    os << line;
  }
  std::snprintf(line, sizeof line, "%-10s %14.3f %7.1f%% %14.3f %12.4f\n", "total",
                t.ModelledTotal(), 100.0, t.MeasuredTotal(),
                t.iterations ? t.ModelledTotal() / t.iterations : 0.0);
  if (t.validations > 0) {
    os << line;
    // Do no harm's validations: not a stage of the paper, so not in its total.
    std::snprintf(line, sizeof line, "%-10s %14.3f %8s %14.3f %12.4f  (%lld runs, not in total)\n",
                  "validation", t.validation_modelled_s, "", t.validation_measured_s,
                  t.iterations ? t.validation_modelled_s / t.iterations : 0.0,
                  static_cast<long long>(t.validations));
  }
  os << line;
  std::snprintf(line, sizeof line, "uplink %.3f MB, downlink %.3f MB over %lld iterations\n",
                t.uplink_bytes / 1e6, t.downlink_bytes / 1e6, static_cast<long long>(t.iterations));
  os << line;
  return os.str();
}

}  // namespace r2f
