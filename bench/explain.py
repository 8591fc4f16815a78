"""Do the explanations sit where the murmurs are? BMD-HS, the cross-validated networks, their own test patients.

For every test recording of a patient with a lesion (patient-wise 5-fold, the folds and saved fold models of
bench/accuracy.py), the heart cycle is found by the learned S1/S2 segmenter (heart_nb.cycle.heart_cycle, what the
package uses) and, for the paired comparison, by the envelope rule (its fallback), and the explanation is mapped onto
time (heart_nb.panel.explanation's mapping): the CNN's Grad-CAM for the lesion's class, the CRNN's attention
(one set of weights for all classes). The score is the share of explanation mass in the phase where that lesion's
murmur lies (systole for AS and MR, diastole for AR and MS), against the share expected by chance: the phase's
share of the recording's time. Recordings without a detected cycle are left out; a recording of a patient with two
lesions counts once for each. Mean over recordings; 95 % CI of the mean excess over chance from 1000 bootstrap
resamples of patients. What the better cycle buys (#33): per model and lesion, the excess under the learned
segmenter's cycle minus the excess under the envelope rule's, on the same recordings (those where both find a
cycle), with a 95 % CI from the same patient bootstrap (paired): explain_cycles.json and a table in explain.md.

    python bench/explain.py [--work bench/_accuracy] [--results bench/results] [--models cnn,crnn]
"""

import argparse
import json
import os
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from common import machine, md  # noqa: E402

LES = {"AS": "systole", "MR": "systole", "AR": "diastole", "MS": "diastole"}


def patient_ci(g, col: str, rng, n: int = 1000) -> tuple[float, float]:
    "95 % CI of the mean of `g[col]` over its rows, from `n` bootstrap resamples of its patients."
    import numpy as np

    pats = g.patient_id.unique()
    by = {p: g[g.patient_id == p][col].to_numpy() for p in pats}
    boots = [np.concatenate([by[p] for p in rng.choice(pats, len(pats))]).mean() for _ in range(n)]
    return round(float(np.percentile(boots, 2.5)), 3), round(float(np.percentile(boots, 97.5)), 3)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="bench/_accuracy")
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--limit", type=int, default=None, help="recordings per fold (a quick look)")
    ap.add_argument("--models", default="cnn,crnn", help="the cross-validated networks to explain")
    a = ap.parse_args()
    import matplotlib
    import numpy as np
    import pandas as pd

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from heart_nb.core import HeartConfig, HeartError
    from heart_nb.crossval import load_cv, load_fold
    from heart_nb.cycle import envelope, heart_cycle, read_recording
    from heart_nb.features import recording_log_mel
    from heart_nb.models import attention_weights, grad_cam
    from heart_nb.panel import frame_times

    t0 = time.time()
    rows = []
    for kind in a.models.split(","):
        d = Path(a.work) / f"multilabel_{kind}"
        res = load_cv(d)
        cfg = HeartConfig(**json.loads((d / "cv.json").read_text())["config"])
        for f in res.folds:
            k = f["fold"]
            m = load_fold(d, k)
            test = res.predictions[(res.predictions.fold == k) & (res.predictions.role == "test")]
            test = test[test[[f"y_{c}" for c in LES]].sum(axis=1) > 0]
            for _, r in test.head(a.limit or len(test)).iterrows():
                try:
                    y, q = read_recording(r.path, cfg)
                except HeartError as e:
                    warnings.warn(str(e))
                    continue
                cycles = {"learned": q.cycle, "envelope": heart_cycle(None, cfg.sr, envelope(y, cfg.sr))}
                cycles = {k: hc for k, hc in cycles.items() if hc is not None and len(hc.s1) >= 2}
                if not cycles:
                    continue
                X = m.standardiser(recording_log_mel(y, cfg)[0])
                dur = len(y) / cfg.sr
                grid = np.arange(0, dur, 0.02)
                starts = np.arange(len(X)) * cfg.window_hop_s
                att = (
                    frame_times(attention_weights(m.model, X), starts, cfg.window_s, dur, grid)
                    if kind == "crnn"
                    else None
                )
                for c, want in LES.items():
                    if r[f"y_{c}"] != 1:
                        continue
                    ex = (
                        att
                        if att is not None
                        else frame_times(grad_cam(m.model, X, res.classes.index(c)), starts, cfg.window_s, dur, grid)
                    )
                    for cyc, hc in cycles.items():
                        phase = hc.phase(grid)
                        ok = (phase != "") & np.isfinite(ex)
                        if ex[ok].sum() <= 0:
                            continue
                        rows.append(
                            {
                                "model": kind,
                                "explanation": "attention" if kind == "crnn" else "grad-cam",
                                "cycle": cyc,
                                "fold": k,
                                "path": Path(r.path).name,
                                "patient_id": r.patient_id,
                                "lesion": c,
                                "phase": want,
                                "quality": q.verdict.split(":")[0],
                                "share": float(ex[ok & (phase == want)].sum() / ex[ok].sum()),
                                "chance": float((phase[ok] == want).mean()),
                            }
                        )
            print(f"{kind} fold {k}: {len(rows)} rows, {time.time() - t0:.0f} s", flush=True)
    both = pd.DataFrame(rows)
    both["excess"] = both.share - both.chance
    df = both[both.cycle == "learned"]
    rng = np.random.default_rng(0)
    summ = []
    for (mod, les), g in df.groupby(["model", "lesion"], sort=False):
        lo, hi = patient_ci(g, "excess", rng)
        summ.append(
            {
                "model": mod,
                "explanation": g.explanation.iloc[0],
                "lesion": les,
                "phase": LES[les],
                "recordings": len(g),
                "patients": g.patient_id.nunique(),
                "share": round(g.share.mean(), 3),
                "chance": round(g.chance.mean(), 3),
                "excess": round(g.excess.mean(), 3),
                "ci_low": lo,
                "ci_high": hi,
                "above_chance": round(float((g.excess > 0).mean()), 3),
            }
        )
    s = pd.DataFrame(summ)
    keys = ["model", "lesion", "patient_id", "path"]
    pair = both.pivot_table(index=keys, columns="cycle", values="excess").dropna().reset_index()
    pair["diff"] = pair.learned - pair.envelope
    paired = []
    for (mod, les), g in pair.groupby(["model", "lesion"], sort=False):
        lo, hi = patient_ci(g, "diff", rng)
        paired.append(
            {
                "model": mod,
                "lesion": les,
                "phase": LES[les],
                "recordings": len(g),
                "patients": g.patient_id.nunique(),
                "excess_learned": round(float(g.learned.mean()), 3),
                "excess_envelope": round(float(g.envelope.mean()), 3),
                "diff": round(float(g["diff"].mean()), 3),
                "ci_low": lo,
                "ci_high": hi,
            }
        )
    paired = pd.DataFrame(paired)
    out = Path(a.results)
    out.mkdir(parents=True, exist_ok=True)
    s.to_json(out / "explain.json", orient="records", indent=1)
    paired.to_json(out / "explain_cycles.json", orient="records", indent=1)
    models = list(s.model.unique())
    fig, axs = plt.subplots(1, len(models), figsize=(5.5 * len(models), 4), sharey=True, squeeze=False)
    axs = axs[0]
    for ax, mod in zip(axs, models):
        g = s[s.model == mod]
        x = np.arange(len(g))
        ax.bar(x - 0.2, g.share, 0.4, label="explanation mass in the phase", color="C3")
        ax.bar(x + 0.2, g.chance, 0.4, label="chance: the phase's share of time", color="0.7")
        ax.errorbar(
            x - 0.2, g.share, yerr=[g.excess - g.ci_low, g.ci_high - g.excess], fmt="none", color="k", capsize=3
        )
        ax.set_xticks(x, [f"{r.lesion} ({r.phase})\nn={r.recordings}" for r in g.itertuples()])
        ax.set_title(f"{mod.upper()} {g.explanation.iloc[0]}", fontsize=10)
        ax.set_ylim(0, 1)
    axs[0].set_ylabel("share")
    axs[0].legend(fontsize=8, loc="upper left")
    fig.suptitle(
        f"Where the evidence is: BMD-HS, patient-wise 5-fold CV, test recordings of lesion patients "
        f"({df.patient_id.nunique()} patients)",
        fontsize=10,
    )
    fig.tight_layout()
    fig.savefig(out / "explain.png", dpi=110)
    txt = [
        "# Explanations against the heart cycle (BMD-HS)",
        "",
        __doc__.split("\n\n    python")[0].strip(),
        "",
        f"Machine: {machine()}. {time.time() - t0:.0f} s.",
        "",
        md(s),
        "",
        "`share`: mean explanation mass in the lesion's phase; `chance`: mean share of time in that phase; "
        "`excess` = share - chance with its 95 % CI (patients bootstrapped); `above_chance`: share of recordings "
        "whose mass in the phase exceeds chance.",
        "",
        "![](explain.png)",
        "",
        "## What the better cycle buys: learned segmenter against the envelope rule, paired",
        "",
        "Per model and lesion, the same recordings (those where both find a cycle): the mean excess over chance with "
        "each cycle, and `diff` = learned - envelope with its 95 % CI (patients bootstrapped, paired).",
        "",
        md(paired),
    ]
    (out / "explain.md").write_text("\n".join(txt) + "\n")
    print(md(s))
    print(md(paired))


if __name__ == "__main__":
    main()
