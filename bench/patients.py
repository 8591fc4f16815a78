"""Patients as a clinician sees them: does combining a patient's 8 recordings with their site beat the plain mean?

Input: the out-of-fold test predictions of finished multi-label cross-validations (bench/accuracy.py's folders; by
default the shipped model, heart_nb.core.SHIPPED: the mean of its members). Every combiner turns a patient's
recording probabilities into patient probabilities:

- mean (today's rule), mean of log-odds, max, one site alone (its two postures), the best two sites;
- per-site weights: per class, a logistic regression on the patient's 4 per-site log-odds;
- sites x classes: per class, a logistic regression on all 4 sites x 5 classes log-odds (murmurs of one lesion
  are heard at several sites and colour the other classes' outputs);
- with age and sex (optional fusion): mean log-odds + age + sex, scored on the lesion patients only (the 21 normal
  subjects are all aged 20-24: with them in, age would find the cohort, not the lesion). Its reference row is
  the same model without age and sex on the same patients.

The learned combiners are cross-fitted: fold k's patients are scored by a combiner trained on the other folds'
out-of-fold predictions, its regularisation C chosen by an inner patient-wise CV on those folds only. F1 thresholds
come from the other folds' combined outputs for every combiner (also for the mean, so the rows compare alike; the
headline in accuracy.md uses the validation patients' thresholds instead). Metrics: lesion macro (AS, AR, MR, MS),
mean over the 5 folds; 95 % CI of the difference to the plain mean from 300 paired bootstrap resamples of patients.

    python bench/patients.py [--cv DIR ...] [--data ../shared/data/bmd-hs] [--results bench/results]
"""

import argparse
import os
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from common import logit, md  # noqa: E402

LES = ["AS", "AR", "MR", "MS"]


def patient_table(res, sites):
    "One row per (fold, patient): targets, plain mean, log-odds mean, max, and per-site log-odds of every class."
    import pandas as pd

    d = res.predictions[res.predictions.role == "test"]
    rows = []
    for (f, pid), g in d.groupby(["fold", "patient_id"], sort=False):
        r = {"fold": int(f), "patient_id": pid, **{f"y_{c}": g[f"y_{c}"].iloc[0] for c in res.classes}}
        for c in res.classes:
            p = g[f"p_{c}"].to_numpy()
            r.update({f"mean_{c}": p.mean(), f"lmean_{c}": logit(p).mean(), f"max_{c}": p.max()})
            for s in sites:
                at = g[g.site == s][f"p_{c}"]
                r[f"{s}_{c}"] = logit(at.mean() if len(at) else p.mean())
        rows.append(r)
    return pd.DataFrame(rows)


def cross_fit(P, cols_of, classes, Cs=(0.003, 0.01, 0.03, 0.1, 0.3, 1.0)):
    "Cross-fitted logistic-regression outputs (n, k): fold k scored by a model of the other folds, C by inner CV."
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from heart_nb.metrics import auroc

    out = np.zeros((len(P), len(classes)))
    fit = lambda C, X, y: make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=2000)).fit(X, y)
    for k in sorted(P.fold.unique()):
        tr, te = (P.fold != k).to_numpy(), (P.fold == k).to_numpy()
        for j, c in enumerate(classes):
            X, y = P[cols_of(c)].to_numpy(float), P[f"y_{c}"].to_numpy()
            inner = P.fold[tr].to_numpy()

            def score(C):
                s = []
                for m in np.unique(inner):
                    a, b = inner != m, inner == m
                    if len(np.unique(y[tr][a])) < 2:
                        continue
                    s.append(auroc(y[tr][b], fit(C, X[tr][a], y[tr][a]).predict_proba(X[tr][b])[:, 1]))
                return np.nanmean(s)

            best = max(Cs, key=score)
            out[te, j] = fit(best, X[tr], y[tr]).predict_proba(X[te])[:, 1]
    return out


def fold_scores(P, S, classes, idx=None):
    "Lesion macro-AUROC and macro-F1 per fold (F1 thresholds from the other folds' outputs)."
    import numpy as np

    from heart_nb.metrics import auroc, best_thresholds

    idx = np.arange(len(P)) if idx is None else idx
    Y = P[[f"y_{c}" for c in classes]].to_numpy()[idx]
    S = S[idx]
    f = P.fold.to_numpy()[idx]
    les = [classes.index(c) for c in LES if c in classes]
    aucs, f1s = [], []
    for k in np.unique(f):
        te = f == k
        thr = best_thresholds(Y[~te], S[~te])
        aucs.append(np.nanmean([auroc(Y[te, j], S[te, j]) for j in les]))
        yh = S[te] >= thr
        f1 = [2 * (yh[:, j] & (Y[te, j] > 0)).sum() / max(1, yh[:, j].sum() + (Y[te, j] > 0).sum()) for j in les]
        f1s.append(np.mean(f1))
    return float(np.mean(aucs)), float(np.mean(f1s))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    from heart_nb.core import SHIPPED

    ap.add_argument("--cv", nargs="*", default=[f"bench/_accuracy/multilabel_{m}" for m in SHIPPED.split("+")])
    ap.add_argument("--data", default=None)
    ap.add_argument("--results", default="bench/results")
    ap.add_argument("--boot", type=int, default=300)
    a = ap.parse_args()
    import numpy as np
    import pandas as pd

    from heart_nb.core import find_bmdhs
    from heart_nb.crossval import ensemble, load_cv

    warnings.filterwarnings("ignore")
    rs = [load_cv(d) for d in a.cv]
    res = ensemble(rs) if len(rs) > 1 else rs[0]
    classes = res.classes
    sites = sorted(res.predictions.site.dropna().unique())
    P = patient_table(res, sites)
    data = Path(a.data) if a.data else find_bmdhs()
    ann = pd.read_excel(data / "BMD-HS_Data_Annotation.xlsx").set_index("patient_id")
    P["age"] = P.patient_id.map(ann.Age).astype(float)
    P["male"] = (P.patient_id.map(ann.Gender) == "M").astype(float)
    col = lambda name: P[[f"{name}_{c}" for c in classes]].to_numpy(float)
    S = {"mean of 8 (today)": col("mean"), "mean of log-odds": col("lmean"), "max": col("max")}
    for s in sites:
        S[f"{s} site only"] = col(s)
    single = {s: fold_scores(P, col(s), classes)[0] for s in sites}
    two = sorted(single, key=single.get)[-2:]
    S[f"best two sites ({'+'.join(two)}, chosen on all folds: optimistic)"] = (col(two[0]) + col(two[1])) / 2
    S["per-site weights (LR on 4 site log-odds)"] = cross_fit(P, lambda c: [f"{s}_{c}" for s in sites], classes)
    S["sites x classes (LR on 20 log-odds)"] = cross_fit(
        P, lambda c: [f"{s}_{k}" for s in sites for k in classes], classes
    )
    rng = np.random.default_rng(0)
    base = S["mean of 8 (today)"]

    def boot_diff(X, idx=None):
        idx = np.arange(len(P)) if idx is None else idx
        diffs = []
        for _ in range(a.boot):
            b = np.concatenate(
                [
                    rng.choice(idx[P.fold.to_numpy()[idx] == k], (P.fold.to_numpy()[idx] == k).sum())
                    for k in np.unique(P.fold.to_numpy()[idx])
                ]
            )
            diffs.append(fold_scores(P, X, classes, b)[0] - fold_scores(P, base, classes, b)[0])
        return np.percentile(diffs, [2.5, 97.5])

    rows = []
    for name, X in S.items():
        auc, f1 = fold_scores(P, X, classes)
        lo, hi = boot_diff(X) if X is not base else (0.0, 0.0)
        rows.append(
            {
                "combiner": name,
                "lesion macro-AUROC": f"{auc:.3f}",
                "lesion macro-F1": f"{f1:.3f}",
                "AUROC - mean [95 % CI]": f"{auc - fold_scores(P, base, classes)[0]:+.3f} [{lo:+.3f}, {hi:+.3f}]",
            }
        )
    # age and sex, on lesion patients only
    les = np.flatnonzero(P["y_N"].to_numpy() == 0) if "N" in classes else np.arange(len(P))
    L_ = P.iloc[les].reset_index(drop=True)
    no = cross_fit(L_, lambda c: [f"lmean_{c}"], LES)
    yes = cross_fit(L_, lambda c: [f"lmean_{c}", "age", "male"], LES)
    fused = []
    for name, X in (("mean log-odds, lesion patients only", no), ("+ age and sex, lesion patients only", yes)):
        auc, f1 = fold_scores(L_, X, LES)
        fused.append(
            {"combiner": name, "patients": len(L_), "lesion macro-AUROC": f"{auc:.3f}", "lesion macro-F1": f"{f1:.3f}"}
        )
    T = pd.DataFrame(rows).set_index("combiner")
    F = pd.DataFrame(fused).set_index("combiner")
    text = [
        "# Patients as a clinician sees them: combining a patient's 8 recordings",
        "",
        f"Predictions: out-of-fold test predictions of {' + '.join(r.model for r in rs)} "
        f"({'their mean' if len(rs) > 1 else 'one model'}), patient-wise 5-fold, {len(P)} patients. "
        "Learned combiners are cross-fitted (each fold scored by a combiner trained on the other folds, C chosen "
        "by an inner patient-wise CV there). F1 thresholds from the other folds' outputs for every row. "
        f"CI: {a.boot} paired bootstrap resamples of patients within folds.",
        "",
        md(T),
        "",
        "Optional fusion with age and sex, scored without the normal cohort (aged 20-24):",
        "",
        md(F),
        "",
    ]
    best = max(rows[1:], key=lambda r: float(r["lesion macro-AUROC"]))
    text += [
        f"Best alternative to the mean: {best['combiner']} ({best['AUROC - mean [95 % CI]']}). "
        "A combiner replaces the mean only when its whole CI lies above zero.",
        "",
    ]
    Path(a.results).mkdir(parents=True, exist_ok=True)
    (Path(a.results) / "patients.md").write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
