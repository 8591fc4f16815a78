"""Early-stopping rules replayed on a cross-validation's validation losses: where each would stop, what it keeps.

A network trains the same, epoch for epoch, under any stopping rule until that rule ends the run: the learning rate
follows the schedule, the batches and dropout masks follow (seed, epoch), none of them the stopping. So a rule's
last epoch and the epoch whose weights it restores can be read off the validation losses that bench/accuracy.py
stored (each fold's history.csv) without training again. Where a rule restores the same epoch as the reference run,
it keeps the same weights, so the same predictions; where it restores another epoch, the replay cannot tell how good
that model is (only a cross-validation with the rule can). A rule: the floor (`HeartConfig.min_epochs`: no stop
before that many epochs; 20 now, before it the end of the cosine decay, 40), the patience, and the reference run's
min_delta. The replay feeds the stored losses to the package's own early-stopping callback, so it is the rule the
package runs; it checks itself first: under the reference's own rule it must end every fold where the run ended,
else it exits.
Seconds: each fold's training seconds times the share of its epochs that the rule runs.

    python bench/stopping.py [--cv bench/_accuracy/multilabel_cnn] [--floor 40,20,10,3,0] [--patience 10,8,6]

Prints one row per rule (bench/results/stopping.txt holds the shipped CNN's, before the floor moved to 20).
"""

import argparse
import json
import os
import shlex
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import pandas as pd
from common import md

from heart_nb.core import HeartConfig


def replay(losses, cfg, net) -> tuple[int, int] | None:
    "(epochs run, restored epoch), 1-based, of the package's own early stopping under `cfg` on `losses`."
    # None: the rule would train on past the losses stored (past the run's own stop), short of the `epochs` limit;
    # net: any Keras model, for the callback's weights (it keeps the best epoch's)
    from heart_nb.training import _early_stopping

    cb = _early_stopping(cfg)
    cb.set_model(net)
    cb.on_train_begin()
    for e, v in enumerate(losses):
        net.stop_training = False
        cb.on_epoch_end(e, {"val_loss": float(v)})
        if net.stop_training:
            return e + 1, cb.best_epoch + 1
    return (len(losses), cb.best_epoch + 1) if len(losses) >= cfg.epochs else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--cv", default="bench/_accuracy/multilabel_cnn", help="a network's cross-validation folder")
    ap.add_argument("--floor", default="40,20,10,3,0", help="comma-separated floors (epochs)")
    ap.add_argument("--patience", default="10,8,6", help="comma-separated patiences (epochs)")
    a = ap.parse_args()
    d = Path(a.cv)
    raw = json.loads((d / "cv.json").read_text())["config"]
    # before HeartConfig.min_epochs, the floor was the end of the cosine decay (none under a constant rate)
    raw.setdefault("min_epochs", raw["decay_epochs"] if raw["schedule"] == "cosine" else 0)
    cfg = HeartConfig.from_json(json.dumps(raw))
    import keras  # after heart_nb.core, which sets TensorFlow's environment

    net = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    folds = sorted((json.loads(p.read_text()) for p in d.glob("fold_*/fold.json")), key=lambda f: f["fold"])
    hists = [pd.read_csv(d / f"fold_{f['fold']}" / "history.csv").drop_duplicates("epoch", keep="last") for f in folds]
    ref = [replay(h.val_loss.to_numpy(), cfg, net) for h in hists]
    ran = [f["epochs_run"] for f in folds]
    if [r and r[0] for r in ref] != ran or len(ran) != cfg.folds:
        sys.exit(f"{d}: the replay of its own rule ends folds at {[r and r[0] for r in ref]}, the runs at {ran}")
    rows, unknown = [], []
    for floor in map(int, a.floor.split(",")):
        for patience in map(int, a.patience.split(",")):
            rule = cfg.replace(min_epochs=floor, patience=patience)
            got = [replay(h.val_loss.to_numpy(), rule, net) for h in hists]
            if None in got:  # a later stop than the run's: its losses were never computed
                unknown.append(f"floor {floor}, patience {patience}")
                continue
            secs = sum(f["seconds"] * g[0] / f["epochs_run"] for f, g in zip(folds, got))
            rows.append(
                {
                    "floor": floor,
                    "patience": patience,
                    "epochs run": [g[0] for g in got],
                    "restored epoch": [g[1] for g in got],
                    "folds with the reference's weights": sum(g[1] == r[1] for g, r in zip(got, ref)),
                    "epochs": sum(g[0] for g in got),
                    "training s": round(secs),
                    "x faster": round(sum(f["seconds"] for f in folds) / secs, 2),
                }
            )
    print("# python bench/stopping.py " + " ".join(map(shlex.quote, sys.argv[1:])))
    print(
        f"{d}: {len(folds)} folds, reference rule floor {cfg.min_epochs}, patience {cfg.patience}, "
        f"min_delta {cfg.min_delta}; its restored epochs {[r[1] for r in ref]}"
    )
    print(md(pd.DataFrame(rows).set_index("floor")) if rows else "no rule stops within the stored epochs")
    if unknown:
        print(f"not replayable (they train past the run's own stop): {'; '.join(unknown)}")


if __name__ == "__main__":
    main()
