"""The foundation pipeline on all of BMD-HS: map -> features -> CNN and CRNN -> evaluate, with timings.

Protocol: ONE patient-wise hold-out split (HeartConfig defaults: 20 % test, 15 % validation patients, stratified on
the patient's label, seed 42); no cross-validation, so the figures have wide uncertainty (about 22 test patients).
The task is chosen from the data: BMD-HS is multi-label (50 of 108 patients have several lesions).

    python bench/bmdhs_holdout.py [--data ../shared/data/bmd-hs] [--out bench/_bmdhs] [--epochs 30]

Prints the figures and writes bench/results/bmdhs_holdout.md.
"""

import argparse
import json
import sys
import time
from pathlib import Path


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="BMD-HS folder (default: found from ../shared/data/bmd-hs)")
    ap.add_argument("--out", default="bench/_bmdhs")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--models", default="cnn,crnn")
    a = ap.parse_args()
    from heart_nb.cache import extract_features
    from heart_nb.core import HeartConfig, find_bmdhs
    from heart_nb.evaluation import evaluate_run
    from heart_nb.mapping import map_dataset
    from heart_nb.training import train

    data = Path(a.data) if a.data else find_bmdhs()
    if data is None:
        sys.exit("BMD-HS not found: pass --data or set HEART_NB_BMDHS")
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = HeartConfig(epochs=a.epochs)
    rows = []
    t = time.time()
    man, rep = map_dataset(data / "BMD-HS_Data_Annotation.xlsx", data / "audio", out / "manifest.csv")
    t_map = time.time() - t
    cached = any((out / "cache").glob("set-*.f32"))
    t = time.time()
    fs = extract_features(man, cfg, cache_dir=out / "cache", progress=False)
    t_feat = time.time() - t
    print(
        f"map {t_map:.1f} s: {len(man)} recordings, {man.patient_id.nunique()} patients; features {t_feat:.1f} s: "
        f"{fs.X.shape}"
    )
    for k in a.models.split(","):
        t = time.time()
        run = train(man, out / f"run_{k}", cfg, model=k, features=fs, verbose=2)
        t_train = time.time() - t
        res = evaluate_run(run, features=fs)
        info = json.loads((run / "run.json").read_text())
        for lvl in ("recording", "patient"):
            m = res[lvl]
            rows.append(
                dict(
                    model=k,
                    level=lvl,
                    n=m["n"],
                    balanced_accuracy=m["balanced_accuracy"],
                    macro_f1=m["macro_f1"],
                    macro_auroc=m["macro_auroc"],
                    auroc={c: m[f"auroc_{c}"] for c in m["classes"]},
                    epochs=sum(v.get("epochs_run", 0) for v in info["members"].values()),
                    train_s=round(t_train),
                    params=sum(v.get("params", 0) for v in info["members"].values()),
                )
            )
        print(res["protocol"])
        print(json.dumps(rows[-2:], indent=1))
    lines = [
        "# BMD-HS, foundation pipeline, single patient-wise hold-out",
        "",
        f"Protocol: {res['protocol']}. Task: {info['task']} over {info['classes']}; thresholds fitted on the "
        "validation patients (decision.json).",
        f"Machine: 2 CPU cores. map {t_map:.1f} s, features {t_feat:.1f} s "
        f"({'read from the cache of an earlier run' if cached else 'cold cache'}).",
        "",
        "| model | level | n | balanced acc | macro-F1 | macro-AUROC | per-class AUROC | epochs | train s | params |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        auc = ", ".join(f"{c} {v:.2f}" for c, v in r["auroc"].items() if v == v)
        lines.append(
            f"| {r['model']} | {r['level']} | {r['n']} | {r['balanced_accuracy']:.3f} | {r['macro_f1']:.3f} | "
            f"{r['macro_auroc']:.3f} | {auc} | {r['epochs']} | {r['train_s']} | {r['params']:,} |"
        )
    Path("bench/results").mkdir(parents=True, exist_ok=True)
    Path("bench/results/bmdhs_holdout.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
