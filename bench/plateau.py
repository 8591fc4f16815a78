"""Where the shipped ranking stops: levers tried on the folds of bench/accuracy.py, each against the shipped
baseline+cnn on the same patients, with a paired patient-bootstrap 95 % CI of the difference.

Protocol: the patient-wise 5-fold cross-validation that bench/accuracy.py stored in --work (108 patients, each tested
once; validation patients carved from each fold's training patients decide thresholds). Every row is multi-label,
patient level (mean over a patient's recordings), lesion macro over AS, AR, MR, MS, mean over folds. The CI is of
the DIFFERENCE to the shipped pair, from --boot resamples of patients within folds, the same patients drawn for both:
a lever is a gain only if its interval lies above zero.

Levers (no network is retrained; the networks' stored predictions are used):
- combiners of baseline and CNN: mean of logits, geometric mean (the shipped pair takes the plain mean);
- the CRNN as a third member (it is in the CNN's place too: `baseline+crnn` in accuracy.md);
- cross-label stacking: a logistic regression on the baseline's and the CNN's logits of all 5 classes per lesion,
  fitted on the other folds' out-of-fold recordings (slightly optimistic: those predictions came from models that
  saw this fold's patients);
- new third members on the baseline's own training rows and copies (fit_baseline, its copies drawn again by
  augmented_copies; the script checks that refitting the baseline gives its stored predictions): a random forest on
  the same summaries, and a logistic regression on a beat-synchronous log-Mel map (64 bands x 16 systolic + 24
  diastolic phase points, median over beats; `cycle_profile` at full resolution);
- other networks in the CNN's place (`--net NAME=DIR`: a cross-validation folder of bench/accuracy.py run with
  `--set ...`, same folds), alone and with the baseline.

    python bench/plateau.py [--work bench/_accuracy] [--boot 500] [--net NAME=DIR ...]

Needs bench/accuracy.py's folders in --work (multilabel_baseline, multilabel_cnn, multilabel_crnn, the cache).
Writes bench/results/ablation/plateau.md and plateau.json.
"""

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import pandas as pd
from common import logit, machine, md
from scipy.special import expit

from heart_nb.baseline import augmented_copies, fit_baseline, recording_summary, summarise_windows
from heart_nb.cache import extract_features
from heart_nb.core import HeartConfig
from heart_nb.crossval import CVResult, ensemble, load_cv
from heart_nb.cycle import cycle_profile
from heart_nb.features import recording_frames
from heart_nb.metrics import metric_table


def with_probs(res: CVResult, P: np.ndarray, name: str) -> CVResult:
    "`res` with probabilities `P` (rows of res.predictions); thresholds and temperature refitted on validation."
    pr = res.predictions.copy()
    pr[["p_" + c for c in res.classes]] = P
    return ensemble([CVResult(name, res.task, res.classes, pr, res.folds)], name)  # an ensemble of one: refits


def probs(res: CVResult, like: CVResult) -> np.ndarray:
    "The probabilities of `res` in the row order of `like` (same folds, roles and recordings)."
    key = ["fold", "role", "path"]
    at = like.predictions.set_index(key).index
    return res.predictions.set_index(key).loc[at, ["p_" + c for c in res.classes]].to_numpy()


def patient_view(res: CVResult) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    "Test patients sorted by (fold, patient), their targets, probabilities and validation-fitted thresholds."
    d, Y, P = res.level("patient")
    o = np.lexsort((d.patient_id.to_numpy(), d.fold.to_numpy()))
    thr = {f["fold"]: f["thresholds"]["patient"] for f in res.folds}
    return d.iloc[o].reset_index(drop=True), Y[o], P[o], np.array([thr[k] for k in d.fold.to_numpy()[o]])


def scores(Y, P, thr, classes, groups) -> tuple[float, float]:
    "Mean over folds of patient lesion macro-AUROC and -F1; `groups`: each fold's rows (a bootstrap draw or all)."
    tabs = [metric_table(Y[i], P[i], classes, "multilabel", thr[i]) for i in groups]
    return tuple(float(np.nanmean([t[m] for t in tabs])) for m in ("lesion_macro_auroc", "lesion_macro_f1"))


def compare(res: CVResult, ref: CVResult, n_boot: int, seed: int = 0) -> dict:
    "AUROC and F1 of `res`, and their difference to `ref` with a paired patient-bootstrap 95 % CI."
    (d, Y, P, t), (d0, Y0, P0, t0) = patient_view(res), patient_view(ref)
    assert (d[["fold", "patient_id"]].to_numpy() == d0[["fold", "patient_id"]].to_numpy()).all(), "patients differ"
    rng, cl = np.random.default_rng(seed), res.classes
    folds = [np.flatnonzero(d.fold.to_numpy() == k) for k in np.unique(d.fold)]
    (a, f), (a0, f0) = scores(Y, P, t, cl, folds), scores(Y0, P0, t0, cl, folds)
    boot = []
    for _ in range(n_boot):
        g = [rng.choice(i, len(i)) for i in folds]  # the same patients for both
        x, y = scores(Y, P, t, cl, g), scores(Y0, P0, t0, cl, g)
        boot.append((x[0] - y[0], x[1] - y[1]))
    lo, hi = np.percentile(np.array(boot), [2.5, 97.5], axis=0)
    return {
        "model": res.model,
        "lesion_macro_auroc": round(a, 4),
        "lesion_macro_f1": round(f, 4),
        "d_auroc": round(a - a0, 4),
        "d_auroc_ci": [round(lo[0], 4), round(hi[0], 4)],
        "d_f1": round(f - f0, 4),
        "d_f1_ci": [round(lo[1], 4), round(hi[1], 4)],
    }


def compare_table(rows: list[dict]) -> pd.DataFrame:
    "`compare` rows as a table: one per model, each difference written with its CI."
    T = pd.DataFrame(rows).set_index("model")
    for m in ("d_auroc", "d_f1"):
        T[m] = [f"{v:+.3f} [{lo:+.3f}, {hi:+.3f}]" for v, (lo, hi) in zip(T[m], T[m + "_ci"])]
    return T.drop(columns=["d_auroc_ci", "d_f1_ci"])


def stacked(b: CVResult, c: CVResult) -> CVResult:
    "Per lesion, a logistic regression on both models' logits of every class, fitted on the other folds' test rows."
    from sklearn.linear_model import LogisticRegression

    X, pr = np.hstack([logit(probs(b, b)), logit(probs(c, b))]), b.predictions
    P, Y = (probs(b, b) + probs(c, b)) / 2, pr[["y_" + k for k in b.classes]].to_numpy()
    for k in pr.fold.unique():
        fit, this = ((pr.fold != k) & (pr.role == "test")).to_numpy(), (pr.fold == k).to_numpy()
        for j, name in enumerate(b.classes):
            if name == "N":
                continue
            m = LogisticRegression(C=0.1, max_iter=2000).fit(X[fit], Y[fit, j] > 0.5)
            P[this, j] = m.predict_proba(X[this])[:, 1]
    return with_probs(b, P, "baseline+cnn, stacked across labels")


def new_members(work: Path, b: CVResult, cfg: HeartConfig) -> list[CVResult]:
    "A random forest on the baseline's summaries and an LR on beat-synchronous maps, on fit_baseline's rows and draws."
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    man = pd.read_csv(work / "manifest.csv", dtype={"patient_id": str})
    cwd = os.getcwd()
    os.chdir(work)  # the manifest's paths are relative to it
    try:
        fs = extract_features(man, cfg, cache_dir="cache", progress=False)
    finally:
        os.chdir(cwd)
    F = recording_summary(fs, cfg)
    W, at = fs.windows(), pd.Series(np.arange(len(fs.row))).groupby(fs.row).indices
    beat = lambda w: cycle_profile(recording_frames(w, cfg), cfg, 16, 24, 64)
    B = np.stack([beat(W[at[r]]) for r in range(len(man))])
    Y = man[b.classes].to_numpy().astype(float)
    pr, name = b.predictions, pd.Index([str((work / p).resolve()) for p in man.path])  # predictions: absolute
    out = {m: np.zeros((len(pr), len(b.classes))) for m in ("baseline (refit)", "random forest", "beat map LR")}
    for k in sorted(pr.fold.unique()):
        t0 = time.time()
        mine = pr.fold == k
        rows = np.flatnonzero(~name.isin(pr.path[mine]))  # fit_baseline's rows: not val, not test
        fitted = fit_baseline(fs, F, Y, np.isin(np.arange(len(man)), rows), cfg, "multilabel", seed=int(k))
        Fc, Bc = [F[rows]], [B[rows]]
        for aug in augmented_copies(fs, rows, cfg, int(k)):  # fit_baseline's copies, drawn again for the new members
            Fc.append(np.stack([summarise_windows(w, cfg) for w in aug]))
            Bc.append(np.stack([beat(w) for w in aug]))
        Fc, Bc, Yc = np.concatenate(Fc), np.concatenate(Bc), np.tile(Y[rows], (1 + cfg.baseline_copies, 1))
        idx = name.get_indexer(pr.path[mine])
        out["baseline (refit)"][mine.to_numpy()] = fitted.predict(F[idx])
        rf = RandomForestClassifier(
            500, min_samples_leaf=3, class_weight="balanced_subsample", n_jobs=-1, random_state=0
        )
        out["random forest"][mine.to_numpy()] = np.stack([p[:, 1] for p in rf.fit(Fc, Yc).predict_proba(F[idx])], 1)
        lr = LogisticRegression(C=0.01, class_weight="balanced", max_iter=3000, random_state=cfg.seed)
        bm = make_pipeline(StandardScaler(), OneVsRestClassifier(lr))
        out["beat map LR"][mine.to_numpy()] = bm.fit(Bc, Yc).predict_proba(B[idx])
        print(
            f"fold {k}: {len(rows)} training recordings + {cfg.baseline_copies} copies, {time.time() - t0:.0f} s",
            flush=True,
        )
    err = np.abs(out["baseline (refit)"] - probs(b, b)).max()
    assert err < 1e-4, f"refitting the baseline does not reproduce its stored predictions (max diff {err:.2g})"
    print(f"refit baseline reproduces the stored one (max |diff| {err:.1g})")
    return [with_probs(b, P, m) for m, P in out.items() if m != "baseline (refit)"]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--work", default="bench/_accuracy")
    ap.add_argument("--boot", type=int, default=500)
    ap.add_argument("--net", action="append", default=[], metavar="NAME=DIR", help="another network's CV folder")
    a = ap.parse_args()
    t0 = time.time()
    work = Path(a.work)
    b, c, r = (load_cv(work / f"multilabel_{m}") for m in ("baseline", "cnn", "crnn"))
    cfg = HeartConfig()
    cv = json.loads((work / "multilabel_baseline" / "cv.json").read_text())["config"]
    assert cv.get("baseline_c", cfg.baseline_c) == cfg.baseline_c, "--work holds another baseline configuration"
    ref = ensemble([b, c], "baseline+cnn (shipped)")
    Pb, Pc = probs(b, b), probs(c, b)
    rf, beat = new_members(work, b, cfg)
    levers = [
        ref,
        with_probs(b, expit((logit(Pb) + logit(Pc)) / 2), "baseline+cnn, mean of logits"),
        with_probs(b, np.sqrt(Pb * Pc), "baseline+cnn, geometric mean"),
        ensemble([b, c, r], "baseline+cnn+crnn"),
        stacked(b, c),
        rf,
        beat,
        ensemble([b, c, rf], "baseline+cnn+random forest"),
        ensemble([b, c, beat], "baseline+cnn+beat map LR"),
        ensemble([b, c, rf, beat], "baseline+cnn+both"),
    ]
    for name, d in (x.split("=", 1) for x in a.net):
        n = load_cv(d)
        n.model = name
        levers += [n, ensemble([b, n], f"baseline+{name}")]
    rows = [compare(x, ref, a.boot) for x in levers]
    T = compare_table(rows).rename(
        columns={
            "lesion_macro_auroc": "lesion macro-AUROC",
            "lesion_macro_f1": "lesion macro-F1",
            "d_auroc": "AUROC - shipped [95 % CI]",
            "d_f1": "F1 - shipped [95 % CI]",
        }
    )
    out = Path("bench/results/ablation")
    out.mkdir(parents=True, exist_ok=True)
    cmd = " ".join(["python bench/plateau.py", *map(shlex.quote, sys.argv[1:])])
    meta = {"protocol": __doc__.split("\n\n")[1], "command": cmd, "machine": machine(), "rows": rows}
    (out / "plateau.json").write_text(json.dumps(meta, indent=1))
    (out / "plateau.md").write_text(
        "\n".join(
            [
                "# Levers against the shipped baseline+cnn (BMD-HS, patient-wise 5-fold, patient level)",
                "",
                __doc__.split("\n\n")[1].replace("\n", " "),
                "",
                __doc__.split("\n\n")[2],
                "",
                md(T),
                "",
                f"The issue's target, lesion macro-AUROC >= 0.90, lies {0.90 - rows[0]['lesion_macro_auroc']:+.3f} "
                "above "
                "the shipped pair.",
                "",
                f"`{cmd}`: {time.time() - t0:.0f} s; {machine()}.",
                "",
            ]
        )
    )
    print(md(T))
    print(f"wrote {out}/plateau.md, plateau.json ({time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
