#!/usr/bin/env python3
"""The plot of a fleet run: per device, top-1 before and after retraining (95% intervals) and
the share of each stage in the modelled time.

    /usr/bin/python3 docs/figures/plot_fleet.py runs/fleet/fleet.json runs/fleet/fleet.png

Reads fleet.json (written by `r2f_server fleet`); writes the PNG and an SVG beside it. Devices
that failed are shown without bars. Needs Debian's python3-matplotlib.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STAGES = ["fp", "tmr", "increment", "codec", "uplink", "bp", "downlink"]
STAGE_NAMES = {"fp": "FP", "tmr": "TMR", "increment": "Increment", "codec": "(De)compression",
               "uplink": "Data transmission", "bp": "BP", "downlink": "Model transmission"}


def plot(fleet, out):
    devices = fleet["devices"]
    names = [d["device"] for d in devices]
    ok = [d["state"] != "failed" for d in devices]
    x = range(len(devices))
    fig, (acc, share) = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(devices) + 4), 4.2))

    width = 0.38
    for offset, key, label, color in ((-width / 2, "before", "Base (before)", "#bbbbbb"),
                                      (width / 2, "after", "retrained (after)", "#2a6fbb")):
        tops = [d[key]["top1"] if good else 0 for d, good in zip(devices, ok)]
        errs = [d[key]["top1_ci95"] if good else 0 for d, good in zip(devices, ok)]
        acc.bar([i + offset for i in x], tops, width, yerr=errs, capsize=3, label=label,
                color=color)
    for i, (d, good) in enumerate(zip(devices, ok)):
        if good:
            acc.annotate(f"{d['change']:+.1f}", (i, max(d["before"]["top1"], d["after"]["top1"])),
                         textcoords="offset points", xytext=(0, 8), ha="center", fontsize=8)
        else:
            acc.annotate("failed", (i, 5), ha="center", fontsize=8, color="red")
    acc.set_xticks(list(x))
    acc.set_xticklabels(names, rotation=30, ha="right")
    acc.set_ylabel("top-1 on the faulty device [%]")
    acc.set_ylim(0, 105)
    acc.set_title("Accuracy per device (paired, 95% intervals)")
    acc.legend(loc="lower right", fontsize=8)

    bottoms = [0.0] * len(devices)
    colors = plt.get_cmap("tab10")
    for k, stage in enumerate(STAGES):
        values = []
        for d, good in zip(devices, ok):
            total = d["modelled_s"] if good else 0
            values.append(100 * d["modelled_stage_s"][stage] / total if total > 0 else 0)
        share.bar(list(x), values, 0.6, bottom=bottoms, label=STAGE_NAMES[stage], color=colors(k))
        bottoms = [b + v for b, v in zip(bottoms, values)]
    share.set_xticks(list(x))
    share.set_xticklabels(names, rotation=30, ha="right")
    share.set_ylabel("share of the modelled time [%]")
    share.set_ylim(0, 100)
    share.set_title("Where the time goes (modelled link)")
    share.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)

    fig.suptitle(f"Fleet of {len(devices)} devices, {fleet['wall_s']:.0f} s wall time")
    fig.tight_layout()
    fig.savefig(out, dpi=120)
    fig.savefig(Path(out).with_suffix(".svg"))


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: plot_fleet.py FLEET_JSON OUT_PNG")
    with open(sys.argv[1]) as f:
        fleet = json.load(f)
    plot(fleet, sys.argv[2])


if __name__ == "__main__":
    main()
