"""The sweeps of `./run.sh reproduce [--quick]` (docs/results.md): what is run for each figure.

Every retraining run is one (network, BER, method) on the device of that BER; its directory
(`<out>/retrain/<net>/ber-<BER>/<method>/`) keeps config.yaml, server.log, stages.jsonl and
summary.json, and a run whose summary.json exists is not run again (an interrupted one resumes
from its checkpoint).

Methods (the paper's names):
  drm       raw intermediate outputs (the paper's direct remote retraining)
  aprmNN    sparse increments against the LW-TMR reference for the layers whose similarity on one
            offline sample reaches NN% (APRM-50/60/80)
  exact     ours: increments against the exact layer-local reference plus a patch where the TMR
            replicas disagree (docs/retraining.md); what the server rebuilds equals DRM's data
  local     ours, approximate: increments against the layer-local vote, no patch, the 60%
            threshold (docs/retraining.md); cheaper than exact, but the rebuild can be wrong
  tclpNN    DRM on a device that runs the layers chosen by the critical-layer search (Algorithm 1)
            with TMR, redundant compute <= NN% (TCLP-20/50); tclp200 = every layer (full LW-TMR)
  ur-f/ur-c trained on a device at another BER (far / close), evaluated on the target device;
            MR (matched retraining) is the target's own drm run (Fig. 2)

Links: every run uses `link`; the modelled transfer times on the other links are recomputed from
the recorded bytes (make_figures.py), and `link_check` repeats a few runs on the other link to
show that the recomputation equals what the server models.
"""

NETWORKS = ["resnet18", "resnet50", "mobilenetv2", "shufflenetv2", "squeezenet"]
# exact and local: ours (the exact and the approximate layer-local reference), beside the paper's
APRM = ["drm", "aprm50", "aprm60", "aprm80", "exact", "local"]
TCLP = ["tclp20", "tclp50", "tclp200"]


def quick_iterations(net, ber):
    # Bytes and modelled time per iteration settle within a few iterations (the increment layers
    # are fixed offline); accuracy needs more: a few hundred batches for ResNet18 at the BERs
    # where its Base accuracy drops, fewer for the other networks.
    if net == "resnet18":
        return 80 if ber >= 1e-4 else 30
    return 30 if ber >= 1e-4 else 10


def full_iterations(net, ber):
    # About 2x the quick sweep's. The paper's one epoch would be 50000 images, here 3125 batches
    # of 16: `reproduce.py plan --sweep full --from <a finished sweep>` estimates such a sweep.
    if net == "resnet18":
        return 150 if ber >= 1e-4 else 50
    return 60 if ber >= 1e-4 else 20


def ur(net, target):
    """Fig. 2 baselines for a device at `target`: trained at target/50 (far) and 0.9x (close)."""
    return {"network": net, "target": target, "far": float(f"{target / 50:.3g}"),
            "close": float(f"{target * 0.9:.3g}")}


QUICK = {
    "name": "quick",
    "out": "runs/reproduce-quick",
    # Short pre-training (configs/pretrain/quick/): keeps a cold-cache quick run within an hour.
    "pretrain_dir": "configs/pretrain/quick",
    "figures": "docs/figures",
    "networks": NETWORKS,
    "link": "ieee802154g",           # the runs' link; hspa is recomputed from bytes
    "other_links": ["hspa"],
    # Figs. 1 and 9: local r2f_sim runs (no broker), first N test images, seed 1.
    "sim": {
        "fig1_bers": [0, 1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
        "fig1_images": 1000,
        "fig9_bers": [1e-6, 1e-5, 3e-5, 1e-4, 3e-4, 1e-3],
        "fig9_images": 300,
    },
    # Figs. 4, 6, 7: every network x BER x method.
    "bers": [1e-6, 1e-5, 1e-4, 3e-4],
    "methods": APRM,
    "iterations": quick_iterations,
    "eval_images": {"resnet18": 1000, "default": 500},
    # Fig. 5: TCLP at the BERs where protection matters; one greedy search (r_max = the largest
    # budget) per network and BER on a seeded validation subset of the device's train split.
    # The search costs (L + ... + (L-s)) evaluations: a few minutes for the 53-57-layer networks,
    # so the quick sweep searches only ResNet18 and SqueezeNet; ShuffleNetV2 gets TCLP-200 (no
    # search needed). ResNet50 and MobileNetV2 are left out: at 1e-4 and above their simulated
    # forward pass is 10-20x slower than at low BER (many flips) and TMR triples it.
    "tclp": {"bers": [1e-4, 3e-4], "methods": TCLP,
             "networks": ["resnet18", "shufflenetv2", "squeezenet"],
             "search_networks": ["resnet18", "squeezenet"],
             "search_images": 192, "search_batch": 192},
    # Fig. 2 (ResNet18): the paper's ratios (its device at 5e-5, UR-F at 1e-6 = 1/50, UR-C at
    # 4.5e-5 = 0.9x) at the BERs where our models lose accuracy. The UR devices have their own
    # fault seed: at the same seed a device at 0.9x the BER would draw nearly the same flips.
    "ur": [ur("resnet18", 1e-4), ur("resnet18", 3e-4)],
    # A few runs repeated on the other link: the recomputed modelled time must match.
    "link_check": [{"network": "resnet18", "ber": 1e-5, "methods": ["drm", "aprm60"],
                    "link": "hspa"}],
}

FULL = {
    "name": "full",
    "out": "runs/reproduce",
    "figures": "docs/figures/full",
    # The default pre-training (configs/pretrain/, also the demo's): better models than quick's.
    "pretrain_dir": "configs/pretrain",
    "networks": NETWORKS,
    "link": "ieee802154g",
    "other_links": ["hspa"],
    "sim": {
        "fig1_bers": [0, 1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3],
        "fig1_images": 2000,
        "fig9_bers": [1e-6, 3e-6, 1e-5, 3e-5, 1e-4, 2e-4, 3e-4, 5e-4, 1e-3],
        "fig9_images": 500,
    },
    "bers": [1e-6, 1e-5, 1e-4, 3e-4],
    "methods": APRM,
    "iterations": full_iterations,
    "eval_images": {"default": 1000},
    # TCLP-200 for every network; the searches (TCLP-20/50) for ResNet18 and SqueezeNet only:
    # ShuffleNetV2's would take ~11 min (estimate), ResNet50's and MobileNetV2's far longer.
    "tclp": {"bers": [1e-4, 3e-4], "methods": TCLP, "networks": NETWORKS,
             "search_networks": ["resnet18", "squeezenet"],
             "search_images": 256, "search_batch": 256},
    "ur": [ur(net, t) for net in ["resnet18", "squeezenet"] for t in [1e-4, 3e-4]],
    "link_check": [{"network": "resnet18", "ber": b, "methods": ["drm", "aprm60"], "link": "hspa"}
                   for b in [1e-6, 1e-4]],
}

# A few minutes: checks that every step and figure works (not for conclusions).
SMOKE = dict(QUICK, name="smoke", out="runs/reproduce-smoke",
             figures="runs/reproduce-smoke/figures",
             sim={"fig1_bers": [0, 1e-4, 3e-4], "fig1_images": 100, "fig9_bers": [1e-4, 3e-4],
                  "fig9_images": 48},
             bers=[1e-5, 3e-4], iterations=lambda net, ber: 4,
             eval_images={"default": 100},
             tclp={"bers": [3e-4], "methods": TCLP, "networks": NETWORKS,
                   "search_networks": ["resnet18"],
                   "search_images": 32, "search_batch": 32},
             ur=[ur("resnet18", 3e-4)],
             link_check=[{"network": "resnet18", "ber": 1e-5, "methods": ["drm", "aprm60"],
                          "link": "hspa"}])

SWEEPS = {"quick": QUICK, "full": FULL, "smoke": SMOKE}
