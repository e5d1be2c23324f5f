#!/usr/bin/env python3
"""Figures 1, 2, 4, 5, 6, 7 and 9 of the paper, and tables.md, from the logs of a reproduce sweep.

    /usr/bin/python3 docs/figures/make_figures.py --runs runs/reproduce-quick --out docs/figures

Reads only what the runs left behind: <runs>/sim/<net>/*/sim.json (r2f_sim --json),
<runs>/retrain/<net>/ber-<BER>/<method>/summary.json (r2f_server retrain),
<runs>/search/<net>/ber-<BER>/search.json and <runs>/timings.jsonl. Writes figN.png and figN.svg
and tables.md (the numbers behind every figure) to --out. Needs Debian's python3-matplotlib.
"""

import argparse
import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

NETS = ["resnet18", "resnet50", "mobilenetv2", "shufflenetv2", "squeezenet"]
NET_NAMES = {"resnet18": "ResNet18", "resnet50": "ResNet50", "mobilenetv2": "MobileNetV2",
             "shufflenetv2": "ShuffleNetV2", "squeezenet": "SqueezeNet"}
METHOD_NAMES = {"drm": "DRM", "aprm50": "APRM-50%", "aprm60": "APRM-60%", "aprm80": "APRM-80%",
                "exact": "APRM-exact (ours)", "local": "APRM-local (ours, approx.)",
                "tclp20": "TCLP-20%", "tclp50": "TCLP-50%", "tclp200": "TCLP-200%"}
STAGES = ["fp", "tmr", "increment", "codec", "uplink", "bp", "downlink"]
STAGE_NAMES = {"fp": "FP", "tmr": "TMR", "increment": "Increment", "codec": "(De)compression",
               "uplink": "Data transmission", "bp": "BP", "downlink": "Model transmission"}
# The link presets of common/link/link_model.cc (paper Table II; latency per transfer is ours):
# uplink bit/s, downlink bit/s, one-way latency s.
LINKS = {"lora": (50e3, 50e3, 1.0), "ieee802154g": (800e3, 800e3, 0.050),
         "hspa": (5.76e6, 21.1e6, 0.050), "lte_cat4": (50e6, 150e6, 0.025)}
LINK_NAMES = {"ieee802154g": "802.15.4g", "hspa": "HSPA", "lora": "LoRa", "lte_cat4": "LTE Cat.4"}


def ber_label(ber):
    if ber == 0:
        return "0"
    mantissa, exponent = f"{ber:.3e}".split("e")
    return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"


# --- loading ------------------------------------------------------------------------------------

class Runs:
    def __init__(self, root):
        self.root = Path(root)
        self.sims = {}      # (net, fig, tmr, ber) -> sim.json
        self.retrain = {}   # (net, ber, method) -> summary.json
        self.search = {}    # (net, ber) -> search.json
        for f in self.root.glob("sim/*/*/sim.json"):
            net, name = f.parts[-3], f.parts[-2]
            parts = name.split("-ber-")
            fig_tmr, ber = parts[0], float(parts[1])
            fig, _, tmr = fig_tmr.partition("-")
            self.sims[(net, fig, tmr or "none", ber)] = json.loads(f.read_text())
        for f in self.root.glob("retrain/*/ber-*/*/summary.json"):
            net, ber, method = f.parts[-4], float(f.parts[-3][4:]), f.parts[-2]
            self.retrain[(net, ber, method)] = json.loads(f.read_text())
        for f in self.root.glob("search/*/ber-*/search.json"):
            self.search[(f.parts[-3], float(f.parts[-2][4:]))] = json.loads(f.read_text())
        self.timings = []
        tf = self.root / "timings.jsonl"
        if tf.exists():
            self.timings = [json.loads(line) for line in tf.read_text().splitlines() if line]
        self.nets = [n for n in NETS if any(k[0] == n for k in self.retrain) or
                     any(k[0] == n for k in self.sims)]

    def bers(self, net=None, method=None):
        return sorted({k[1] for k in self.retrain if (net is None or k[0] == net) and
                       (method is None or k[2] == method)})

    def base(self, net, ber):
        """Base top-1: the pre-trained model on the device (measured by the DRM run)."""
        s = self.retrain.get((net, ber, "drm"))
        return s["accuracy_before"]["top1"] if s and s["accuracy_before"]["images"] else None

    def after(self, net, ber, method):
        s = self.retrain.get((net, ber, method))
        return s["accuracy_after"]["top1"] if s else None


def stage_seconds(summary, link):
    """Modelled seconds per stage of a run on `link`: the link stages are recomputed from the
    recorded bytes (bytes * 8 / rate + latency per transfer, as the server models them; the
    number of transfers is recovered from the run's own link), the other stages are kept."""
    t = summary["timing"]
    m = dict(t["modelled_s"])
    if link != summary["link"]:
        src, dst = LINKS[summary["link"]], LINKS[link]
        for stage, nbytes, rate in [("uplink", t["uplink_bytes"], 0), ("downlink",
                                                                        t["downlink_bytes"], 1)]:
            transfers = round((m[stage] - nbytes * 8 / src[rate]) / src[2]) if src[2] else 0
            m[stage] = nbytes * 8 / dst[rate] + transfers * dst[2]
    return m


def per_iteration(summary, link):
    n = max(1, summary["timing"]["iterations"])
    return {k: v / n for k, v in stage_seconds(summary, link).items()}


# --- figure helpers -----------------------------------------------------------------------------

def panels(n, width=3.3, height=2.9, rows=None, sharey=False):
    rows = rows or (1 if n <= 3 else 2)
    cols = math.ceil(n / rows)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols + 1.8, height * rows),
                             squeeze=False, sharey=sharey)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def ylabel(axes, text):
    for ax in axes:
        if ax.get_subplotspec().is_first_col():
            ax.set_ylabel(text)


def legend_right(fig, axes):
    handles, labels = [], []
    for ax in axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)


def save(fig, out, name):
    fig.tight_layout()
    for ext in ["png", "svg"]:
        fig.savefig(out / f"{name}.{ext}", dpi=130, bbox_inches="tight")
    plt.close(fig)


def ber_axis(ax, bers):
    ax.set_xticks(range(len(bers)))
    ax.set_xticklabels([ber_label(b) for b in bers], rotation=0, fontsize=8)
    ax.set_xlabel("bit error rate")


MARKERS = {"Base": ("k", "o", "--"), "DRM": ("tab:blue", "s", "-"),
           "APRM-50%": ("tab:orange", "^", "-"), "APRM-60%": ("tab:green", "v", "-"),
           "APRM-80%": ("tab:red", "D", "-"), "APRM-exact (ours)": ("tab:brown", "h", "-"),
           "APRM-local (ours, approx.)": ("tab:pink", "d", "-"),
           "TCLP-20%": ("tab:olive", "P", "-"),
           "TCLP-50%": ("tab:cyan", "X", "-"), "TCLP-200%": ("tab:purple", "*", "-")}


# --- the figures --------------------------------------------------------------------------------

def fig1(runs, out, tables):
    """Top-1 versus BER of the pre-trained int8 models (r2f_sim, no TMR)."""
    bers = sorted({k[3] for k in runs.sims if k[1] == "fig1"})
    if not bers:
        return
    fig, ax = plt.subplots(figsize=(6.2, 3.6))
    rows = []
    for net in runs.nets:
        ys = [runs.sims.get((net, "fig1", "none", b), {}).get("top1") for b in bers]
        ax.plot(range(len(bers)), [math.nan if y is None else y for y in ys], marker="o",
                label=NET_NAMES[net])
        rows.append([NET_NAMES[net]] + [fmt(y) for y in ys])
    ber_axis(ax, bers)
    ax.set_ylabel("top-1 accuracy [%]")
    ax.set_title("Fig. 1: accuracy of the int8 models on the faulty accelerator")
    ax.grid(alpha=0.3)
    ax.legend(loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    images = next(v["images"] for k, v in runs.sims.items() if k[1] == "fig1")
    save(fig, out, "fig1")
    tables.append(("Fig. 1: top-1 [%%] versus BER (r2f_sim, no TMR, first %d test images, seed 1)"
                   % images, ["network"] + [ber_label(b) for b in bers], rows))


def fig9(runs, out, tables):
    """Share of the last layer's int8 outputs equal to the clean model's: no TMR, LW, NW."""
    bers = sorted({k[3] for k in runs.sims if k[1] == "fig9"})
    if not bers:
        return
    fig, axes = panels(len(runs.nets), sharey=True)
    rows = []
    style = {"none": ("no TMR", "k", ":"), "layer_wise": ("LW-TMR", "tab:blue", "-"),
             "network_wise": ("NW-TMR", "tab:red", "--")}
    for ax, net in zip(axes, runs.nets):
        for tmr, (name, color, ls) in style.items():
            ys = [runs.sims.get((net, "fig9", tmr, b), {}).get("layers") for b in bers]
            ys = [100 * y[-1]["similarity"] if y else math.nan for y in ys]
            ax.plot(range(len(bers)), ys, color=color, linestyle=ls, marker="o", markersize=3,
                    label=name)
            rows.append([NET_NAMES[net], name] + [fmt(y) for y in ys])
        ber_axis(ax, bers)
        ax.set_title(NET_NAMES[net], fontsize=10)
        ax.grid(alpha=0.3)
    ylabel(axes, "last-layer outputs\nequal to clean [%]")
    fig.suptitle("Fig. 9: last-layer output similarity, layer-wise vs network-wise TMR")
    legend_right(fig, axes)
    save(fig, out, "fig9")
    images = next(v["images"] for k, v in runs.sims.items() if k[1] == "fig9")
    tables.append(("Fig. 9: last-layer outputs equal to the clean model's [%%] (first %d test "
                   "images)" % images, ["network", "TMR"] + [ber_label(b) for b in bers], rows))


def accuracy_table(runs, methods, title, tables):
    rows = []
    for net in runs.nets:
        for ber in runs.bers(net, "drm"):
            base = runs.base(net, ber)
            s = runs.retrain[(net, ber, "drm")]
            cells = [NET_NAMES[net], ber_label(ber), str(s["iterations"]),
                     str(s["accuracy_after"]["images"]), fmt(base)]
            for m in methods:
                a = runs.after(net, ber, m)
                cells.append("" if a is None else f"{a:.2f} ({a - base:+.2f})" if base is not None
                             else f"{a:.2f}")
            rows.append(cells)
    tables.append((title, ["network", "BER", "iterations", "eval images", "Base"] +
                   [METHOD_NAMES[m] for m in methods], rows))


def present(runs, methods):
    """The methods of `methods` that have at least one retraining run."""
    ran = {k[2] for k in runs.retrain}
    return [m for m in methods if m in ran]


def fig4(runs, out, tables):
    """Top-1 after retraining with DRM, APRM at three similarity thresholds and APRM-exact
    (ours), and Base."""
    methods = present(runs, ["drm", "aprm50", "aprm60", "aprm80", "exact", "local"])
    width = 0.8 / len(methods)
    fig, axes = panels(len(runs.nets))
    fig2, axes2 = panels(len(runs.nets), height=2.6)
    for ax, ax2, net in zip(axes, axes2, runs.nets):
        bers = runs.bers(net, "drm")
        base = [runs.base(net, b) for b in bers]
        x = range(len(bers))
        c, mk, ls = MARKERS["Base"]
        ax.plot(x, [nan(v) for v in base], color=c, marker=mk, linestyle=ls, label="Base")
        for i, m in enumerate(methods):
            c, mk, ls = MARKERS[METHOD_NAMES[m]]
            ys = [runs.after(net, b, m) for b in bers]
            ax.plot(x, [nan(v) for v in ys], color=c, marker=mk, linestyle=ls, markersize=5,
                    label=METHOD_NAMES[m])
            ax2.bar([xi + (i - (len(methods) - 1) / 2) * width for xi in x],
                    [nan(a) - nan(b) for a, b in zip(ys, base)], width=width, color=c,
                    label=METHOD_NAMES[m])
        for a in (ax, ax2):
            ber_axis(a, bers)
            a.set_title(NET_NAMES[net], fontsize=10)
            a.grid(alpha=0.3)
        ax2.axhline(0, color="k", linewidth=0.8)
    ylabel(axes, "top-1 accuracy [%]")
    ylabel(axes2, "top-1 change vs Base\n[points]")
    fig.suptitle("Fig. 4: accuracy after retraining (DRM, APRM) and Base")
    fig2.suptitle("Fig. 4 (detail): top-1 change against Base, same faults and test images")
    legend_right(fig, axes)
    legend_right(fig2, axes2)
    save(fig, out, "fig4")
    save(fig2, out, "fig4_delta")
    accuracy_table(runs, methods, "Figs. 4: top-1 [%] after retraining (change vs Base, points)",
                   tables)


def fig5(runs, out, tables):
    """Base, DRM and TCLP-20/50/200 (retrained on the protected device); the crosses are the
    protected device without retraining."""
    methods = ["drm", "tclp20", "tclp50", "tclp200"]
    nets = [n for n in runs.nets if runs.bers(n, "tclp200") or runs.bers(n, "tclp50")]
    if not nets:
        return
    fig, axes = panels(len(nets), width=3.0)
    rows = []
    for ax, net in zip(axes, nets):
        bers = sorted(set(runs.bers(net, "tclp200")) | set(runs.bers(net, "tclp50")))
        names = ["Base"] + [METHOD_NAMES[m] for m in methods]
        w = 0.8 / len(names)
        for i, name in enumerate(names):
            vals = []
            for b in bers:
                vals.append(runs.base(net, b) if name == "Base" else
                            runs.after(net, b, methods[i - 1]))
            xs = [j + (i - (len(names) - 1) / 2) * w for j in range(len(bers))]
            ax.bar(xs, [nan(v) for v in vals], width=w, color=MARKERS[name][0], label=name)
            for x, v in zip(xs, vals):
                if v is None:  # not in this sweep (e.g. no critical-layer search for this net)
                    ax.text(x, 0.02, "not run", rotation=90, ha="center", va="bottom",
                            fontsize=7, color="0.4", transform=ax.get_xaxis_transform())
            if name.startswith("TCLP"):
                before = [runs.retrain.get((net, b, methods[i - 1]), {}).get(
                    "accuracy_before", {}).get("top1") for b in bers]
                ax.plot(xs, [nan(v) for v in before], linestyle="none", marker="x", color="k",
                        label="TCLP protection alone (no retraining)")
        for b in bers:
            cells = [NET_NAMES[net], ber_label(b), fmt(runs.base(net, b)),
                     fmt(runs.after(net, b, "drm"))]
            for m in methods[1:]:
                s = runs.retrain.get((net, b, m))
                layers = "all" if m == "tclp200" else str(len(s["protected_layers"])) if s else ""
                cells.append("" if not s else "%.2f / %.2f (%s layers, r=%.2f)" % (
                    s["accuracy_before"]["top1"], s["accuracy_after"]["top1"], layers,
                    s["tmr_overhead"]))
            rows.append(cells)
        ber_axis(ax, bers)
        lo = min([runs.base(net, b) or 100 for b in bers] + [100])
        ax.set_ylim(max(0, lo - 10), 100)
        ax.set_title(NET_NAMES[net], fontsize=10)
        ax.grid(alpha=0.3, axis="y")
    ylabel(axes, "top-1 accuracy [%]")
    fig.suptitle("Fig. 5: critical-layer protection (TCLP) with retraining")
    legend_right(fig, axes)
    save(fig, out, "fig5")
    tables.append(("Fig. 5: top-1 [%]; TCLP cells: protection alone / protection + retraining "
                   "(protected layers, redundant compute r)",
                   ["network", "BER", "Base", "DRM", "TCLP-20%", "TCLP-50%", "TCLP-200%"], rows))


# Fig. 6's series: the paper's APRM-60% and, where they ran, ours (bar label suffixes).
FIG6_SERIES = [("aprm60", "", "APRM-60%"), ("exact", " x", "APRM-exact"),
               ("local", " l", "APRM-local")]


def fig6(runs, out, tables, links):
    """Modelled retraining time per iteration by stage, APRM-60% (and ours where they ran:
    APRM-exact, bars marked "x", and APRM-local, "l") normalised to DRM."""
    rows, summary_rows = [], []
    fig, axes = plt.subplots(len(links), 1, figsize=(18, 3.3 * len(links)), squeeze=False)
    colors = dict(zip(STAGES, ["tab:blue", "tab:purple", "tab:pink", "tab:olive", "tab:orange",
                               "tab:green", "tab:gray"]))
    for ax, link in zip([a[0] for a in axes], links):
        ticks, labels, x = [], [], 0
        reductions = {}
        for net in runs.nets:
            bers = [b for b in runs.bers(net, "aprm60") if (net, b, "drm") in runs.retrain]
            if not bers:
                continue
            bars = [("DRM", per_iteration(runs.retrain[(net, bers[-1], "drm")], link), None)]
            for b in bers:
                drm = per_iteration(runs.retrain[(net, b, "drm")], link)
                for method, suffix, _ in FIG6_SERIES:
                    if (net, b, method) in runs.retrain:
                        bars.append((ber_label(b) + suffix,
                                     per_iteration(runs.retrain[(net, b, method)], link),
                                     sum(drm.values())))
            drm_total = sum(bars[0][1].values())
            start = x
            for label, stages, norm in bars:
                norm = norm or drm_total
                bottom = 0
                for st in STAGES:
                    h = stages[st] / norm
                    ax.bar(x, h, bottom=bottom, color=colors[st], width=0.8,
                           label=STAGE_NAMES[st])
                    bottom += h
                ticks.append(x)
                labels.append(label)
                if label != "DRM":
                    red = 1 - sum(stages.values()) / norm
                    ber, _, suffix = label.partition(" ")
                    method = next(name for _, s, name in FIG6_SERIES if s.strip() == suffix)
                    reductions.setdefault((method, ber), []).append(red)
                    rows.append([LINK_NAMES[link], NET_NAMES[net], method, ber, "%.3f" % norm,
                                 "%.3f" % sum(stages.values()), "%.0f%%" % (100 * red)] +
                                ["%.0f%%" % (100 * stages[s] / sum(stages.values()))
                                 for s in STAGES])
                x += 1
            ax.text((start + x - 1) / 2, 1.08, NET_NAMES[net], ha="center", fontsize=9)
            x += 0.8
        for (method, b), reds in sorted(reductions.items(),
                                        key=lambda kv: (kv[0][0], float(kv[0][1]))):
            summary_rows.append([LINK_NAMES[link], method, b, str(len(reds)),
                                 "%.0f%%" % (100 * sum(reds) / len(reds)),
                                 "%.0f%% .. %.0f%%" % (100 * min(reds), 100 * max(reds))])
        ax.set_xticks(ticks)
        ax.set_xticklabels(labels, fontsize=7)
        ax.set_ylim(0, 1.18)
        ax.set_ylabel(f"{LINK_NAMES[link]}: time / DRM")
        ax.axhline(1.0, color="k", linewidth=0.6, linestyle=":")
        ax.grid(alpha=0.3, axis="y")
    axes[-1][0].set_xlabel("DRM, then APRM-60% (and ours: APRM-exact \"x\", APRM-local \"l\") at "
                           "each bit error rate (modelled time per iteration, normalised to DRM at "
                           "the same BER)")
    fig.suptitle("Fig. 6: retraining time per stage, normalised to DRM")
    legend_right(fig, [a[0] for a in axes])
    save(fig, out, "fig6")
    tables.append(("Fig. 6: modelled seconds per iteration, APRM-60% (and ours: APRM-exact, "
                   "APRM-local) against DRM, and their stage shares",
                   ["link", "network", "method", "BER", "DRM s/it", "method s/it", "reduction"] +
                   [STAGE_NAMES[s] for s in STAGES], rows))
    tables.append(("Fig. 6 summary: average time reduction against DRM over the networks (the "
                   "paper's APRM-60%: -88% at 1e-6, -73% at 1e-5, -38% at 1e-4)",
                   ["link", "method", "BER", "networks", "mean reduction", "range"],
                   summary_rows))


def fig7(runs, out, tables):
    """Uplink bytes of APRM-x (and APRM-exact, ours) relative to DRM."""
    methods = present(runs, ["aprm50", "aprm60", "aprm80", "exact", "local"])
    width = 0.8 / len(methods)
    fig, axes = panels(len(runs.nets), sharey=True)
    rows = []
    for ax, net in zip(axes, runs.nets):
        bers = [b for b in runs.bers(net, "drm")]
        for i, m in enumerate(methods):
            vals = []
            for b in bers:
                s, d = runs.retrain.get((net, b, m)), runs.retrain[(net, b, "drm")]
                per = lambda r: r["timing"]["uplink_bytes"] / r["timing"]["iterations"]  # noqa
                vals.append(per(s) / per(d) if s else math.nan)
            ax.bar([j + (i - (len(methods) - 1) / 2) * width for j in range(len(bers))], vals,
                   width=width, color=MARKERS[METHOD_NAMES[m]][0], label=METHOD_NAMES[m])
        for b in bers:
            d = runs.retrain[(net, b, "drm")]
            cells = [NET_NAMES[net], ber_label(b),
                     "%.3f" % (d["timing"]["uplink_bytes"] / d["timing"]["iterations"] / 1e6)]
            for m in methods:
                s = runs.retrain.get((net, b, m))
                ratio = None if not s else ((s["timing"]["uplink_bytes"] /
                                             s["timing"]["iterations"]) /
                                            (d["timing"]["uplink_bytes"] /
                                             d["timing"]["iterations"]))
                # The exact method picks each layer's form per batch: no fixed increment layers.
                cells.append("" if not s else "%.2f (exact)" % ratio if m == "exact" else
                             "%.2f (%d layers)" % (ratio, len(s["increment_layers"])))
            rows.append(cells)
        ber_axis(ax, bers)
        ax.set_title(NET_NAMES[net], fontsize=10)
        ax.set_ylim(0, 1.05)
        ax.grid(alpha=0.3, axis="y")
    ylabel(axes, "uplink bytes / DRM")
    fig.suptitle("Fig. 7: data transmission of APRM relative to DRM")
    legend_right(fig, axes)
    save(fig, out, "fig7")
    tables.append(("Fig. 7: uplink bytes per iteration relative to DRM (layers sent as "
                   "increments)", ["network", "BER", "DRM MB/it"] +
                   [METHOD_NAMES[m] for m in methods], rows))


def fig2(runs, out, tables):
    """Base, unmatched retraining far / close, matched retraining (MR = the target's DRM)."""
    entries = {}
    for (net, ber, method), s in runs.retrain.items():
        if method.startswith("ur-"):
            entries.setdefault((net, ber), {})[method[:4]] = (s, float(method[5:]))
    if not entries:
        return
    nets = sorted({k[0] for k in entries}, key=NETS.index)
    fig, axes = panels(len(nets), width=4.0)
    rows = []
    names = [("Base", "k"), ("UR-F", "tab:red"), ("UR-C", "tab:orange"), ("MR", "tab:blue")]
    for ax, net in zip(axes, nets):
        targets = sorted(b for n, b in entries if n == net)
        for j, t in enumerate(targets):
            e = entries[(net, t)]
            vals = [runs.base(net, t), e.get("ur-f", ({},))[0].get("accuracy_after", {}).get(
                "top1"), e.get("ur-c", ({},))[0].get("accuracy_after", {}).get("top1"),
                runs.after(net, t, "drm")]
            train = ["", ber_label(e["ur-f"][1]) if "ur-f" in e else "",
                     ber_label(e["ur-c"][1]) if "ur-c" in e else "", ber_label(t)]
            for i, ((name, color), v, tb) in enumerate(zip(names, vals, train)):
                xb = j + (i - 1.5) * 0.2
                ax.bar(xb, nan(v), width=0.2, color=color, label=name if j == 0 else None)
                if tb:
                    ax.text(xb, nan(v) + 0.3, tb, rotation=90, ha="center", va="bottom",
                            fontsize=7)
            rows.append([NET_NAMES[net], ber_label(t)] + [fmt(v) for v in vals] +
                        [train[1], train[2]])
        ax.set_xticks(range(len(targets)))
        ax.set_xticklabels([f"device BER {ber_label(t)}" for t in targets], fontsize=8)
        lo = min(nan(v) for v in [runs.base(net, t) for t in targets])
        # Head room above 100% for the training-BER labels over the bars.
        ax.set_ylim(max(0, lo - 8), 108)
        ax.set_yticks([t for t in ax.get_yticks() if t <= 100])
        ax.set_title(NET_NAMES[net], fontsize=10)
        ax.set_ylabel("top-1 accuracy [%]")
        ax.grid(alpha=0.3, axis="y")
    fig.suptitle("Fig. 2: matched (MR) and unmatched (UR) retraining; training BER over the bars")
    legend_right(fig, axes)
    save(fig, out, "fig2")
    tables.append(("Fig. 2: top-1 [%] on the target device",
                   ["network", "target BER", "Base", "UR-F", "UR-C", "MR", "UR-F trained at",
                    "UR-C trained at"], rows))


def link_check(runs, tables):
    rows = []
    for (net, ber, method), s in sorted(runs.retrain.items()):
        if "-" not in method or method.startswith("ur-"):
            continue
        base_method, link = method.rsplit("-", 1)
        ref = runs.retrain.get((net, ber, base_method))
        if not ref or link not in LINKS:
            continue
        n_s, n_r = s["timing"]["iterations"], ref["timing"]["iterations"]
        got = {k: v / n_s for k, v in s["timing"]["modelled_s"].items()}
        rec = {k: v / n_r for k, v in stage_seconds(ref, link).items()}
        rows.append([NET_NAMES[net], ber_label(ber), METHOD_NAMES[base_method], LINK_NAMES[link],
                     "%.4f / %.4f" % (got["uplink"], rec["uplink"]),
                     "%.4f / %.4f" % (got["downlink"], rec["downlink"]),
                     "%.0f / %.0f" % (s["timing"]["uplink_bytes"] / n_s,
                                      ref["timing"]["uplink_bytes"] / n_r)])
    if rows:
        tables.append(("Link check: a run on the other link against the recomputation from the "
                       "bytes of the run on the sweep's link (per iteration; bytes differ only "
                       "when the runs' iteration counts differ)",
                       ["network", "BER", "method", "link", "uplink s: run / recomputed",
                        "downlink s: run / recomputed", "uplink bytes/it: run / source"], rows))


def durations(runs, tables):
    if not runs.timings:
        return
    per = {}
    for r in runs.timings:
        key = (r.get("net", ""), r["kind"])
        n, s = per.get(key, (0, 0.0))
        per[key] = (n + 1, s + r["wall_s"])
    rows = [[NET_NAMES.get(net, net), kind, str(n), "%.0f" % s] for (net, kind), (n, s) in
            sorted(per.items(), key=lambda kv: (NETS.index(kv[0][0]) if kv[0][0] in NETS else 9,
                                                kv[0][1]))]
    total = sum(r["wall_s"] for r in runs.timings)
    rows.append(["all", "", str(len(runs.timings)), "%.0f" % total])
    tables.append(("Wall time of the steps (timings.jsonl; broker and device start-up and the "
                   "figures not included)", ["network", "kind", "steps", "seconds"], rows))


# --- output -------------------------------------------------------------------------------------

def nan(v):
    return math.nan if v is None else v


def fmt(v):
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else "%.2f" % v


def write_tables(tables, path, runs_dir):
    lines = [f"# Numbers behind the figures ({runs_dir})", "",
             "Generated by docs/figures/make_figures.py; top-1 in percent.", ""]
    for title, header, rows in tables:
        lines += [f"## {title}", "", "| " + " | ".join(header) + " |",
                  "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        lines.append("")
    path.write_text("\n".join(lines))


def make(runs_dir, out, links=("ieee802154g", "hspa")):
    """Every figure the runs under `runs_dir` support, and tables.md, into `out`."""
    runs = Runs(runs_dir)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tables = []
    fig1(runs, out, tables)
    fig9(runs, out, tables)
    if runs.retrain:
        fig4(runs, out, tables)
        fig5(runs, out, tables)
        fig6(runs, out, tables, list(links))
        fig7(runs, out, tables)
        fig2(runs, out, tables)
        link_check(runs, tables)
    durations(runs, tables)
    write_tables(tables, out / "tables.md", runs_dir)


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="runs/reproduce-quick")
    ap.add_argument("--out", default="docs/figures")
    ap.add_argument("--links", nargs="*", default=["ieee802154g", "hspa"])
    args = ap.parse_args()
    make(args.runs, args.out, args.links)
    print(f"figures and tables.md written to {args.out}")


if __name__ == "__main__":
    main()
