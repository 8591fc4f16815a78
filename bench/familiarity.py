"""Familiarity on recordings a run never saw (#31): bench/results/familiarity.{json,md,png}.

Two runs of `train` (the baseline, for minutes rather than hours; familiarity itself does not depend on the members,
only the normal/abnormal decisions do):
  A  BMD-HS alone;
  B  several sources: BMD-HS + CirCor 2022 + PhysioNet 2016 a and c (the murmur/valve sources), so that PhysioNet
     b, d, e and f stay unseen.
Scored on every recording neither saw in training: the run's own test patients (BMD-HS; for B also CirCor's) and every
unseen source. Per source: the share flagged unfamiliar [95 % CI, recordings bootstrapped]; the AUROC of
1 - familiarity for telling that source's recordings from the run's own BMD-HS test recordings; and whether the flag
finds the errors: the normal/abnormal decision (normal = p(N) at or above the run's N threshold, recording level)
is wrong at what rate among familiar and among unfamiliar recordings, their ratio, and the AUROC of 1 - familiarity
for predicting a wrong decision within the source (pooled over the unseen sources too).

    python bench/familiarity.py            # about 10 minutes on 2 cores (features cached in bench/_loso)
    python bench/familiarity.py --replot   # familiarity.md and .png again from familiarity.json
"""

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
RUNS = {
    "A: BMD-HS alone": ("bmd-hs",),
    "B: BMD-HS + CirCor + PhysioNet a, c": ("bmd-hs", "circor2022", "physionet2016/a", "physionet2016/c"),
}


def rates(s: pd.DataFrame) -> tuple[float, float, float]:
    "(share flagged, error rate of familiar, error rate of unfamiliar) of scored recordings `s`."
    fam, err = s.familiar.to_numpy(bool), s.error.to_numpy(float)
    e_f = np.nanmean(err[fam]) if fam.any() else np.nan
    e_u = np.nanmean(err[~fam]) if (~fam).any() else np.nan
    return float((~fam).mean()), float(e_f), float(e_u)


def main():
    from common import three_sources

    from heart_nb.baseline import recording_summary
    from heart_nb.cache import extract_features
    from heart_nb.core import HeartConfig
    from heart_nb.metrics import aggregate, auroc
    from heart_nb.runs import load_run
    from heart_nb.training import train

    t0 = time.time()
    man = three_sources(WORK)
    cfg = HeartConfig()
    fs = extract_features(man, cfg, cache_dir=WORK / "cache", progress=False)
    rng = np.random.default_rng(0)
    rows, shares = [], {}
    for name, sources in RUNS.items():
        out = WORK / f"familiarity_run_{name[0]}"
        tr = man[man.source.isin(sources)].reset_index(drop=True)
        if not (out / "run.json").exists():
            # murmur=True: run A learns BMD-HS's lesion-implied murmur targets, which bench/adapt.py scores on CirCor
            train(tr, out, cfg, "baseline", features=fs.select(tr), verbose=0, murmur=True)
        run = load_run(out)
        split = run.split.set_index("path").split
        own_test = man.path.map(split).eq("test").to_numpy()
        unseen = ~man.source.isin(sources).to_numpy() | own_test
        sub = fs.select(man[unseen])
        recs, P = aggregate(run.probabilities(sub.X, sub.row), sub.row)
        S = recording_summary(sub, cfg)[recs]
        f, ok = run.familiarity.score(S)
        m = sub.manifest.iloc[recs].reset_index(drop=True)
        jN = run.classes.index("N")
        called_normal = P[:, jN] >= run.thresholds("recording")[jN]
        s = pd.DataFrame(
            {
                "source": m.source,
                "familiarity": f,
                "familiar": ok,
                "error": np.where(m.N.isna(), np.nan, called_normal != (m.N == 1)),
            }
        )
        s["group"] = np.where(s.source.isin(sources), s.source + " (the run's test patients)", s.source)
        ref = s[s.group == "bmd-hs (the run's test patients)"]
        for g, x in s.groupby("group", sort=True):
            point = rates(x)
            boot = np.array([rates(x.iloc[rng.integers(0, len(x), len(x))]) for _ in range(500)])
            lo, hi = np.nanpercentile(boot, [2.5, 97.5], axis=0)
            other = g != "bmd-hs (the run's test patients)"
            lab = np.r_[np.zeros(len(ref)), np.ones(len(x))]
            sep = auroc(lab, np.r_[1 - ref.familiarity, 1 - x.familiarity]) if other else np.nan
            known = x.error.notna()
            wrong = auroc(x.error[known].to_numpy(), 1 - x.familiarity[known].to_numpy())
            ratio = point[2] / point[1] if point[1] and point[1] == point[1] else np.nan
            rows.append(
                {
                    "run": name,
                    "test": g,
                    "recordings": len(x),
                    "flagged": round(point[0], 3),
                    "flagged_ci": [round(float(lo[0]), 3), round(float(hi[0]), 3)],
                    "auroc_vs_own_test": None if sep != sep else round(float(sep), 3),
                    "error_familiar": None if point[1] != point[1] else round(point[1], 3),
                    "error_familiar_ci": [round(float(lo[1]), 3), round(float(hi[1]), 3)],
                    "error_unfamiliar": None if point[2] != point[2] else round(point[2], 3),
                    "error_unfamiliar_ci": [round(float(lo[2]), 3), round(float(hi[2]), 3)],
                    "error_ratio": None if ratio != ratio else round(float(ratio), 2),
                    "auroc_familiarity_finds_errors": None if wrong != wrong else round(float(wrong), 3),
                }
            )
        shares[name] = s
        print(pd.DataFrame([r for r in rows if r["run"] == name]).drop(columns="run").to_string(), flush=True)
    res = Path("bench/results")
    meta = {
        "command": "python " + " ".join(sys.argv),
        "machine": f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU",
        "seconds": round(time.time() - t0),
        "protocol": "recording level; runs trained with heart-nb train's recipe (the baseline); unseen recordings only",
        "rows": rows,
    }
    (res / "familiarity.json").write_text(json.dumps(meta, indent=1))
    write(meta, res)
    print(f"wrote {res / 'familiarity.md'} in {time.time() - t0:.0f} s")


def write(meta: dict, res: Path) -> None:
    "familiarity.md and familiarity.png from the rows of familiarity.json."
    R = pd.DataFrame(meta["rows"])
    ci = lambda v, c: "" if v is None or v != v else f"{v:.2f} [{c[0]:.2f}, {c[1]:.2f}]"
    lines = [
        "# Familiarity on recordings the run never saw (bench/familiarity.py)",
        "",
        f"{meta['machine']}; {meta['protocol']}. flagged: share unfamiliar [95 % CI]; separates: AUROC of "
        "1 - familiarity, this source against the run's own BMD-HS test recordings; error: the normal/abnormal "
        "decision's error rate among familiar / unfamiliar recordings; finds errors: AUROC of 1 - familiarity for a "
        "wrong decision within the source.",
        "",
        "| run | recordings of | n | flagged | separates | error, familiar | error, unfamiliar | ratio | finds errors "
        "|",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in R.itertuples():
        lines.append(
            f"| {r.run} | {r.test} | {r.recordings} | {ci(r.flagged, r.flagged_ci)} | {r.auroc_vs_own_test or ''} | "
            f"{ci(r.error_familiar, r.error_familiar_ci)} | {ci(r.error_unfamiliar, r.error_unfamiliar_ci)} | "
            f"{'' if r.error_ratio is None or r.error_ratio != r.error_ratio else r.error_ratio} | "
            f"{r.auroc_familiarity_finds_errors or ''} |"
        )
    (res / "familiarity.md").write_text("\n".join(lines) + "\n")
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(9, 4.5))
    groups = sorted(set(R.test))
    w = 0.8 / len(RUNS)
    for i, name in enumerate(RUNS):
        x = R[R.run == name].set_index("test").reindex(groups)
        err = np.array([[v - c[0], c[1] - v] if c == c and v == v else [0, 0] for v, c in zip(x.flagged, x.flagged_ci)])
        ax.bar(np.arange(len(groups)) + i * w, x.flagged, w, yerr=err.T, label=name, capsize=2)
    ax.set_xticks(np.arange(len(groups)) + w / 2 * (len(RUNS) - 1))
    short = [
        g.replace(" (the run's test patients)", "\n(test patients)").replace("physionet2016/", "PhysioNet ")
        for g in groups
    ]
    ax.set_xticklabels(short, fontsize=8, rotation=30, ha="right")
    ax.axhline(0.05, color="k", lw=0.6, ls=":")
    ax.set_ylabel("share flagged unfamiliar")
    ax.set_title("Familiarity by source: baseline runs, recordings never seen in training, recording level", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(res / "familiarity.png", dpi=120)


if __name__ == "__main__":
    if sys.argv[1:] == ["--replot"]:  # the tables and the figure again, from familiarity.json
        write(json.loads(Path("bench/results/familiarity.json").read_text()), Path("bench/results"))
    else:
        main()
