"""A training lever's cross-validation against the shipped recipe's, on the same folds and patients.

Both folders are network cross-validations of bench/accuracy.py (multilabel, the same folds and seeds; the lever's
run with `--set ...`, or the same configuration on changed code). For the network alone, and with the baseline as
the shipped pair (the mean of their probabilities, thresholds refitted on validation): patient lesion macro-AUROC
and -F1 over AS, AR, MR, MS (mean over folds) and their difference to the reference, with a paired 95 % CI (--boot
resamples of patients within folds, the same patients drawn for both). Then the price: each fold's training
seconds, epochs run and best epoch.

    python bench/lever.py --lever bench/_accuracy_fast/multilabel_cnn --name "decay 28, patience 5" \
        [--ref bench/_accuracy/multilabel_cnn] [--baseline bench/_accuracy/multilabel_baseline] [--boot 500] \
        [--lever-baseline bench/_accuracy_aug/multilabel_baseline] \
        [--out bench/results/lever_epochs]

--lever-baseline: the lever's pair takes this baseline instead of --baseline's, for a change that touches the
baseline too (augmentation does: the baseline's crops are augmented windows).

Writes lever.md and lever.json in --out.
"""

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from common import machine, md
from plateau import compare, compare_table

from heart_nb.crossval import ensemble, load_cv


def price(res) -> dict:
    "Training seconds (total and per fold), epochs run and best epochs of a cross-validation's folds."
    f = sorted(res.folds, key=lambda x: x["fold"])
    return {
        "seconds": round(sum(x["seconds"] for x in f), 1),
        "fold_seconds": [x["seconds"] for x in f],
        "epochs_run": [x["epochs_run"] for x in f],
        "best_epoch": [x["best_epoch"] for x in f],
    }


def config_diff(ref: Path, lever: Path) -> dict:
    "The configuration fields in which the lever's cross-validation differs from the reference's."
    a, b = (json.loads((p / "cv.json").read_text())["config"] for p in (ref, lever))
    return {k: [a.get(k), b.get(k)] for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lever", required=True, help="the lever's cross-validation folder")
    ap.add_argument("--name", required=True, help="what the lever is, for the table")
    ap.add_argument("--ref", default="bench/_accuracy/multilabel_cnn")
    ap.add_argument("--baseline", default="bench/_accuracy/multilabel_baseline")
    ap.add_argument("--lever-baseline", default=None, help="the lever's own baseline, where the change touches it too")
    ap.add_argument("--boot", type=int, default=500)
    ap.add_argument("--out", default="bench/results/lever")
    a = ap.parse_args()
    t0 = time.time()
    ref, lev, b = load_cv(a.ref), load_cv(a.lever), load_cv(a.baseline)
    b_lev = load_cv(a.lever_baseline) if a.lever_baseline else b
    diff = config_diff(Path(a.ref), Path(a.lever))
    pair_ref = ensemble([b, ref], f"baseline+{ref.model} (shipped recipe)")
    pair_lev = ensemble([b_lev, lev], f"baseline+{lev.model} ({a.name})")
    ref.model, lev.model = f"{ref.model} (shipped recipe)", f"{lev.model} ({a.name})"
    rows = [compare(ref, ref, a.boot), compare(lev, ref, a.boot), compare(pair_ref, pair_ref, a.boot)]
    rows.append(compare(pair_lev, pair_ref, a.boot))
    for r, res in zip(rows, (ref, lev, ref, lev)):  # a pair's price is its network's
        r.update(price(res))
    T = compare_table(rows).drop(columns="fold_seconds")
    cmd = " ".join(["python bench/lever.py", *map(shlex.quote, sys.argv[1:])])
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"protocol": __doc__.split("\n\n")[1], "command": cmd, "machine": machine(), "config": diff, "rows": rows}
    (out / "lever.json").write_text(json.dumps(meta, indent=1))
    text = [
        f"# A training lever: {a.name}",
        "",
        __doc__.split("\n\n")[1].replace("\n", " "),
        "",
        "Configuration, reference -> lever: "
        + (", ".join(f"`{k}` {x} -> {y}" for k, (x, y) in diff.items()) or "the same (the code changed)."),
        "",
        md(T.rename(columns={"d_auroc": "AUROC - reference [95 % CI]", "d_f1": "F1 - reference [95 % CI]"})),
        "",
        f"`{cmd}`: {time.time() - t0:.0f} s; {machine()}.",
        "",
    ]
    (out / "lever.md").write_text("\n".join(text))
    print("\n".join(text))


if __name__ == "__main__":
    sys.exit(main())
