#!/usr/bin/env python3
"""The driver of `./run.sh reproduce [--quick]` (python3 stdlib, and matplotlib for the figures).

    reproduce.py all --sweep quick [--jobs 2]   the whole sweep: a throwaway mosquitto on a free
                                                 loopback port, one r2f_client per device, the
                                                 runs (--jobs: that many at once, never two on
                                                 one device), then the figures; everything
                                                 stopped at exit
    reproduce.py outdir --sweep quick           prints the sweep's output directory
    reproduce.py devices --sweep quick          writes one device config per BER, prints their paths
    reproduce.py run --sweep quick --broker URI  only the runs, against devices already serving
    reproduce.py plan --sweep full [--from runs/reproduce-quick] [--iterations 3125]
                      [--drm-per-iteration resnet18=0.053 ...] [--jobs 2]   the runs, and an
                                                 estimate of their duration from the timings of
                                                 another sweep (--jobs: and its wall time)

The sweep itself is docs/figures/sweeps.py; the config templates are
configs/reproduce/*.template.yaml and configs/demo/client.yaml. Everything a step produces stays
in its directory under the sweep's output directory; a step whose result exists is skipped.
"""

import argparse
import json
import os
import re
import signal
import socket
import string
import subprocess
import sys
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))
import sweeps  # noqa: E402

BIN = Path(os.environ.get("R2F_BUILD_DIR", ROOT / "build")) / "bin"

# method name -> (method.mode, similarity threshold, tmr.mode, TCLP budget r_max,
# method.reference). APRM-NN are the paper's (the LW-TMR chain); "exact" and "local" are ours,
# the exact and the approximate layer-local reference (docs/retraining.md): exact ignores the
# threshold, local uses it as the paper's APRM-60 does.
METHODS = {
    "drm": ("drm", 0.6, "none", None, "chain"),
    "aprm50": ("aprm", 0.5, "none", None, "chain"),
    "aprm60": ("aprm", 0.6, "none", None, "chain"),
    "aprm80": ("aprm", 0.8, "none", None, "chain"),
    "exact": ("aprm", 0.6, "none", None, "exact"),
    "local": ("aprm", 0.6, "none", None, "local"),
    "tclp20": ("drm", 0.6, "partial", 0.2, "chain"),
    "tclp50": ("drm", 0.6, "partial", 0.5, "chain"),
    "tclp200": ("drm", 0.6, "layer_wise", 2.0, "chain"),
}


def log(msg):
    print(f"[reproduce {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ber_label(ber):
    """1e-4 -> '1e-4', 2.5e-4 -> '2.5e-4', 0 -> '0' (used in device ids and directory names)."""
    if ber == 0:
        return "0"
    mantissa, exponent = f"{ber:.3e}".split("e")
    mantissa = mantissa.rstrip("0").rstrip(".")
    return f"{mantissa}e{int(exponent)}"


def device_id(ber, ur=False):
    """The device at this BER; the UR training devices are separate (own fault seed). Device ids
    hold no '.' (RabbitMQ's MQTT would split the topic level): 2.7e-4 becomes 2p7e-4."""
    return f"rep-{'ur-' if ur else ''}{ber_label(ber).replace('.', 'p')}"


_children, _children_lock = set(), threading.Lock()
_stopping = threading.Event()  # terminate_children ran: the runs still ending were stopped


def call(cmd, **kwargs):
    """Runs cmd in ROOT; the child is terminated when this script is (SIGTERM, Ctrl-C), also
    when it runs in another thread (terminate_children)."""
    child = subprocess.Popen(cmd, cwd=ROOT, **kwargs)
    with _children_lock:
        _children.add(child)
    try:
        out, _ = child.communicate()
    except BaseException:
        child.terminate()
        child.wait()
        raise
    finally:
        with _children_lock:
            _children.discard(child)
    if child.returncode:
        raise subprocess.CalledProcessError(child.returncode, cmd)
    return out


def stop_processes(procs, timeout_s=20):
    """SIGTERM to every process of `procs` still running, then waits for each; one that is
    still there after `timeout_s` is killed."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def terminate_children():
    """Terminates every child call() is waiting for, and waits for them."""
    _stopping.set()
    with _children_lock:
        children = list(_children)
    stop_processes(children)


# --- models -------------------------------------------------------------------------------------

def read_simple_yaml(path):
    """The nested `key: value` maps of a pretrain config (block maps and one-line flow maps)."""
    root, stack = {}, [(-1, None)]
    stack[0] = (-1, root)
    for raw in Path(path).read_text().splitlines():
        line = raw.split(" #")[0].rstrip() if not raw.lstrip().startswith("#") else ""
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        key, _, value = line.strip().partition(":")
        value = value.strip()
        while stack[-1][0] >= indent:
            stack.pop()
        parent = stack[-1][1]
        if value.startswith("{"):
            parent[key] = dict(
                (k.strip(), v.strip()) for k, v in
                (item.split(":", 1) for item in value.strip("{}").split(",")))
        elif value == "":
            parent[key] = {}
            stack.append((indent, parent[key]))
        else:
            parent[key] = value.strip('"')
    return root


def predicted_model_path(pretrain_config):
    """Where `r2f_server pretrain` puts the model of this config (server/model/pretrain.cc
    PretrainRunDir: FNV-1a of the training settings). Only a shortcut: when the file is not
    there the driver runs `r2f_server pretrain`, which prints the real path."""
    try:
        c = read_simple_yaml(pretrain_config)
        n, d, t = c["network"], c["data"]["train"], c["train"]
        g = lambda v: f"{float(v):g}"  # noqa: E731  (std::ostream's default format)
        b = lambda v: "1" if str(v).lower() in ("true", "1", "yes") else "0"  # noqa: E731
        key = "|".join([
            n["name"], g(n["width"]), "10",
            f'{d["format"]}:{d["dir"]}:{d.get("split", "train")}:{int(d.get("limit", 0))}',
            str(int(t["epochs"])), str(int(t["batch_size"])), g(t["lr"]), g(t["momentum"]),
            g(t["weight_decay"]), g(t["warmup_epochs"]), b(t["augment"]), str(int(t["seed"])),
            str(int(t.get("max_steps", 0))), str(int(c["quantization"]["calibration_images"]))])
        h = 0xcbf29ce484222325
        for ch in key.encode():
            h = ((h ^ ch) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
        return Path(c["output"]["dir"]) / f'{n["name"]}-{h:016x}'[:len(n["name"]) + 11] / "model.pb"
    except (KeyError, ValueError, OSError):
        return None


def pretrain_config(sweep, net):
    """The pre-training config of `net` in this sweep (configs/pretrain/<net>.yaml unless the
    sweep names another directory, as the pipeline test does for its tiny models)."""
    return str(Path(sweep.get("pretrain_dir", "configs/pretrain")) / f"{net}.yaml")


def ensure_model(sweep, net, timings):
    """The int8 model of the sweep's pre-training config of `net`, pre-training it (cached) if
    missing; a pre-training's wall time is appended to `timings` (kind "pretrain")."""
    config = pretrain_config(sweep, net)
    path = predicted_model_path(ROOT / config)
    if path is not None and (ROOT / path).exists():
        return path
    log(f"{net}: no pre-trained model at {path}; running r2f_server pretrain --config {config}")
    t0 = time.time()
    out = call([str(BIN / "r2f_server"), "pretrain", "--config", config],
               stdout=subprocess.PIPE, text=True)
    append_timing(timings, {"step": f"pretrain {net}", "kind": "pretrain", "net": net,
                            "wall_s": time.time() - t0})
    m = re.search(r"^model\s+(\S+)", out, re.M)
    if not m:
        raise RuntimeError(f"r2f_server pretrain printed no model path:\n{out}")
    if path is not None and Path(m.group(1)) != path:
        log(f"warning: predicted model path {path} differs from {m.group(1)}")
    return Path(m.group(1))


def append_timing(path, record):
    """One line of timings.jsonl: the record, when it finished and the 1-minute load average
    (wall times on a shared machine are only as good as it was quiet)."""
    record = dict(record, finished=time.strftime("%Y-%m-%dT%H:%M:%S"),
                  load1=os.getloadavg()[0])
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


# --- the plan -----------------------------------------------------------------------------------

class Step:
    """One unit of the sweep: a local r2f_sim run, a search or a retraining run."""

    def __init__(self, kind, name, directory, **spec):
        self.kind, self.name, self.dir, self.spec = kind, name, Path(directory), spec

    def done(self):
        result = {"sim": "sim.json", "search": "search.json", "retrain": "summary.json"}[self.kind]
        return (self.dir / result).exists()


def run_dir(sweep, net, ber, method):
    return Path(sweep["out"]) / "retrain" / net / f"ber-{ber_label(ber)}" / method


def search_dir(sweep, net, ber):
    return Path(sweep["out"]) / "search" / net / f"ber-{ber_label(ber)}"


def eval_images(sweep, net):
    return sweep["eval_images"].get(net, sweep["eval_images"]["default"])


def plan(sweep, networks):
    steps = []
    sim = sweep["sim"]
    for net in networks:
        for ber in sim["fig1_bers"]:
            steps.append(Step("sim", f"sim {net} fig1 ber {ber_label(ber)}",
                              Path(sweep["out"]) / "sim" / net / f"fig1-ber-{ber_label(ber)}",
                              net=net, ber=ber, tmr="none", images=sim["fig1_images"],
                              similarity=False))
        for ber in sim["fig9_bers"]:
            for tmr in ["none", "layer_wise", "network_wise"]:
                steps.append(Step("sim", f"sim {net} fig9 {tmr} ber {ber_label(ber)}",
                                  Path(sweep["out"]) / "sim" / net /
                                  f"fig9-{tmr}-ber-{ber_label(ber)}",
                                  net=net, ber=ber, tmr=tmr, images=sim["fig9_images"],
                                  similarity=True))

    def retrain(net, ber, method, iterations, before, eval_ber=None, name=None, link=None):
        name = name or method
        target = ber if eval_ber is None else eval_ber
        steps.append(Step("retrain", f"{net} ber {ber_label(target)} {name}",
                          run_dir(sweep, net, target, name), net=net, ber=ber, method=method,
                          eval_ber=eval_ber, iterations=iterations, before=before,
                          link=link or sweep["link"], images=eval_images(sweep, net),
                          device=device_id(ber, ur=eval_ber is not None)))

    tclp = sweep["tclp"]
    for net in networks:
        for ber in sweep["bers"]:
            for method in sweep["methods"]:
                # Base is the same for every method without TMR: measured by the DRM run only.
                retrain(net, ber, method, sweep["iterations"](net, ber), before=method == "drm")
        searched = net in tclp["search_networks"]
        methods = [m for m in tclp["methods"] if searched or METHODS[m][2] != "partial"]
        if net not in tclp["networks"]:
            methods = []
        for ber in tclp["bers"]:
            budgets = [METHODS[m][3] for m in methods if METHODS[m][2] == "partial"]
            if budgets:
                steps.append(Step("search", f"search {net} ber {ber_label(ber)}",
                                  search_dir(sweep, net, ber), net=net, ber=ber,
                                  r_max=max(budgets), images=tclp["search_images"],
                                  batch=tclp["search_batch"]))
            for method in methods:
                retrain(net, ber, method, sweep["iterations"](net, ber), before=True)
    for ur in sweep["ur"]:
        if ur["network"] not in networks:
            continue
        it = sweep["iterations"](ur["network"], ur["target"])
        retrain(ur["network"], ur["target"], "drm", it, before=True)  # MR (deduplicated below)
        for kind in ["far", "close"]:
            retrain(ur["network"], ur[kind], "drm", it, before=False, eval_ber=ur["target"],
                    name=f"ur-{kind[0]}-{ber_label(ur[kind])}")
    for check in sweep["link_check"]:
        if check["network"] not in networks:
            continue
        for method in check["methods"]:
            retrain(check["network"], check["ber"], method,
                    sweep["iterations"](check["network"], check["ber"]), before=False,
                    name=f'{method}-{check["link"]}', link=check["link"])
    unique, seen = [], set()
    for s in steps:
        if s.dir not in seen:
            seen.add(s.dir)
            unique.append(s)
    # Run order: what most figures need first, so that an interrupted sweep already covers
    # every network (a rerun continues with the rest): the simulations, DRM and APRM-60 on the
    # whole grid (Figs. 4, 6), the other thresholds (Fig. 7), searches and TCLP (Fig. 5), the
    # UR baselines (Fig. 2), the link check.
    def priority(s):
        if s.kind != "retrain":
            return {"sim": 0, "search": 3}[s.kind]
        name = s.dir.name
        if name.startswith("ur-"):
            return 5
        if "-" in name:
            return 6
        return {"drm": 1, "aprm60": 1, "aprm50": 2, "aprm80": 2}.get(name, 4)
    return sorted(unique, key=priority)


def devices(sweep):
    """(device id, BER, fault seed) of every device the sweep uses."""
    bers = set(sweep["bers"]) | set(sweep["tclp"]["bers"]) | {c["ber"] for c in
                                                              sweep["link_check"]}
    bers |= {u["target"] for u in sweep["ur"]}
    out = [(device_id(b), b, 1) for b in sorted(bers)]
    ur_bers = sorted({u[k] for u in sweep["ur"] for k in ("far", "close")})
    return out + [(device_id(b, ur=True), b, 2) for b in ur_bers]


def occupies(step):
    """The device daemons a step uses while it runs (a device serves one job at a time); a
    simulation uses none."""
    if step.kind == "sim":
        return set()
    if step.kind == "search":
        return {device_id(step.spec["ber"])}
    used = {step.spec["device"]}
    if step.spec.get("eval_ber") is not None:
        used.add(device_id(step.spec["eval_ber"]))  # UR runs evaluate on the target's device
    return used


def needs(sweep, step):
    """The directories of the steps whose results `step` reads: a TCLP run with a partial
    protection set reads its network's and BER's search."""
    if step.kind == "retrain" and METHODS[step.spec["method"]][2] == "partial":
        return {search_dir(sweep, step.spec["net"], step.spec["ber"])}
    return set()


def next_step(waiting, busy, finished, sweep):
    """The step to start next: the first of `waiting` (plan order) whose devices are not in
    `busy` and whose needs are all in `finished` (directories); None if none can start now.
    One rule for the runner and for the estimate of `plan --jobs`."""
    for step in waiting:
        if not occupies(step) & busy and needs(sweep, step) <= finished:
            return step
    return None


def done_before(sweep, steps):
    """The needs of `steps` that are not among them: their steps were done before (a rerun
    skips them as complete)."""
    return {d for s in steps for d in needs(sweep, s)} - {s.dir for s in steps}


def run_steps(sweep, steps, jobs, run_one, on_done):
    """Runs `steps` with at most `jobs` at once, never two on one device daemon and none before
    the steps it needs; otherwise in plan order. run_one(step) runs a step (raises on failure)
    in a thread of its own; on_done(step, error or None, wall seconds) is called as each ends,
    one call at a time. A step whose need failed is not run: on_done gets an error naming it.
    Leaving early (Ctrl-C, SIGTERM) terminates the runs still going."""
    waiting = list(steps)
    finished = done_before(sweep, steps)
    failed, busy, running = set(), set(), []
    cond = threading.Condition()

    def worker(step):
        t0 = time.time()
        error = None
        try:
            run_one(step)
        except Exception as e:  # noqa: BLE001 (reported per step; the others go on)
            error = e
        with cond:
            busy.difference_update(occupies(step))
            (failed if error else finished).add(step.dir)
            running.remove(step)
            on_done(step, error, time.time() - t0)
            cond.notify_all()

    try:
        with cond:
            while waiting or running:
                for step in [w for w in waiting if needs(sweep, w) & failed]:
                    waiting.remove(step)
                    failed.add(step.dir)
                    lost = ", ".join(str(d) for d in needs(sweep, step) & failed)
                    on_done(step, RuntimeError(f"needs {lost}, which failed"), 0.0)
                step = next_step(waiting, busy, finished, sweep) if len(running) < jobs else None
                if step is None:
                    if running:
                        cond.wait()
                    elif waiting:  # cannot happen with the plan's needs
                        raise RuntimeError(f"{waiting[0].name} can never start")
                    continue
                waiting.remove(step)
                busy.update(occupies(step))
                running.append(step)
                threading.Thread(target=worker, args=(step,), daemon=True).start()
    except BaseException:
        terminate_children()
        raise


# --- config generation --------------------------------------------------------------------------

def substitute(template, **values):
    return string.Template((ROOT / template).read_text()).substitute(
        {k: str(v) for k, v in values.items()})


def replace_line(text, pattern, replacement):
    new, n = re.subn(pattern, replacement, text, count=1, flags=re.M)
    if n != 1:
        raise RuntimeError(f"configs/demo/client.yaml: no line matches {pattern!r}")
    return new


def write_device_configs(sweep):
    """One device per BER, from configs/demo/client.yaml: its id, BER, seed and state dir."""
    paths = []
    base = (ROOT / "configs/demo/client.yaml").read_text()
    for dev, ber, seed in devices(sweep):
        ddir = ROOT / sweep["out"] / "devices" / dev
        ddir.mkdir(parents=True, exist_ok=True)
        text = replace_line(base, r"^device_id: .*$", f"device_id: {dev}")
        text = replace_line(text, r"^  ber: .*$", f"  ber: {ber:g}")
        text = replace_line(text, r"^  seed: .*$", f"  seed: {seed}")
        text = replace_line(text, r"^state_dir: .*$", f"state_dir: {ddir / 'state'}")
        text = ("# Generated by docs/figures/reproduce.py from configs/demo/client.yaml\n" + text)
        (ddir / "client.yaml").write_text(text)
        paths.append(ddir / "client.yaml")
    return paths


def protected_layers(sweep, net, ber, r_max):
    """The TCLP set for budget r_max: the longest prefix of the search trajectory within it."""
    result = json.loads((ROOT / search_dir(sweep, net, ber) / "search.json").read_text())
    chosen = []
    for step in result["trajectory"]:
        if step["overhead"] <= r_max + 1e-12:
            chosen = step["protected_layers"]
    return chosen


def retrain_config(sweep, step):
    s = step.spec
    mode, threshold, tmr_mode, r_max, reference = METHODS[s["method"]]
    protect = protected_layers(sweep, s["net"], s["ber"], r_max) if tmr_mode == "partial" else []
    if tmr_mode == "partial" and not protect:
        log(f"note: {step.name}: the search protects no layer within r_max {r_max}")
    return substitute(
        "configs/reproduce/retrain.template.yaml",
        device=s["device"], job=f"reproduce-{sweep['name']}-{step.dir.name}",
        link=s["link"], pretrain_config=pretrain_config(sweep, s["net"]),
        tmr_mode=tmr_mode, protected_layers="[" + ", ".join(map(str, protect)) + "]",
        method=mode, threshold=threshold, reference=reference, iterations=s["iterations"],
        eval_images=s["images"],
        eval_before="true" if s["before"] else "false",
        eval_device=device_id(s["eval_ber"]) if s["eval_ber"] is not None else "",
        run_dir=step.dir)


def search_config(sweep, step):
    s = step.spec
    return substitute(
        "configs/reproduce/search.template.yaml", device=device_id(s["ber"]),
        job=f"reproduce-{sweep['name']}-search", link=sweep["link"],
        pretrain_config=pretrain_config(sweep, s["net"]), r_max=s["r_max"],
        images=s["images"], batch_size=s["batch"], run_dir=step.dir)


# --- running ------------------------------------------------------------------------------------

def run_step(sweep, step, broker, models):
    d = ROOT / step.dir
    d.mkdir(parents=True, exist_ok=True)
    s = step.spec
    if step.kind == "sim":
        cmd = [str(BIN / "r2f_sim"), "--model", str(models[s["net"]]), "--images",
               str(s["images"]), "--ber", f"{s['ber']:g}", "--seed", "1", "--tmr", s["tmr"],
               "--json"]
        if not s["similarity"]:
            cmd.append("--no-similarity")
        out = call(cmd, stdout=subprocess.PIPE, text=True)
        json.loads(out)  # a complete JSON object, or fail
        (d / "sim.json.tmp").write_text(out)
        (d / "sim.json.tmp").rename(d / "sim.json")
        return
    if step.kind == "search":
        (d / "config.yaml").write_text(search_config(sweep, step))
        cmd = [str(BIN / "r2f_server"), "search", "--config", str(step.dir / "config.yaml")]
    else:
        (d / "config.yaml").write_text(retrain_config(sweep, step))
        cmd = [str(BIN / "r2f_server"), "retrain", "--config", str(step.dir / "config.yaml")]
        if (d / "checkpoint" / "state.yaml").exists():
            cmd.append("--resume")  # an interrupted run continues where its checkpoint is
    cmd += ["--broker", broker]
    with open(d / "server.log", "a") as logf:
        call(cmd, stdout=logf, stderr=subprocess.STDOUT)


def run_sweep(sweep, broker, networks=None, jobs=1):
    """Every step of the sweep that has no result yet, against devices serving on `broker`,
    at most `jobs` at once (run_steps); the number of steps that failed (each logged, the
    others still run)."""
    networks = networks or sweep["networks"]
    timings = ROOT / sweep["out"] / "timings.jsonl"
    models = {}
    for net in networks:
        models[net] = ensure_model(sweep, net, timings)
        log(f"{net}: model {models[net]}")
    steps = plan(sweep, networks)
    todo = [s for s in steps if not s.done()]
    log(f"sweep {sweep['name']}: {len(steps)} steps, {len(steps) - len(todo)} already done"
        + (f", {jobs} at a time" if jobs > 1 else ""))
    failed = []
    start = time.time()

    ended = []

    def done(step, error, wall):
        ended.append(step)
        n = f"[{len(ended)}/{len(todo)}]"
        if error is not None:
            failed.append(step.name)
            if _stopping.is_set():
                log(f"{n} stopped {step.name} "
                    "(a rerun runs it again, from its checkpoint if any)")
            else:
                log(f"{n} FAILED {step.name}: {error} (see {step.dir}/server.log)")
            return
        # jobs: the wall times of a step that shared the machine with others.
        record = {"step": step.name, "kind": step.kind, "dir": str(step.dir), "wall_s": wall,
                  "jobs": jobs}
        record.update({k: v for k, v in step.spec.items() if k != "similarity"})
        append_timing(timings, record)
        if step.kind != "sim" or len(ended) % 20 == 0 or len(ended) == len(todo):
            log(f"{n} {step.name}: {wall:.1f} s (elapsed {time.time() - start:.0f} s)")

    run_steps(sweep, todo, jobs, lambda step: run_step(sweep, step, broker, models), done)
    log(f"sweep {sweep['name']}: {len(todo) - len(failed)} steps run, {len(failed)} failed, "
        f"{time.time() - start:.0f} s")
    for name in failed:
        log(f"  failed: {name}")
    return len(failed)


# --- broker and devices -------------------------------------------------------------------------

def free_loopback_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout_s, what):
    deadline = time.time() + timeout_s
    while not predicate():
        if time.time() > deadline:
            raise RuntimeError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.1)


def log_tail(path, lines=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


class LocalDevices:
    """A throwaway mosquitto on a free loopback port (127.0.0.1 only) and one r2f_client per
    device config, for the length of a with-block; `uri` is the broker's. Every process is
    stopped on the way out, also when the block is left by an error, Ctrl-C or SIGTERM."""

    def __init__(self, workdir, device_configs):
        self.workdir, self.configs, self.procs, self.uri = Path(workdir), device_configs, [], None

    def __enter__(self):
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        port = free_loopback_port()
        conf = self.workdir / "mosquitto.conf"
        # As root, mosquitto drops to user "mosquitto" unless told otherwise (see run.sh start_broker).
        conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
                        "max_queued_messages 0\n" + ("user root\n" if os.geteuid() == 0 else ""))
        broker_log = self.workdir / "mosquitto.log"
        self._spawn(["mosquitto", "-c", str(conf)], broker_log)

        def accepting():
            if self.procs[0].poll() is not None:
                raise RuntimeError(f"mosquitto exited; its log:\n{log_tail(broker_log)}")
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", port)) == 0
        wait_for(accepting, 10, f"mosquitto on 127.0.0.1:{port}")
        self.uri = f"tcp://127.0.0.1:{port}"
        logs = []
        for cfg in self.configs:
            logs.append(Path(cfg).parent / "client.log")
            self._spawn([str(BIN / "r2f_client"), "--config", str(cfg), "--broker", self.uri],
                        logs[-1])
        for proc, client_log in zip(self.procs[1:], logs):
            def serving():
                if proc.poll() is not None:
                    raise RuntimeError(f"r2f_client exited ({proc.returncode}); its log "
                                       f"{client_log}:\n{log_tail(client_log)}")
                return "serving as" in client_log.read_text(errors="replace")
            wait_for(serving, 120, f"the device daemon of {client_log.parent}")
        log(f"mosquitto on 127.0.0.1:{port}, {len(self.configs)} device daemons serving")

    def _spawn(self, cmd, log_path):
        with open(log_path, "w") as out:
            self.procs.append(subprocess.Popen(cmd, cwd=ROOT, stdout=out,
                                               stderr=subprocess.STDOUT))

    def __exit__(self, *exc):
        # Devices first (they publish "offline" on SIGTERM), then the broker.
        for group in [self.procs[1:], self.procs[:1]]:
            stop_processes(group)
        return False


def run_all(sweep, networks=None, jobs=1):
    """The whole sweep (device configs, broker, device daemons, runs), then the figures and
    tables.md in sweep["figures"]; 0 when every step succeeded."""
    configs = write_device_configs(sweep)
    with LocalDevices(ROOT / sweep["out"] / "broker", configs) as devices:
        failed = run_sweep(sweep, devices.uri, networks, jobs)
    import make_figures  # matplotlib: only needed from here on
    make_figures.make(sweep["out"], sweep["figures"])  # relative to ROOT, the working directory
    log(f"figures and tables.md in {sweep['figures']}")
    return 1 if failed else 0


def cmd_all(args, sweep):
    return run_all(sweep, args.networks, args.jobs)


def cmd_run(args, sweep):
    return 1 if run_sweep(sweep, args.broker, args.networks, args.jobs) else 0


def cmd_devices(args, sweep):
    for path in write_device_configs(sweep):
        print(path)
    return 0


def cmd_outdir(args, sweep):
    print(sweep["out"])
    return 0


def cmd_plan(args, sweep):
    """Lists the steps; with --from, estimates their duration from another sweep's timings
    (wall seconds per iteration and per evaluated image per network and method family)."""
    steps = plan(sweep, args.networks or sweep["networks"])
    counts = {}
    for s in steps:
        counts[s.kind] = counts.get(s.kind, 0) + 1
    iters = sum(s.spec["iterations"] for s in steps if s.kind == "retrain")
    print(f"{sweep['name']}: {len(steps)} steps {counts}, {iters} retraining iterations, "
          f"{len(devices(sweep))} devices")
    if not args.source:
        for s in steps:
            print(f"  {'done' if s.done() else 'todo'}  {s.name}")
        return 0
    per_step = step_seconds(sweep, steps, Path(args.source),
                            drm_per_iteration(args.drm_per_iteration), args.jobs)
    est = by_kind(per_step)
    total = sum(est.values())
    for kind, secs in est.items():
        print(f"  {kind:8s} {secs / 3600:6.2f} h")
    print(f"  total    {total / 3600:6.2f} h of runs (estimate from {args.source})")
    if args.jobs > 1:
        wall = makespan(sweep, [(s, sum(parts.values())) for s, parts in per_step], args.jobs)
        print(f"  wall     {wall / 3600:6.2f} h with {args.jobs} runs at once")
    return 0


def drm_per_iteration(pairs):
    """{net: seconds} from `net=seconds` arguments (plan --drm-per-iteration)."""
    out = {}
    for pair in pairs or []:
        net, sep, secs = pair.partition("=")
        if not sep or net not in sweeps.NETWORKS:
            raise SystemExit(f"--drm-per-iteration: '{pair}' is not <network>=<seconds> with a "
                             f"network of {sweeps.NETWORKS}")
        try:
            out[net] = float(secs)
        except ValueError:
            raise SystemExit(f"--drm-per-iteration: '{secs}' in '{pair}' is not a number")
        if not out[net] > 0:
            raise SystemExit(f"--drm-per-iteration: '{pair}': seconds must be > 0")
    return out


def family(method):
    return "aprm" if method.startswith("aprm") else method if method.startswith("tclp") else "drm"


def mac_layers(source, net):
    """The number of MAC layers of a network, from one of the source's r2f_sim reports."""
    for f in (ROOT / source / "sim" / net).glob("fig9-*/sim.json"):
        return len(json.loads(f.read_text())["layers"])
    raise RuntimeError(f"no r2f_sim report of {net} in {source}")


def estimate(sweep, steps, source, drm_per_iteration=None, jobs=1):
    """Seconds per kind of step, scaled from the measured steps of `source` (its timings.jsonl
    and summaries): retraining = per-iteration time x iterations, evaluation = per-image time x
    images; sims per image; searches per (evaluation x image). `drm_per_iteration` ({net:
    seconds}, measured elsewhere, e.g. with a newer build) replaces a network's DRM time per
    iteration; its other method families keep their ratio to DRM in the source. With `jobs`
    runs at once, see step_seconds."""
    return by_kind(step_seconds(sweep, steps, source, drm_per_iteration, jobs))


def by_kind(per_step):
    """{kind: seconds} summed over step_seconds' list."""
    out = {"sim": 0.0, "search": 0.0, "retrain": 0.0, "eval": 0.0}
    for _, parts in per_step:
        for kind, secs in parts.items():
            out[kind] += secs
    return out


def step_seconds(sweep, steps, source, drm_per_iteration=None, jobs=1):
    """(step, {kind: seconds}) for every step, as estimate() describes. With `jobs` > 1 each
    step shares the machine: `drm_per_iteration` must then be measured with that many runs at
    once, and every other time (measured in the source one run at a time) is taken `jobs`
    times longer, as if sharing gained nothing there."""
    per_it, per_img, sim_img, search_eval = {}, {}, {}, {}
    for line in (ROOT / source / "timings.jsonl").read_text().splitlines():
        r = json.loads(line)
        net = r.get("net")
        # A step of a source run with several at once took longer than alone.
        share = jobs / r.get("jobs", 1)
        if r["kind"] == "retrain":
            summary = json.loads((ROOT / r["dir"] / "summary.json").read_text())
            loop = summary["timing"]["measured_total_s"]
            n_eval = r["images"] * (2 if r["before"] else 1)
            key = (net, family(r["method"]))
            per_it.setdefault(key, []).append(share * loop / max(1, r["iterations"]))
            per_img.setdefault(net, []).append(share * max(0.0, r["wall_s"] - loop) / n_eval)
        elif r["kind"] == "sim":
            sim_img.setdefault((net, r["tmr"]), []).append(share * r["wall_s"] / r["images"])
        elif r["kind"] == "search":
            s = json.loads((ROOT / r["dir"] / "search.json").read_text())
            search_eval.setdefault(net, []).append(
                (share * r["wall_s"] / (s["evaluations"] + 1) / r["images"],
                 len(s["candidates"]), len(s["protected_layers"])))
    mean = lambda xs: sum(xs) / len(xs)  # noqa: E731
    out = []
    for s in steps:
        p, net = s.spec, s.spec["net"]
        if s.kind == "sim":
            out.append((s, {"sim": mean(sim_img[(net, p["tmr"])]) * p["images"]}))
        elif s.kind == "search":
            if net in search_eval:
                per, layers, chosen = search_eval[net][0]
            else:
                # Not searched in the source: scale a searched network's cost per evaluated
                # image by the simulated cost per image, and its share of chosen layers.
                ref = next(iter(search_eval))
                per0, layers0, chosen0 = search_eval[ref][0]
                ratio = mean(sim_img[(net, "none")]) / mean(sim_img[(ref, "none")])
                layers = mac_layers(source, net)
                per, chosen = per0 * ratio, round(chosen0 / layers0 * layers)
            # Greedy evaluations grow with the number of chosen layers:
            # (s + 1)(2L - s)/2 for s chosen of L, plus the base evaluation.
            evals = (chosen + 1) * (2 * layers - chosen) / 2 + 1
            out.append((s, {"search": per * evals * p["images"]}))
        else:
            key = (net, family(p["method"]))
            drm = mean(per_it[(net, "drm")])
            it = mean(per_it.get(key) or per_it[(net, "drm")])
            if drm_per_iteration and net in drm_per_iteration:
                it *= drm_per_iteration[net] / drm
            out.append((s, {"retrain": it * p["iterations"],
                            "eval": mean(per_img[net]) * p["images"] *
                            (2 if p["before"] else 1)}))
    return out


def makespan(sweep, durations, jobs):
    """The wall seconds of running [(step, seconds)] in plan order with `jobs` at once, by the
    runner's own rule (next_step): when a run ends, the next step that may start does."""
    waiting = [s for s, _ in durations]
    secs = {s.dir: t for s, t in durations}
    now, running, busy, finished = 0.0, [], set(), done_before(sweep, waiting)
    while waiting or running:
        step = next_step(waiting, busy, finished, sweep) if len(running) < jobs else None
        if step is not None:
            waiting.remove(step)
            busy |= occupies(step)
            running.append((now + secs[step.dir], step))
            continue
        if not running:
            raise RuntimeError(f"{waiting[0].name} can never start")
        running.sort(key=lambda r: r[0])
        now, ended = running.pop(0)
        busy -= occupies(ended)
        finished.add(ended.dir)
    return now


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("command", choices=["all", "outdir", "devices", "run", "plan"])
    ap.add_argument("--sweep", choices=sorted(sweeps.SWEEPS), default="quick")
    ap.add_argument("--broker", help="tcp://host:port of the broker the devices use (run)")
    ap.add_argument("--networks", nargs="*", help="only these networks (default: the sweep's)")
    ap.add_argument("--from", dest="source", help="plan: estimate from this sweep's timings")
    ap.add_argument("--out", help="output directory instead of the sweep's")
    ap.add_argument("--figures", help="all: figure directory instead of the sweep's")
    ap.add_argument("--iterations", type=int,
                    help="plan: every retraining run at this many iterations (3125: the paper's "
                         "one epoch)")
    ap.add_argument("--drm-per-iteration", nargs="*", metavar="NET=SECONDS",
                    help="plan --from: each network's DRM seconds per iteration, measured "
                         "elsewhere (with --jobs runs at once); other methods keep their ratio "
                         "to DRM in the source")
    ap.add_argument("--jobs", type=int, default=1,
                    help="all, run: at most this many runs at once, never two on one device "
                         "(default 1: the measured stage times of a run are then its own); "
                         "plan: estimate the sweep's wall time so")
    args = ap.parse_args()
    os.chdir(ROOT)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    sweep = dict(sweeps.SWEEPS[args.sweep])
    if args.out:
        sweep["out"] = args.out
    if args.figures:
        sweep["figures"] = args.figures
    if args.iterations is not None:
        if args.iterations < 1:
            ap.error("--iterations must be >= 1")
        sweep["iterations"] = lambda net, ber: args.iterations
    if args.jobs < 1:
        ap.error("--jobs must be >= 1")
    if args.command == "run" and not args.broker:
        ap.error("run needs --broker")
    commands = {"all": cmd_all, "outdir": cmd_outdir, "devices": cmd_devices, "run": cmd_run,
                "plan": cmd_plan}
    return commands[args.command](args, sweep)


if __name__ == "__main__":
    sys.exit(main())
