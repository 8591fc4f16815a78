"""Adapting a run to a source it never saw, from k labelled recordings (#31): bench/results/adapt.{json,md,png}.

Parent: a run that never saw the three target sources (default: bench/familiarity.py's run A, the baseline trained on
BMD-HS alone; --parent another). Targets: CirCor 2022 (the murmur target), PhysioNet 2016 a and e (normal/abnormal).
For k = 0, 8, 16, 32, 64 labelled recordings of the source, balanced between the target's two classes, 3 random draws
each, `heart-nb adapt` with each lever (thresholds only; fine-tuning, the default; thresholds only with the site's
statistics, `--unlabelled`, from the scored recordings' audio, not their labels), scored on that source's other
recordings (recording level = patient level here: one recording per patient; PhysioNet has no subject ids):
  - AUROC of the target (p(murmur), or 1 - p(N) for abnormal);
  - balanced accuracy of the adapted run's decision (its threshold for that target);
  - the share of those recordings flagged unfamiliar;
mean over the draws [min, max], beside the in-source ceiling: the baseline's 5-fold cross-validation on the source
alone (CirCor patient-wise; PhysioNet a and e by recording, optimistic where a subject has several recordings), its
AUROC and its balanced accuracy at each fold's validation threshold. Also the wall time of each adaptation.

    python bench/adapt.py                 # about half an hour on 2 cores (the baseline parent)
    python bench/adapt.py --parent RUN --tag shipped --k 32 --draws 1    # e.g. the shipped pair, k = 32 only
"""

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import pandas as pd

WORK = Path("bench/_loso")
TARGETS = {"circor2022": "murmur", "physionet2016/a": "N", "physionet2016/e": "N"}


def score(run_dir: Path, man: pd.DataFrame, fs, target: str, summaries: dict) -> dict:
    """AUROC, balanced accuracy and share flagged of `run_dir` on the recordings of `man` for `target` (a run of the
    baseline alone is scored from the recordings' cached summaries `summaries`: the numbers `predict` gives)."""
    from heart_nb.metrics import auroc
    from heart_nb.prediction import Predictor

    p = Predictor(run_dir)
    if [m.kind for m in p.run.members] == ["baseline"]:
        S = np.stack([summaries[q] for q in man.path])
        ok = list(np.flatnonzero(np.isfinite(S).all(1)))
        P = p.run.members[0].model.predict(S[ok])
        fam = p.familiar(S[ok])
        rows = {i: {"probabilities": dict(zip(p.classes, P[n])), "familiar": fam[n][1]} for n, i in enumerate(ok)}
    else:
        rows = dict(enumerate(p.predict_many(man.path.tolist(), n_jobs=1)))
        ok = [i for i, r in rows.items() if not r["error"]]
    y = man[target].to_numpy(float)[ok]
    s = np.array([rows[i]["probabilities"][target] for i in ok])
    thr = dict(zip(p.classes, p.run.thresholds("recording")))[target]
    called = s >= thr
    if target == "N":  # the abnormal side is the positive one
        y, s, called = 1 - y, 1 - s, ~called
    known = np.isfinite(y)
    y, s, called = y[known] > 0, s[known], called[known]
    bacc = lambda i: (called[i][y[i]].mean() + (~called[i][~y[i]]).mean()) / 2
    flagged = np.mean([rows[i]["familiar"] is False for i in ok])
    rng = np.random.default_rng(0)  # 95 % CI: the scored recordings bootstrapped (200 draws)
    boot = [rng.integers(0, len(y), len(y)) for _ in range(200)]
    ci = lambda f: [round(float(v), 4) for v in np.nanpercentile([f(b) for b in boot], [2.5, 97.5])]
    every = np.arange(len(y))
    return {
        "auroc": auroc(y.astype(float), s),
        "auroc_ci": ci(lambda b: auroc(y[b].astype(float), s[b])),
        "balanced_accuracy": float(bacc(every)),
        "balanced_accuracy_ci": ci(bacc),
        "flagged": float(flagged),
    }


def ceiling(man: pd.DataFrame, fs, cfg, target: str, work: Path) -> dict:
    "The baseline's 5-fold cross-validation on the source alone: AUROC and balanced accuracy at the folds' thresholds."
    from heart_nb.crossval import cross_validate
    from heart_nb.metrics import auroc

    m = man.drop(columns=["split_group"], errors="ignore")
    r = cross_validate(m, cfg, "baseline", "multilabel", work, features=fs.select(m))
    d, Y, P = r.level("recording")
    j = r.classes.index(target)
    thr = np.array([{f["fold"]: f["thresholds"]["recording"][j] for f in r.folds}[int(f)] for f in d.fold])
    y, s, called = Y[:, j], P[:, j], P[:, j] >= thr
    if target == "N":
        y, s, called = 1 - y, 1 - s, ~called
    known = np.isfinite(y)
    y, s, called = y[known] > 0, s[known], called[known]
    return {
        "auroc": auroc(y.astype(float), s),
        "balanced_accuracy": float((called[y].mean() + (~called[~y]).mean()) / 2),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--parent", default=str(WORK / "familiarity_run_A"))
    ap.add_argument("--tag", default="baseline")
    ap.add_argument("--k", default="0,8,16,32,64")
    ap.add_argument("--draws", type=int, default=3)
    ap.add_argument("--levers", default="thresholds_only,fine_tune,thresholds_only+unlabelled")
    args = ap.parse_args()
    from heart_nb.adapt import adapt
    from heart_nb.cache import extract_features
    from heart_nb.core import HeartConfig
    from heart_nb.mapping import combine_manifests, read_manifest

    t0 = time.time()
    parent = Path(args.parent)
    if not (parent / "run.json").exists():
        sys.exit(f"{parent}: no finished run (run bench/familiarity.py first, or give --parent)")
    man = combine_manifests([read_manifest(WORK / f"{n}.csv") for n in ("pn16", "circor")]).reset_index(drop=True)
    cfg = HeartConfig.from_json(parent / "config.json")
    fs = extract_features(man, cfg, cache_dir=WORK / "cache", progress=False)
    every = combine_manifests([read_manifest(WORK / f"{n}.csv") for n in ("bmdhs", "pn16", "circor")])
    with np.load(WORK / f"summaries_{cfg.baseline_copies}.npz", allow_pickle=False) as z:  # bench/loso.py's
        summaries = dict(zip(every.reset_index(drop=True).path, z["F"]))
    seen = set(json.loads((parent / "run.json").read_text()).get("sources", {}))
    rows, ceil = [], {}
    for src, target in TARGETS.items():
        if src in seen:
            print(f"skip {src}: the parent saw it")
            continue
        S = man[(man.source == src) & man[target].notna()].reset_index(drop=True)
        ceil[src] = ceiling(
            S, fs, cfg.replace(baseline_copies=2), target, WORK / f"adapt_ceiling_{src.replace('/', '_')}"
        )
        print(f"{src}: ceiling {ceil[src]}", flush=True)
        for k in map(int, args.k.split(",")):
            for draw in range(args.draws if k else 1):
                rng = np.random.default_rng([draw, k])
                pos, neg = S.index[S[target] == 1], S.index[S[target] == 0]
                pick = np.r_[rng.choice(pos, k // 2, replace=False), rng.choice(neg, k - k // 2, replace=False)]
                rest = S.drop(index=pick).reset_index(drop=True)
                for lever in args.levers.split(",") if k else ["zero_shot"]:
                    out = WORK / f"adapt_{args.tag}_{src.replace('/', '_')}_{lever}_k{k}_d{draw}"
                    t = time.time()
                    if k:
                        if not (out / "run.json").exists():
                            adapt(
                                parent,
                                S.loc[pick],
                                out,
                                thresholds_only=lever.startswith("thresholds_only"),
                                cache_dir=WORK / "cache",
                                unlabelled=list(rest.path) if lever.endswith("+unlabelled") else None,
                                verbose=0,
                                overwrite=True,
                            )
                        secs = json.loads((out / "run.json").read_text())["seconds"]
                    else:
                        out, secs = parent, 0.0
                    res = score(out, rest, fs, target, summaries)
                    rows.append(
                        {
                            "parent": args.tag,
                            "source": src,
                            "target": target,
                            "k": k,
                            "draw": draw,
                            "lever": lever,
                            **{m: v if isinstance(v, list) else round(v, 4) for m, v in res.items()},
                            "adapt_seconds": secs,
                            "scored_recordings": len(rest),
                        }
                    )
                    print(f"  {src} k={k} draw={draw} {lever}: {res} ({time.time() - t:.0f} s)", flush=True)
    R = pd.DataFrame(rows)
    res_dir = Path("bench/results")
    meta = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU",
        "seconds": round(time.time() - t0),
        "parent": str(parent),
        "ceiling": ceil,
        "rows": rows,
    }
    (res_dir / f"adapt_{args.tag}.json").write_text(json.dumps(meta, indent=1))
    g = R.groupby(["source", "lever", "k"], sort=False)
    agg = g[["auroc", "balanced_accuracy", "flagged", "adapt_seconds"]].agg(["mean", "min", "max"])
    lines = [
        f"# Adapting to a source never seen (bench/adapt.py, parent: {args.tag})",
        "",
        f"{meta['machine']}. Recording level; each source's other recordings; mean over {args.draws} draws "
        "[min, max]; the AUROC's 95 % CI of the first draw, its scored recordings bootstrapped. Ceiling: the "
        "baseline's 5-fold CV on the source alone.",
        "",
        "| source | lever | k | AUROC | AUROC 95 % CI (draw 0) | balanced accuracy | flagged unfamiliar | adapt (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    ci0 = {(r.source, r.lever, r.k): r.auroc_ci for r in R[R.draw == 0].itertuples()}
    cell = lambda r, m: f"{r[(m, 'mean')]:.3f} [{r[(m, 'min')]:.2f}, {r[(m, 'max')]:.2f}]"
    for (src, lever, k), r in agg.iterrows():
        lo, hi = ci0[src, lever, k]
        lines.append(
            f"| {src} | {lever} | {k} | {cell(r, 'auroc')} | [{lo:.2f}, {hi:.2f}] | "
            f"{cell(r, 'balanced_accuracy')} | {cell(r, 'flagged')} | {r[('adapt_seconds', 'mean')]:.0f} |"
        )
    for src, c in ceil.items():
        lines.append(
            f"| {src} | in-source 5-fold (ceiling) | all | {c['auroc']:.3f} | | {c['balanced_accuracy']:.3f} | | |"
        )
    (res_dir / f"adapt_{args.tag}.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")

    plot(R, ceil, args.tag, res_dir / f"adapt_{args.tag}.png")
    print(f"wrote {res_dir / f'adapt_{args.tag}.md'} in {time.time() - t0:.0f} s")


def plot(R: pd.DataFrame, ceil: dict, tag: str, out: Path) -> None:
    "The learning curves: a colour per source (its ceiling dotted), a line style per lever."
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    style = {"fine_tune": "-", "thresholds_only": "--", "thresholds_only+unlabelled": "-."}
    sources = list(dict.fromkeys(R.source))
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, m in zip(axes, ("auroc", "balanced_accuracy")):
        for (src, lever), x in R[R.k > 0].groupby(["source", "lever"], sort=False):
            x = pd.concat([R[(R.source == src) & (R.k == 0)], x]).groupby("k")[m].mean()
            c = f"C{sources.index(src)}"
            ax.plot(x.index, x.values, marker="o", ms=4, color=c, ls=style.get(lever, ":"), label=f"{src}, {lever}")
        for src, cv in ceil.items():
            ax.axhline(cv[m], color=f"C{sources.index(src)}", lw=0.8, ls=":")
        ax.set_xlabel("k labelled recordings of the new source")
        ax.set_title(
            f"{m.replace('_', ' ')} on its other recordings, recording level\n(parent: {tag}, mean of 3 "
            "draws; dotted: the source's own 5-fold)",
            fontsize=9,
        )
    axes[1].legend(fontsize=6, loc="lower right")
    fig.tight_layout()
    fig.savefig(out, dpi=120)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--replot"]:  # the figure again from adapt_<tag>.json
        tag = sys.argv[2] if len(sys.argv) > 2 else "baseline"
        meta = json.loads(Path(f"bench/results/adapt_{tag}.json").read_text())
        plot(pd.DataFrame(meta["rows"]), meta["ceiling"], tag, Path(f"bench/results/adapt_{tag}.png"))
    else:
        main()
