"""Leave one source out in the murmur label space (#30): bench/results/sources_loso_*.json, read by sources.py.

Eight sources: bmd-hs, physionet2016/a ... /f, circor2022 (each mapped with its preset, the label table of
nbs/02_mapping). For each held-out source, a model is trained on the other seven and scored on every recording of
the held-out one, at patient level (a patient's recordings averaged; a PhysioNet recording is its own patient), with
every metric that source's labels allow:

    normal_abnormal_auroc   1 - p(N) against N = 0 (where N is known and both occur)
    murmur_auroc            p(murmur) against the murmur target (CirCor, PhysioNet a, b, c, BMD-HS)
    systolic_auroc, diastolic_auroc   where both values occur
    lesion_macro_auroc      BMD-HS: each lesion the model has; PhysioNet c: AS against MR (its 24 abnormal)

95 % CIs: patients bootstrapped (500 draws); each lever's difference to naive pooling on the same draws (paired).
The baseline (the shipped logistic regression on summaries, with its two augmented copies per recording) is fitted
on every recording of the training sources (no validation split is needed for AUROC); its copies are computed once
for all recordings. Levers (baseline):

    naive            every other source pooled, each target fitted where it is known (class-balanced)
    without_circor   the same without CirCor in training (children's murmurs are not adults' valve disease)
    source_stats     each source's summaries standardised by that source's own mean and spread (at test time the
                     held-out source by its own statistics: a folder of unlabelled recordings from one stethoscope)
    subset_ensemble  the mean of three models, each trained without one of the datasets (BMD-HS, PhysioNet, CirCor)
    source_stats+without_circor  both
    style_mix        the augmented copies with cfg.aug_style_mix = 0.5: each window may take the band means and
                     spreads of a recording from another source (MixStyle on the log-Mel); the styles never come from
                     the held-out source (one set of copies per source held out)

Five-fold protocols (--part five): BMD-HS patient-wise 5-fold (the folds of bench/accuracy.py) alone and with every
other source in every training fold (lesion macro-AUROC, patient level, paired difference); CirCor patient-wise
5-fold (murmur AUROC, the in-source reference).

    python bench/loso.py --part loso            # minutes per lever on 2 cores
    python bench/loso.py --part five
    nohup python bench/loso.py --part nets > bench/results/loso_nets.log 2>&1 &    # hours: the shipped pair
    python bench/loso.py --part nets --epochs 12 --held-out circor2022 --adversarial 0.5   # the lever, paired
"""

import argparse
import json
import os
import time
from pathlib import Path

from common import config_with, fold_lesion_macro, write_rows

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import pandas as pd

SOURCES = ("bmd-hs", *(f"physionet2016/{d}" for d in "abcdef"), "circor2022")
GROUP = {"bmd-hs": "murmur/valve", "circor2022": "murmur/valve"} | {
    f"physionet2016/{d}": g
    for d, g in zip("abcdef", ["murmur/valve", "coronary", "murmur/valve", "unspecified", "coronary", "unspecified"])
}
DATASET = lambda s: s.split("/")[0]
LEVERS = ("naive", "without_circor", "source_stats", "subset_ensemble", "source_stats+without_circor", "style_mix")
TARGET = {
    ("circor2022", "murmur_auroc"): ">= 0.85",
    ("physionet2016/a", "murmur_auroc"): ">= 0.85",
    ("physionet2016/c", "murmur_auroc"): ">= 0.85",
    ("physionet2016/d", "normal_abnormal_auroc"): ">= 0.80",
    ("physionet2016/f", "normal_abnormal_auroc"): ">= 0.80",
}


def load(work: Path, cfg):
    "The three manifests combined, their features, every recording's summaries and its augmented copies' summaries."
    from common import three_sources

    from heart_nb.baseline import augmented_copies, recording_summary, summarise_windows
    from heart_nb.cache import extract_features

    man = three_sources(work)
    fs = extract_features(man, cfg, cache_dir=work / "cache", progress=False)
    man = fs.manifest
    f = work / f"summaries_{cfg.baseline_copies}.npz"
    if f.exists():
        with np.load(f, allow_pickle=False) as z:
            F, C = z["F"], z["C"]
    else:
        F = recording_summary(fs, cfg)
        ok = np.flatnonzero(np.isfinite(F).all(1))
        C = np.full((cfg.baseline_copies, *F.shape), np.nan, np.float32)
        for k, aug in enumerate(augmented_copies(fs, ok, cfg, seed=0)):
            C[k, ok] = np.stack([summarise_windows(w, cfg) for w in aug])
        np.savez(f, F=F, C=C)
    return man, fs, F, C


def style_copies(work: Path, man, fs, F, cfg, without: str) -> np.ndarray:
    """The augmented copies' summaries with cross-source style mixing, for every recording outside source `without`
    (NaN for its own), their styles drawn from those recordings only; computed once, kept in `work`."""
    from heart_nb.baseline import augmented_copies, summarise_windows

    f = work / f"style_copies_{without.replace('/', '_')}_{cfg.baseline_copies}.npz"
    if f.exists():
        with np.load(f, allow_pickle=False) as z:
            return z["C"]
    t0 = time.time()
    rows = np.flatnonzero(np.isfinite(F).all(1) & (man.source.to_numpy() != without))
    C = np.full((cfg.baseline_copies, *F.shape), np.nan, np.float32)
    for k, aug in enumerate(augmented_copies(fs, rows, cfg.replace(aug_style_mix=0.5), seed=0)):
        C[k, rows] = np.stack([summarise_windows(w, cfg) for w in aug])
    np.savez(f, C=C)
    print(f"  style-mixed copies without {without}: {time.time() - t0:.0f} s", flush=True)
    return C


def fit(F, C, Y, rows, cfg, src=None):
    "A Baseline on `rows` (bool) of summaries `F` and copies `C`; `src`: per-row source for per-source statistics."
    from heart_nb.baseline import Baseline

    rows = rows & np.isfinite(F).all(1)
    X = np.concatenate([F[rows], *[c[rows] for c in C]])
    return Baseline("multilabel", cfg).fit(X, np.tile(Y[rows], (1 + len(C), 1)))


def source_standardised(F, C, src):
    "Summaries and copies with each source's own mean and spread taken out (the spread of its original recordings)."
    F2, C2 = F.copy(), C.copy()
    for s in np.unique(src):
        r = (src == s) & np.isfinite(F).all(1)
        mu, sd = F[r].mean(0), F[r].std(0) + 1e-6
        F2[src == s] = (F[src == s] - mu) / sd
        C2[:, src == s] = (C[:, src == s] - mu) / sd
    return F2, C2


def patient_scores(man, P, classes, rows):
    "Per patient of `rows`: the mean probabilities (DataFrame p_<class>) and the patient's targets (y_<target>)."
    from heart_nb.core import TARGETS

    m = man[rows].reset_index(drop=True)
    d = pd.DataFrame(P[rows], columns=[f"p_{c}" for c in classes])
    for t in TARGETS:
        d[f"y_{t}"] = m[t].to_numpy(dtype=float)
    d["patient"] = m.patient_id.to_numpy()
    return d.groupby("patient", sort=False).mean()


def metrics(d: pd.DataFrame, source: str, classes) -> dict:
    "Every metric the held-out source's labels allow, from its patient table `d`."
    from heart_nb.core import LESIONS
    from heart_nb.metrics import auroc

    out = {}
    both = lambda y: np.isfinite(y).any() and len(np.unique(y[np.isfinite(y)])) == 2
    if both(d.y_N.to_numpy()):
        out["normal_abnormal_auroc"] = auroc(1 - d.y_N.to_numpy(), 1 - d.p_N.to_numpy())
    for t in ("murmur", "systolic", "diastolic"):
        if f"p_{t}" in d and both(d[f"y_{t}"].to_numpy()):
            out[f"{t}_auroc"] = auroc(d[f"y_{t}"].to_numpy(), d[f"p_{t}"].to_numpy())
    if source == "bmd-hs":
        a = [auroc(d[f"y_{c}"].to_numpy(), d[f"p_{c}"].to_numpy()) for c in LESIONS if f"p_{c}" in d]
        a = [x for x in a if x == x]
        if a:
            out["lesion_macro_auroc"] = float(np.mean(a))
    if source == "physionet2016/c" and "p_AS" in d and "p_MR" in d:
        ab = d[(d.y_AS == 1) | (d.y_MR == 1)]
        is_as = (ab.y_AS == 1).to_numpy(float)
        out["lesion_macro_auroc"] = float(
            np.mean([auroc(is_as, ab.p_AS.to_numpy()), auroc(1 - is_as, ab.p_MR.to_numpy())])
        )
    return out


def predict(models, F):
    "The mean probabilities of `models` (each (classes, Baseline)) over the union of their classes (NaN where absent)."
    names = sorted({c for cl, _ in models for c in cl}, key=lambda c: [c for cl, _ in models for c in cl].index(c))
    P = np.zeros((len(F), len(names)))
    n = np.zeros(len(names))
    for cl, m in models:
        Pm = m.predict(F)
        for j, c in enumerate(cl):
            P[:, names.index(c)] += Pm[:, j]
            n[names.index(c)] += 1
    return P / n, names


def loso_row(held: str, model: str, metric: str, value: float, ci, patients: int, **extra) -> dict:
    "One leave-one-source-out row in the shape of sources.json."
    return {
        "protocol": "leave one source out, patient level",
        "train_sources": "the other seven",
        "test_source": held,
        "group": GROUP[held],
        "model": model,
        "metric": metric,
        "value": round(float(value), 4),
        "ci_low": round(float(ci[0]), 4),
        "ci_high": round(float(ci[1]), 4),
        "patients": patients,
        "target": TARGET.get((held, metric), ""),
    } | extra


def vs_naive(m: str, v: float, boot: list, base: list, naive_point: dict) -> dict:
    "Metric `m`'s difference to naive pooling (value `v` against `naive_point`) and its paired 95 % CI."
    lo, hi = np.nanpercentile([b.get(m, np.nan) - a.get(m, np.nan) for b, a in zip(boot, base)], [2.5, 97.5])
    return {
        "diff_vs_naive": round(float(v - naive_point[m]), 4),
        "diff_ci_low": round(float(lo), 4),
        "diff_ci_high": round(float(hi), 4),
    }


def part_loso(man, fs, F, C, cfg, work, levers, n_boot, rng) -> list[dict]:
    "Every held-out source under every lever: rows with paired CIs against naive pooling."
    from heart_nb.splits import present_classes, target_matrix

    src = man.source.to_numpy()
    ok = np.isfinite(F).all(1)
    Fs, Cs = source_standardised(F, C, src)
    rows, tables = [], {}
    for held in SOURCES:
        test = (src == held) & ok
        for lever in levers:
            t0 = time.time()
            train = (src != held) & ok
            if "without_circor" in lever:
                if held == "circor2022":
                    continue
                train &= src != "circor2022"
            X, XC = (Fs, Cs) if lever.startswith("source_stats") else (F, C)
            if lever == "style_mix":
                XC = style_copies(work, man, fs, F, cfg, held)
            subsets = [train]
            if lever == "subset_ensemble":
                subsets = [
                    train & (np.array([DATASET(s) for s in src]) != ds)
                    for ds in ("bmd-hs", "physionet2016", "circor2022")
                ]
                subsets = [s for s in subsets if s.sum() < train.sum()]
            models = []
            for tr in subsets:
                cl = present_classes(man[tr], "multilabel")
                models.append((cl, fit(X, XC, target_matrix(man, cl), tr, cfg)))
            P, names = predict(models, X)
            tables[(held, lever)] = patient_scores(man, P, names, test)
            print(
                f"  {held:18s} {lever:28s} {time.time() - t0:5.0f} s  {metrics(tables[(held, lever)], held, names)}",
                flush=True,
            )
        d0 = tables[(held, "naive")]
        draws = [rng.integers(0, len(d0), len(d0)) for _ in range(n_boot)]
        naive_point = metrics(d0, held, [])
        for lever in levers:
            if (held, lever) not in tables:
                continue
            d = tables[(held, lever)]
            point = metrics(d, held, [c[2:] for c in d.columns if c.startswith("p_")])
            boot = [metrics(d.iloc[b], held, []) for b in draws]
            base = [metrics(d0.iloc[b], held, []) for b in draws]
            for m, v in point.items():
                lo, hi = np.nanpercentile([b.get(m, np.nan) for b in boot], [2.5, 97.5])
                row = loso_row(held, f"baseline ({lever})", m, v, (lo, hi), len(d))
                row["train_sources"] += " without circor2022" if "without_circor" in lever else ""
                if lever != "naive":
                    row |= vs_naive(m, v, boot, base, naive_point)
                rows.append(row)
    return rows


def part_five(man, fs, cfg, work, n_boot, rng, sets=()) -> list[dict]:
    """BMD-HS 5-fold alone and with every other source in training; CirCor 5-fold (the baseline). With `sets` (a
    lever's config fields), only BMD-HS with every other source under the lever, paired against BMD-HS alone."""
    from heart_nb.crossval import cross_validate
    from heart_nb.metrics import auroc

    bm, rest = man[man.source == "bmd-hs"], man[man.source != "bmd-hs"]
    lever, tag = config_with(cfg, list(sets))
    res = {
        "alone": cross_validate(bm, cfg, "baseline", "multilabel", work / "five_bmdhs_alone", features=fs),
        "with_all": cross_validate(
            bm, lever, "baseline", "multilabel", work / f"five_bmdhs_with_all{tag}", features=fs, extra=rest
        ),
    }
    model = "baseline (naive)" + (" " + ", ".join(sets) if sets else "")

    base = res["alone"].level("patient")[0]
    sizes = {k: len(i) for k, i in base.groupby("fold").indices.items()}
    draws = [{k: rng.integers(0, n, n) for k, n in sizes.items()} for _ in range(n_boot)]
    rows = []
    for key, r in res.items():
        if sets and key == "alone":
            continue  # in the file without the lever
        lo, hi = np.percentile([fold_lesion_macro(r, p) for p in draws], [2.5, 97.5])
        rows.append(
            {
                "protocol": "BMD-HS patient-wise 5-fold, patient level",
                "test_source": "bmd-hs",
                "train_sources": "bmd-hs" if key == "alone" else "bmd-hs + every other source",
                "model": "baseline (naive)" if key == "alone" else model,
                "metric": "lesion_macro_auroc",
                "value": round(fold_lesion_macro(r), 4),
                "ci_low": round(float(lo), 4),
                "ci_high": round(float(hi), 4),
            }
        )
    diff = [fold_lesion_macro(res["with_all"], p) - fold_lesion_macro(res["alone"], p) for p in draws]
    lo, hi = np.percentile(diff, [2.5, 97.5])
    rows.append(
        {
            "protocol": "BMD-HS patient-wise 5-fold, patient level",
            "test_source": "bmd-hs",
            "train_sources": "with every other source minus alone",
            "model": model,
            "metric": "lesion_macro_auroc_diff",
            "value": round(fold_lesion_macro(res["with_all"]) - fold_lesion_macro(res["alone"]), 4),
            "ci_low": round(float(lo), 4),
            "ci_high": round(float(hi), 4),
            "target": ">= -0.01",
        }
    )
    if sets:
        return rows
    cc = man[man.source == "circor2022"]
    r = cross_validate(cc, cfg, "baseline", "multilabel", work / "five_circor", features=fs)
    d, Y, P = r.level("patient")
    j = r.classes.index("murmur")
    point = np.mean([auroc(Y[i, j], P[i, j]) for i in d.groupby("fold").indices.values()])
    idx = list(d.groupby("fold").indices.values())
    boot = []
    for _ in range(n_boot):
        picks = [i[rng.integers(0, len(i), len(i))] for i in idx]
        boot.append(np.nanmean([auroc(Y[p, j], P[p, j]) for p in picks]))
    lo, hi = np.nanpercentile(boot, [2.5, 97.5])
    rows.append(
        {
            "protocol": "CirCor patient-wise 5-fold, patient level (one recording each)",
            "test_source": "circor2022",
            "train_sources": "circor2022",
            "model": "baseline (naive)",
            "metric": "murmur_auroc",
            "value": round(float(point), 4),
            "ci_low": round(float(lo), 4),
            "ci_high": round(float(hi), 4),
            "target": ">= 0.90",
        }
    )
    return rows


def nets_folder(work: Path, model: str, cfg, held: str) -> Path:
    "The run folder of `model` trained without source `held` (the adversarial weight in its name when set)."
    adv = f"_adv{cfg.adversarial:g}" if cfg.adversarial else ""
    return work / f"nets_{model.replace('+', '_')}_e{cfg.epochs}{adv}_without_{held.replace('/', '_')}"


def nets_table(man, fs, out: Path, held: str) -> tuple[pd.DataFrame, list]:
    "The patient table of the held-out source `held` under the run in `out`, and the run's classes."
    from heart_nb.metrics import aggregate
    from heart_nb.runs import load_run

    run = load_run(out)
    test = man.source.to_numpy() == held
    sub = fs.select(man[test])
    recs, P = aggregate(run.probabilities(sub.X, sub.row), sub.row)
    Pf = np.full((len(man), len(run.classes)), np.nan)
    Pf[np.flatnonzero(test)[recs]] = P
    return patient_scores(man, Pf, run.classes, test & np.isfinite(Pf).all(1)), run.classes


def part_nets(man, fs, cfg, work, model, held_out, n_boot, rng, save=None) -> list[dict]:
    """The shipped recipe (`train`: baseline + CNN, masked loss, source balance, thresholds on validation) on the
    other seven sources, for each murmur/valve source held out; each run folder is reused when finished, and the rows
    so far are handed to `save` after each source (a long run killed keeps what it finished). With
    cfg.adversarial > 0 (the lever), each row also carries its paired difference to the naive run of the same
    schedule when that run's folder is there."""
    from heart_nb.training import train

    rows = []
    lever = f"adversarial {cfg.adversarial:g}" if cfg.adversarial else "naive"
    for held in held_out:
        out = nets_folder(work, model, cfg, held)
        if not (out / "run.json").exists():
            tr = man[man.source != held].reset_index(drop=True)
            t0 = time.time()
            train(tr, out, cfg, model, features=fs.select(tr), verbose=2, overwrite=False)
            print(f"  trained {out.name} in {time.time() - t0:.0f} s", flush=True)
        d, classes = nets_table(man, fs, out, held)
        point = metrics(d, held, classes)
        draws = [rng.integers(0, len(d), len(d)) for _ in range(n_boot)]
        boot = [metrics(d.iloc[b], held, []) for b in draws]
        naive = nets_folder(work, model, cfg.replace(adversarial=0.0), held)
        d0 = nets_table(man, fs, naive, held)[0] if lever != "naive" and (naive / "run.json").exists() else None
        base = [metrics(d0.iloc[b], held, []) for b in draws] if d0 is not None else None
        naive_point = metrics(d0, held, []) if d0 is not None else {}
        info = json.loads((out / "run.json").read_text())
        for m, v in point.items():
            lo, hi = np.nanpercentile([b.get(m, np.nan) for b in boot], [2.5, 97.5])
            extra = {"train_seconds": info.get("seconds"), "epochs_at_most": cfg.epochs}
            if base is not None:
                extra |= vs_naive(m, v, boot, base, naive_point)
            rows.append(loso_row(held, f"{model} ({lever}, <= {cfg.epochs} epochs)", m, v, (lo, hi), len(d), **extra))
        print(f"  {held}: {point}", flush=True)
        if save:
            save(rows)
    return rows


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="loso", choices=["loso", "five", "nets"])
    ap.add_argument("--model", default="baseline+cnn", help="--part nets: the members to train (the shipped pair)")
    ap.add_argument("--held-out", default="bmd-hs,physionet2016/a,physionet2016/c,circor2022", help="--part nets")
    ap.add_argument("--epochs", type=int, default=0, help="--part nets: at most this many epochs (0: the recipe's)")
    ap.add_argument("--adversarial", type=float, default=0.0, help="--part nets: the source-adversarial head's weight")
    ap.add_argument("--levers", default=",".join(LEVERS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="--part five: a lever's field")
    ap.add_argument("--tag", default="", help="--part loso: sources_loso_loso_TAG.json, no naive rows")
    ap.add_argument("--work", default="bench/_loso")
    ap.add_argument("--boot", type=int, default=500)
    ap.add_argument("--results", default="bench/results")
    args = ap.parse_args()
    if args.set and args.part != "five":
        ap.error(f"--set is for --part five, not --part {args.part}")
    from heart_nb.core import HeartConfig

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cfg = HeartConfig()
    if args.epochs:  # a shorter schedule: the cosine reaches its floor at the last epoch, patience scaled with it
        short = dict(epochs=args.epochs, decay_epochs=args.epochs, warmup_epochs=1, patience=max(2, args.epochs // 3))
        cfg = cfg.replace(**short)
    cfg = cfg.replace(adversarial=args.adversarial)
    t0 = time.time()
    man, fs, F, C = load(work, cfg)
    print(
        f"{len(man)} recordings of {man.source.nunique()} sources, summaries ready: {time.time() - t0:.0f} s",
        flush=True,
    )
    rng = np.random.default_rng(0)
    if args.part == "loso":
        rows = part_loso(man, fs, F, C, cfg, work, args.levers.split(","), args.boot, rng)
        rows = [r for r in rows if not args.tag or r["model"] != "baseline (naive)"]  # naive: in the untagged file
    elif args.part == "five":
        rows = part_five(man, fs, cfg, work, args.boot, rng, args.set)
    tag = args.part + (args.tag and f"_{args.tag}") + config_with(cfg, args.set)[1]
    if args.part == "nets":
        tag = f"nets_{args.model.replace('+', '_')}" + (f"_adv{args.adversarial:g}" if args.adversarial else "")
    out = Path(args.results) / f"sources_loso_{tag}.json"
    if args.part == "nets":
        save = lambda rows: write_rows(out, rows, t0)
        rows = part_nets(man, fs, cfg, work, args.model, args.held_out.split(","), args.boot, rng, save)
    write_rows(out, rows, t0)
    print(pd.DataFrame(rows).drop(columns=["train_sources"]).to_string())
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
