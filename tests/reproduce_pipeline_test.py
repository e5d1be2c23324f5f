#!/usr/bin/env python3
"""`./run.sh reproduce` end to end at toy scale, and the sweeps it runs.

ReproducePipelineTest runs docs/figures/reproduce.py's whole pipeline once, on two tiny models
pre-trained here (a few seconds each): a throwaway mosquitto on a free loopback port, one real
r2f_client per device, r2f_sim runs, a critical-layer search, DRM / APRM / TCLP / UR / link-check
retraining runs with real r2f_server processes, two at a time (--jobs 2), then every figure and
tables.md. It then checks what the figures are drawn from, and that a rerun skips every finished
step.

SweepPlanTest checks the quick and full sweeps' plans without running anything: all five
networks, every method and both links take part; and the runner's rule for runs at once (no
device shared, searches before the runs that read them) with runs that only sleep.

Run by CTest (tests/CMakeLists.txt) with R2F_BUILD_DIR set; needs Debian's python3-matplotlib.
"""

import json
import os
import re
import shutil
import signal
import sys
import tempfile
import unittest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs" / "figures"))
import make_figures  # noqa: E402
import reproduce  # noqa: E402
import sweeps  # noqa: E402

FIGURES = ["fig1", "fig2", "fig4", "fig4_delta", "fig5", "fig6", "fig7", "fig9"]
DATA = "/usr/share/datasets/fashion-mnist"


def tiny_pretrain_config(net, width, out_dir):
    """A pre-training of seconds: 40 steps on 2560 images, 500 test images."""
    return f"""network: {{name: {net}, width: {width}}}
data:
  train: {{format: idx, dir: {DATA}, split: train, limit: 2560}}
  test: {{format: idx, dir: {DATA}, split: test, limit: 500}}
train:
  epochs: 1
  batch_size: 64
  lr: 0.05
  momentum: 0.9
  weight_decay: 0.0
  warmup_epochs: 0.0
  augment: false
  seed: 1
  max_steps: 40
quantization: {{calibration_images: 256}}
output: {{dir: {out_dir}}}
threads: 0
"""


def check_sweep(tmp):
    """Every kind of step of the real sweeps, at toy size."""
    return dict(
        sweeps.QUICK, name="check", out=str(tmp / "runs"), figures=str(tmp / "figures"),
        pretrain_dir=str(tmp / "pretrain"), networks=["resnet18", "squeezenet"],
        sim={"fig1_bers": [0, 3e-4], "fig1_images": 32, "fig9_bers": [1e-4, 3e-4],
             "fig9_images": 16},
        bers=[1e-5, 3e-4], iterations=lambda net, ber: 2, eval_images={"default": 64},
        tclp={"bers": [3e-4], "methods": sweeps.TCLP, "networks": ["resnet18", "squeezenet"],
              "search_networks": ["squeezenet"], "search_images": 32, "search_batch": 32},
        ur=[sweeps.ur("squeezenet", 3e-4)],
        link_check=[{"network": "squeezenet", "ber": 1e-5, "methods": ["drm", "aprm60"],
                     "link": "hspa"}])


def read_json(path):
    return json.loads(Path(path).read_text())


class ReproducePipelineTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        # CTest's timeout sends SIGTERM: leave through the with-blocks, which stop the broker
        # and the daemons the pipeline started.
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
        cls.tmp = Path(tempfile.mkdtemp(prefix="r2f-reproduce-test-"))
        (cls.tmp / "pretrain").mkdir()
        for net, width in [("resnet18", 0.125), ("squeezenet", 0.25)]:
            (cls.tmp / "pretrain" / f"{net}.yaml").write_text(
                tiny_pretrain_config(net, width, cls.tmp / "models"))
        cls.sweep = check_sweep(cls.tmp)
        cls.runs = Path(cls.sweep["out"])
        # Two runs at once (reproduce.py --jobs 2), as a user in a hurry runs it.
        cls.jobs = 2
        cls.status = reproduce.run_all(cls.sweep, jobs=cls.jobs)
        cls.steps = reproduce.plan(cls.sweep, cls.sweep["networks"])

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("R2F_KEEP_TEST_DIR"):
            print(f"kept {cls.tmp}", file=sys.stderr)
        else:
            shutil.rmtree(cls.tmp, ignore_errors=True)

    def timings(self):
        return [json.loads(line) for line in
                (self.runs / "timings.jsonl").read_text().splitlines()]

    def test_every_step_succeeds_and_is_timed(self):
        self.assertEqual(self.status, 0, f"see the server.log files under {self.runs}")
        for step in self.steps:
            self.assertTrue(step.done(), step.name)
        kinds = [r["kind"] for r in self.timings()]
        self.assertEqual(kinds.count("pretrain"), 2)
        for r in self.timings():
            if r["kind"] != "pretrain":
                self.assertEqual(r["jobs"], self.jobs, r["step"])
        self.assertEqual(len(kinds) - 2, len(self.steps))
        self.assertEqual({s.kind for s in self.steps}, {"sim", "search", "retrain"})

    def test_plan_estimate_scales_retraining_by_measured_drm_times(self):
        # plan --from --drm-per-iteration: a network's retraining time scales with its DRM time
        # per iteration; the other kinds of step stay as the source measured them.
        sweep = dict(self.sweep, iterations=lambda net, ber: 100)
        steps = reproduce.plan(sweep, sweep["networks"])
        base = reproduce.estimate(sweep, steps, self.runs, jobs=self.jobs)
        drm = {}
        for r in self.timings():
            if r["kind"] == "retrain" and reproduce.family(r["method"]) == "drm":
                loop = read_json(Path(r["dir"]) / "summary.json")["timing"]["measured_total_s"]
                drm.setdefault(r["net"], []).append(loop / r["iterations"])
        same = {net: sum(v) / len(v) for net, v in drm.items()}
        twice = {net: 2 * t for net, t in same.items()}
        self.assertAlmostEqual(
            reproduce.estimate(sweep, steps, self.runs, same, self.jobs)["retrain"],
            base["retrain"], delta=1e-9 * base["retrain"])
        doubled = reproduce.estimate(sweep, steps, self.runs, twice, self.jobs)
        self.assertGreater(base["retrain"], 0)
        self.assertAlmostEqual(doubled["retrain"], 2 * base["retrain"],
                               delta=1e-9 * base["retrain"])
        for kind in ["sim", "search", "eval"]:
            self.assertEqual(doubled[kind], base[kind], kind)
        self.assertEqual(reproduce.drm_per_iteration(["resnet18=0.05"]), {"resnet18": 0.05})
        for bad in ["resnet18", "lenet=0.1", "resnet18=fast", "resnet18=0"]:
            with self.assertRaises(SystemExit, msg=bad):
                reproduce.drm_per_iteration([bad])

    def test_pretrained_model_is_where_the_driver_predicts(self):
        # The driver skips `r2f_server pretrain` when the predicted model file exists; a wrong
        # prediction would pre-train again on every rerun.
        for net in self.sweep["networks"]:
            path = reproduce.predicted_model_path(reproduce.pretrain_config(self.sweep, net))
            self.assertIsNotNone(path, net)
            self.assertTrue(path.exists(), f"{net}: {path}")

    def test_every_figure_is_drawn(self):
        figures = Path(self.sweep["figures"])
        for name in FIGURES:
            for ext in ["png", "svg"]:
                f = figures / f"{name}.{ext}"
                self.assertTrue(f.exists(), f)
                self.assertGreater(f.stat().st_size, 5000, f)
        tables = (figures / "tables.md").read_text()
        for title in ["Fig. 1:", "Fig. 9:", "Figs. 4:", "Fig. 5:", "Fig. 6:", "Fig. 7:",
                      "Fig. 2:", "Link check:", "Wall time"]:
            self.assertIn(f"## {title}", tables)
        # Fig. 2's row for the UR pair, with the BERs the UR models were trained at.
        self.assertRegex(tables, r"\| SqueezeNet \| 3e-4 \|.*\| 6e-6 \| 2\.7e-4 \|")

    def test_base_is_measured_once_per_network_and_ber_with_the_drm_run(self):
        for s in self.steps:
            if s.kind != "retrain":
                continue
            summary = read_json(s.dir / "summary.json")
            measured_base = summary["accuracy_before"]["images"] > 0
            expected = s.dir.name in ("drm", "tclp20", "tclp50", "tclp200")
            self.assertEqual(measured_base, expected, s.dir)
            self.assertEqual(summary["accuracy_after"]["images"], 64, s.dir)
            self.assertEqual(summary["iterations"], 2, s.dir)

    def test_tclp_sets_are_prefixes_of_the_search_within_each_budget(self):
        search = read_json(self.runs / "search" / "squeezenet" / "ber-3e-4" / "search.json")
        for method, r_max in [("tclp20", 0.2), ("tclp50", 0.5)]:
            within = [t["protected_layers"] for t in search["trajectory"]
                      if t["overhead"] <= r_max + 1e-12]
            expected = within[-1] if within else []
            run = self.runs / "retrain" / "squeezenet" / "ber-3e-4" / method
            config = (run / "config.yaml").read_text()
            self.assertIn(f"protected_layers: [{', '.join(map(str, expected))}]", config)
            self.assertIn("mode: partial", config)
            self.assertEqual(read_json(run / "summary.json")["protected_layers"], expected)
        tclp200 = (self.runs / "retrain" / "resnet18" / "ber-3e-4" / "tclp200" / "config.yaml")
        self.assertIn("mode: layer_wise", tclp200.read_text())
        # ResNet18 is not searched in this sweep: it gets TCLP-200 only.
        self.assertFalse((self.runs / "retrain" / "resnet18" / "ber-3e-4" / "tclp20").exists())

    def test_ur_runs_train_on_their_own_device_and_evaluate_on_the_target(self):
        for name, trained_at in [("ur-f-6e-6", "rep-ur-6e-6"), ("ur-c-2.7e-4", "rep-ur-2p7e-4")]:
            config = (self.runs / "retrain" / "squeezenet" / "ber-3e-4" / name /
                      "config.yaml").read_text()
            self.assertRegex(config, rf"(?m)^device_id: {re.escape(trained_at)}\s")
            self.assertRegex(config, r'device_id: "rep-3e-4"')

    def test_other_link_times_recomputed_from_bytes_match_a_run_on_that_link(self):
        # make_figures recomputes every HSPA time from the 802.15.4g runs' bytes with its copy
        # of the link presets; the runs on HSPA pin that copy to common/link/link_model.cc.
        for method in ["drm", "aprm60"]:
            d = self.runs / "retrain" / "squeezenet" / "ber-1e-5"
            source, on_hspa = read_json(d / method / "summary.json"), read_json(
                d / f"{method}-hspa" / "summary.json")
            self.assertEqual(on_hspa["link"], "hspa")
            recomputed = make_figures.per_iteration(source, "hspa")
            n = on_hspa["timing"]["iterations"]
            for stage in ["uplink", "downlink"]:
                got = on_hspa["timing"]["modelled_s"][stage] / n
                self.assertAlmostEqual(recomputed[stage], got, delta=0.01 * got,
                                       msg=f"{method} {stage}")

    def test_rerun_skips_every_finished_step(self):
        before = len(self.timings())
        self.assertEqual(reproduce.run_all(self.sweep), 0)
        self.assertEqual(len(self.timings()), before)


class SweepPlanTest(unittest.TestCase):
    def plan(self, sweep):
        return reproduce.plan(sweep, sweep["networks"])

    def test_all_five_networks_every_method_and_both_links_take_part(self):
        for sweep in [sweeps.QUICK, sweeps.FULL]:
            steps = self.plan(sweep)
            runs = [s for s in steps if s.kind == "retrain"]
            for net in sweeps.NETWORKS:
                for ber in sweep["bers"]:
                    names = {s.dir.name for s in runs if s.spec["net"] == net and
                             s.dir.parent.name == f"ber-{reproduce.ber_label(ber)}"}
                    self.assertTrue(set(sweeps.APRM) <= names, (sweep["name"], net, ber))
                self.assertTrue(any(s.kind == "sim" and s.spec["net"] == net for s in steps))
            methods = {s.spec["method"] for s in runs}
            self.assertEqual(methods, set(sweeps.APRM) | set(sweeps.TCLP), sweep["name"])
            self.assertEqual({s.spec["link"] for s in runs}, {"ieee802154g", "hspa"})
            self.assertTrue(any(s.dir.name.startswith("ur-f-") for s in runs))
            self.assertTrue(any(s.dir.name.startswith("ur-c-") for s in runs))

    def test_every_step_has_its_own_directory(self):
        for sweep in sweeps.SWEEPS.values():
            dirs = [s.dir for s in self.plan(sweep)]
            self.assertEqual(len(dirs), len(set(dirs)), sweep["name"])

    def test_every_device_the_runs_name_is_started(self):
        for sweep in sweeps.SWEEPS.values():
            started = {d for d, _, _ in reproduce.devices(sweep)}
            for s in self.plan(sweep):
                if s.kind == "retrain":
                    self.assertIn(s.spec["device"], started, s.name)
                    if s.spec["eval_ber"] is not None:
                        self.assertIn(reproduce.device_id(s.spec["eval_ber"]), started, s.name)

    def test_every_network_has_a_pretraining_config_whose_model_path_is_predicted(self):
        # A missing config would stop the sweep after an hour; an unpredictable path would
        # pre-train again on every rerun.
        for sweep in sweeps.SWEEPS.values():
            for net in sweep["networks"]:
                config = ROOT / reproduce.pretrain_config(sweep, net)
                self.assertTrue(config.exists(), (sweep["name"], config))
                path = reproduce.predicted_model_path(config)
                self.assertIsNotNone(path, (sweep["name"], config))
                self.assertTrue(path.name == "model.pb" and path.parent.name.startswith(net))

    def test_quick_pretraining_is_shorter_than_the_default(self):
        # The quick sweep's cold-cache hour rests on it (docs/results.md, "What the sweeps run,
        # and how long they take").
        for net in sweeps.NETWORKS:
            quick = reproduce.read_simple_yaml(ROOT / reproduce.pretrain_config(sweeps.QUICK, net))
            default = reproduce.read_simple_yaml(ROOT / "configs" / "pretrain" / f"{net}.yaml")

            def images(c):
                t = c["train"]
                steps = int(t["epochs"]) * 60000 // int(t["batch_size"])
                if int(t.get("max_steps", 0)) > 0:
                    steps = min(steps, int(t["max_steps"]))
                return steps * int(t["batch_size"])

            self.assertLess(images(quick), images(default), net)
            self.assertEqual(quick["network"], default["network"], net)

    def run_fake(self, sweep, jobs, fail=()):
        """run_steps over the sweep's plan with runs that only sleep; checks, as they start,
        that no device is shared and every need has finished. (most at once, failed names,
        names in the order they ended)."""
        steps = self.plan(sweep)
        lock = reproduce.threading.Lock()
        busy, finished, state = set(), set(), {"now": 0, "most": 0}
        ended, failed = [], []

        def run_one(step):
            with lock:
                self.assertFalse(reproduce.occupies(step) & busy, step.name)
                self.assertLessEqual(reproduce.needs(sweep, step), finished, step.name)
                busy.update(reproduce.occupies(step))
                state["now"] += 1
                state["most"] = max(state["most"], state["now"])
            reproduce.time.sleep(0.002)
            with lock:
                busy.difference_update(reproduce.occupies(step))
                state["now"] -= 1
                if step.name in fail:
                    raise RuntimeError("failed on purpose")
                finished.add(step.dir)

        def on_done(step, error, wall):
            ended.append(step.name)
            if error is not None:
                failed.append(step.name)

        reproduce.run_steps(sweep, steps, jobs, run_one, on_done)
        self.assertEqual(sorted(ended), sorted(s.name for s in steps))
        return state["most"], failed, ended

    def test_runs_at_once_never_share_a_device_and_wait_for_their_needs(self):
        # reproduce.py --jobs N: the quick sweep's 150-odd steps on 8 devices.
        for jobs in [1, 2, 3]:
            most, failed, ended = self.run_fake(sweeps.QUICK, jobs)
            self.assertEqual(most, jobs)
            self.assertEqual(failed, [])
        _, _, serial = self.run_fake(sweeps.QUICK, 1)
        self.assertEqual(serial, [s.name for s in self.plan(sweeps.QUICK)])

    def test_a_failed_search_fails_the_runs_that_need_it_and_nothing_else(self):
        steps = self.plan(sweeps.QUICK)
        search = next(s for s in steps if s.kind == "search")
        dependent = {s.name for s in steps if search.dir in reproduce.needs(sweeps.QUICK, s)}
        self.assertTrue(dependent)
        _, failed, _ = self.run_fake(sweeps.QUICK, 2, fail={search.name})
        self.assertEqual(set(failed), dependent | {search.name})

    def test_wall_time_estimate_follows_the_runners_rule(self):
        steps = self.plan(sweeps.QUICK)
        durations = [(s, 1.0 + (i % 7)) for i, s in enumerate(steps)]
        total = sum(t for _, t in durations)
        self.assertEqual(reproduce.makespan(sweeps.QUICK, durations, 1), total)
        two = reproduce.makespan(sweeps.QUICK, durations, 2)
        self.assertGreaterEqual(two, total / 2)
        self.assertLess(two, 0.6 * total)  # eight devices: two runs at once nearly always
        # Runs on one device never overlap, however many slots.
        one_device = [(s, t) for s, t in durations
                      if reproduce.occupies(s) == {reproduce.device_id(1e-4)}]
        self.assertGreater(len(one_device), 1)
        self.assertEqual(reproduce.makespan(sweeps.QUICK, one_device, 4),
                         sum(t for _, t in one_device))

    def test_ber_labels_round_trip(self):
        for ber in [0, 1e-6, 2.7e-4, 4.5e-5, 3e-4]:
            self.assertEqual(float(reproduce.ber_label(ber)), ber)
        self.assertEqual(reproduce.ber_label(2.5e-4), "2.5e-4")


if __name__ == "__main__":
    unittest.main(verbosity=2)
