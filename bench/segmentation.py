"""S1/S2 segmentation (#33): the learned segmenter against the envelope detector -> bench/results/segmentation.*

    python bench/segmentation.py --ship     # train on CirCor (+ synthetic) -> heart_nb/segmenter.npz
    python bench/segmentation.py            # CirCor patient-wise 5-fold and the synthetic set, side by side
    python bench/segmentation.py --bmdhs    # + what the better cycle buys: BMD-HS baseline 5-fold, paired
    python bench/segmentation.py --grid     # the decoding settings (weight, sd_scale) on out-of-fold posteriors

Protocol: an S1 (S2) counts as found when a detected centre lies within 60 ms of an annotated sound's centre,
matched one to one (nearest first); only detections inside the annotated span of a recording count; F1 pooled
over recordings. Heart rate: the annotated S1 centres' mean interval (intervals within 30 % of their median)
against the detector's own over the same span; "within 5 bpm" is the share of recordings. CirCor: one
recording per patient, so a split by recording is a split by patient (5 folds, seeded). Synthetic: 98 recordings
of every class from synth_heart_sound, 3-20 s, 45-180 bpm, noise 0.01-0.08; truth = each sound's centre.

Training set: CirCor's annotated recordings with at least two S1 (in cross-validation, the training folds' ones)
plus --synthetic N generated recordings of every class (seeds from 1000, never the synthetic test set's), 10 s,
45-180 bpm, whose states the generator knows: the rhythms and murmurs CirCor's children lack (an MS rumble into S1).

--bmdhs: what the better cycle buys the baseline. BMD-HS patient-wise 5-fold (heart_nb.crossval, the baseline,
multilabel), once with the cycle profile read by the learned segmenter and once by the envelope rule (the same
folds and seeds); patient lesion macro-AUROC, mean over folds; paired difference with a 95 % CI (patients
bootstrapped within folds, 500 draws, the same draws for both arms).

Decoding: the learned rows decode with the shipped settings (`Segmenter.weight`, `sd_scale`, `lags`); the
"previous decoding" row decodes the same out-of-fold posteriors as the first shipped segmenter did (weight 1, the
durations' spreads as measured, one cycle length). --grid: the CV's out-of-fold posteriors decoded under each
weight x sd_scale (3 cycle lengths); per fold, the setting that scores best on the other four folds (mean of S1 F1,
S2 F1 and the heart-rate share) is applied to it, and the pooled result is the nested estimate of the choice.
"""

import argparse
import dataclasses
import itertools
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import numpy as np
import pandas as pd
from common import fold_lesion_macro, md, write_rows

CIRCOR = Path(__file__).resolve().parents[2] / "shared/data/circor2022"
TOL = 0.06


def circor(cfg):
    "Every annotated CirCor recording with at least two S1: (name, log-Mel (n_mels, frames), rows)."
    from heart_nb.audio import load_audio
    from heart_nb.features import _db_mel
    from heart_nb.segmenter import read_segmentation

    out = []
    for f in sorted((CIRCOR / "segmentation").glob("*.tsv")):
        rows = read_segmentation(f)
        if (rows[:, 2] == 1).sum() < 2:
            continue  # no beat annotated: nothing to score
        out.append((f.stem, _db_mel(load_audio(CIRCOR / "audio" / f"{f.stem}.flac", cfg), cfg).T, rows))
    return out


def match(pred, true) -> tuple[int, int, int]:
    "True positives, false positives, false negatives of centres `pred` against `true`, one to one within TOL."
    pairs = sorted((abs(p - t), i, j) for i, p in enumerate(pred) for j, t in enumerate(true) if abs(p - t) <= TOL)
    used_p, used_t = set(), set()
    for _, i, j in pairs:
        if i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
    return len(used_p), len(pred) - len(used_p), len(true) - len(used_p)


def rate(s1) -> float:
    from heart_nb.segmenter import _rate

    return _rate(np.sort(np.asarray(s1)), np.nan)


def score(s1, s2, rows) -> dict:
    "Counts and heart rates of detected centres `s1`, `s2` against segmentation `rows`, inside its annotated span."
    from heart_nb.segmenter import centres

    ann = rows[rows[:, 2] > 0]
    lo, hi = ann[0, 0], ann[-1, 1]
    inside = lambda x: np.asarray(x)[(np.asarray(x) >= lo) & (np.asarray(x) <= hi)]
    out = {}
    for k, det, st in (("s1", s1, 1), ("s2", s2, 3)):
        out[k] = match(inside(det), centres(rows, st))
    out["hr_true"], out["hr"] = rate(centres(rows, 1)), rate(inside(s1))
    return out


def envelope_detector(S, cfg):
    "The envelope detector's S1/S2 (its own sound times) from log-Mel `S`, the envelope the cycle profile builds."
    from heart_nb.cycle import ENV_SR, heart_cycle
    from heart_nb.features import band_centres

    t = np.arange(S.shape[1]) * cfg.hop_length / cfg.sr
    amp = np.sqrt(np.exp(S[band_centres(cfg) <= 400] * (np.log(10) / 10)).sum(0)) + 1e-8  # 25-400 Hz, per frame
    te = np.arange(int(t[-1] * ENV_SR) + 1) / ENV_SR
    hc = heart_cycle(None, cfg.sr, np.exp(np.interp(te, t, np.log(amp))))
    return hc.s1, hc.s2


def summary(rows: list[dict], detector: str, data: str) -> dict:
    f1 = lambda c: 2 * c[0] / max(1, 2 * c[0] + c[1] + c[2])
    tot = {k: np.sum([r[k] for r in rows], 0) for k in ("s1", "s2")}
    err = np.array([abs(r["hr"] - r["hr_true"]) for r in rows])
    return {
        "data": data,
        "detector": detector,
        "recordings": len(rows),
        "s1_f1": round(f1(tot["s1"]), 4),
        "s2_f1": round(f1(tot["s2"]), 4),
        "hr_within_5bpm": round(float(np.mean(np.nan_to_num(err, nan=99) <= 5)), 4),
        "hr_median_abs_error_bpm": round(float(np.nanmedian(err)), 2),
    }


def synthetic(n: int = 98, cfg=None):
    "Synthetic recordings of every class: (name, log-Mel, rows with the true centres as 20 ms S1/S2 segments)."
    from heart_nb.audio import band_pass
    from heart_nb.features import _db_mel
    from heart_nb.synthetic import synth_heart_sound

    out = []
    for seed in range(n):
        rng = np.random.default_rng(seed)
        lab = ["N", "AS", "MR", "AR", "MS", "PS", "TR"][seed % 7]
        hr = rng.uniform(45, 120) if seed % 3 else rng.uniform(120, 180)
        dur = float(rng.choice([3.0, 10.0, 20.0]))
        kw = dict(duration_s=dur, seed=seed, heart_rate=hr, noise=rng.uniform(0.01, 0.08))
        y, ev = synth_heart_sound(lab, events=True, **kw)
        c1, c2 = ev["s1"] + 0.05, ev["s2"] + 0.035  # the bursts' centres (100 and 70 ms long)
        rows = np.array(sorted([[c - 0.01, c + 0.01, 1] for c in c1] + [[c - 0.01, c + 0.01, 3] for c in c2]))
        rows = np.vstack([[0, 0, 0], rows, [kw["duration_s"]] * 2 + [0]])  # the whole recording is the span
        rows[0, 2] = rows[-1, 2] = 4  # (span ends)
        out.append((f"synthetic_{seed}_{lab}", _db_mel(band_pass(y, cfg), cfg).T, rows))
    return out


def synthetic_training(n: int, cfg) -> list:
    "`n` generated recordings of every class with their true states: (log-Mel, rows), seeds 1000 on."
    from heart_nb.audio import band_pass
    from heart_nb.features import _db_mel
    from heart_nb.synthetic import synth_heart_sound

    out = []
    for k in range(n):
        rng = np.random.default_rng(1000 + k)
        lab, dur = ["N", "AS", "MR", "AR", "MS", "PS", "TR"][k % 7], 10.0
        kw = dict(heart_rate=rng.uniform(45, 180), noise=rng.uniform(0.01, 0.08))
        y, ev = synth_heart_sound(lab, duration_s=dur, seed=1000 + k, events=True, **kw)
        nxt = lambda t, arr: min([x for x in arr if x > t], default=dur)
        rows = [[a, a + 0.1, 1] for a in ev["s1"]] + [[a, a + 0.07, 3] for a in ev["s2"]]
        rows += [[a + 0.1, nxt(a, ev["s2"]), 2] for a in ev["s1"]] + [[a + 0.07, nxt(a, ev["s1"]), 4] for a in ev["s2"]]
        rows = np.array(sorted(r for r in rows if r[1] > r[0]))
        rows[:, 1] = np.minimum(rows[:, 1], dur)
        out.append((_db_mel(band_pass(y, cfg), cfg).T, rows))
    return out


def bmdhs_paired(cfg, work: Path, n_boot: int = 500) -> list[dict]:
    "BMD-HS baseline 5-fold with the cycle profile from the learned segmenter and from the envelope rule, paired."
    import shutil

    import heart_nb.cycle as cyc
    from heart_nb.cache import extract_features
    from heart_nb.core import find_bmdhs
    from heart_nb.crossval import cross_validate
    from heart_nb.mapping import map_dataset

    data = find_bmdhs()
    work.mkdir(parents=True, exist_ok=True)
    man, _ = map_dataset(data / "BMD-HS_Data_Annotation.xlsx", data / "audio", work / "manifest.csv")
    fs = extract_features(man, cfg, cache_dir=work / "cache", progress=False)
    learned = cyc.segmenter
    res = {}
    for arm in ("learned", "envelope"):
        cyc.segmenter = learned if arm == "learned" else (lambda: type("NoFit", (), {"fits": lambda self, c: False})())
        shutil.rmtree(work / f"cv_{arm}", ignore_errors=True)
        res[arm] = cross_validate(man, cfg, "baseline", "multilabel", work / f"cv_{arm}", features=fs, verbose=0)
    cyc.segmenter = learned
    rng = np.random.default_rng(0)

    sizes = {k: len(i) for k, i in res["learned"].level("patient")[0].groupby("fold").indices.items()}
    draws = [{k: rng.integers(0, n, n) for k, n in sizes.items()} for _ in range(n_boot)]
    rows = []
    for arm, r in res.items():
        lo, hi = np.percentile([fold_lesion_macro(r, p) for p in draws], [2.5, 97.5])
        rows.append(
            {"cycle": arm, "metric": "lesion_macro_auroc", "value": round(fold_lesion_macro(r), 4), "ci": [lo, hi]}
        )
    diff = [fold_lesion_macro(res["learned"], p) - fold_lesion_macro(res["envelope"], p) for p in draws]
    lo, hi = np.percentile(diff, [2.5, 97.5])
    point = fold_lesion_macro(res["learned"]) - fold_lesion_macro(res["envelope"])
    rows.append(
        {"cycle": "learned - envelope", "metric": "lesion_macro_auroc_diff", "value": round(point, 4), "ci": [lo, hi]}
    )
    for r in rows:
        r["ci"] = [round(float(x), 4) for x in r["ci"]]
        r["protocol"] = f"BMD-HS patient-wise {cfg.folds}-fold, patient level, baseline (multilabel)"
    return rows


PREVIOUS = "learned, previous decoding"


def decoding_grid(oof: list, data: list, out: Path, t0: float) -> None:
    "The out-of-fold posteriors decoded under each weight x sd_scale; the nested choice per fold -> *_grid.json/.md."

    def scored(seg, P, rows) -> dict:
        sg = seg.decode(P)
        return score(sg.s1, sg.s2, rows)

    def merit(rows) -> float:
        s = summary(rows, "", "")
        return (s["s1_f1"] + s["s2_f1"] + s["hr_within_5bpm"]) / 3

    grid = list(itertools.product((0.6, 0.8, 1.0), (0.55, 0.7, 1.0)))
    res = {}
    for w, sc in grid:
        res[w, sc] = [(k, scored(dataclasses.replace(s, weight=w, sd_scale=sc), P, data[i][2])) for k, s, i, P in oof]
        print(f"weight {w}, sd_scale {sc}: {time.time() - t0:.0f} s", flush=True)
    rows = [{"weight": w, "sd_scale": sc} | summary([r for _, r in res[w, sc]], "learned", "") for w, sc in grid]
    folds = sorted({k for k, *_ in oof})
    picks = [max(grid, key=lambda g: merit([r for kk, r in res[g] if kk != k])) for k in folds]
    nested = summary([r for k, g in zip(folds, picks) for kk, r in res[g] if kk == k], "learned", "")
    rows.append({"weight": "nested", "sd_scale": "nested"} | nested | {"picks": [list(g) for g in picks]})
    write_rows(out / "segmentation_grid.json", rows, t0)
    df = pd.DataFrame(rows).drop(columns=["data", "detector"]).fillna("")
    (out / "segmentation_grid.md").write_text(
        "# Decoding settings of the learned segmenter, on CirCor's out-of-fold posteriors\n\n"
        "`python bench/segmentation.py --grid`: the patient-wise 5-fold posteriors decoded under each setting (3 "
        "cycle lengths tried); the last row applies to each fold the setting that scored best on the other four "
        f"(mean of S1 F1, S2 F1 and heart rate within 5 bpm).\n\n{md(df)}\n"
    )
    print(df.to_string())


def write_md(out: Path) -> None:
    "segmentation.md from segmentation.json (and segmentation_bmdhs.json, when there)."
    seg = json.loads((out / "segmentation.json").read_text())
    text = (
        "# S1/S2 segmentation: the learned segmenter against the envelope rule\n\n"
        "F1 within 60 ms of annotated centres (one to one, inside the annotated span), pooled over recordings; heart "
        "rate within 5 bpm: share of recordings. `python bench/segmentation.py` "
        f"({seg['seconds'] // 60} min, {seg['machine']}).\n\n" + md(pd.DataFrame(seg["rows"]).fillna("")) + "\n"
    )
    if (out / "segmentation_bmdhs.json").exists():
        b = json.loads((out / "segmentation_bmdhs.json").read_text())
        rows = [
            {"cycle": r["cycle"], "metric": r["metric"], "value": r["value"], "95 % CI": r["ci"]} for r in b["rows"]
        ]
        text += (
            f"\n## What the better cycle buys the baseline\n\n{b['rows'][0]['protocol']}; the cycle profile read "
            "by the learned segmenter or by the envelope rule, the same folds; paired difference, patients resampled "
            f"within folds (500 draws). `python bench/segmentation.py --bmdhs` ({b['seconds'] // 60} min).\n\n"
            + md(pd.DataFrame(rows))
            + "\n"
        )
    (out / "segmentation.md").write_text(text)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ship", action="store_true", help="train on every annotated recording, write the package's file")
    ap.add_argument("--bmdhs", action="store_true", help="also the BMD-HS baseline 5-fold, paired (minutes)")
    ap.add_argument("--replot", action="store_true", help="segmentation.md again from the JSON files")
    ap.add_argument("--grid", action="store_true", help="only the decoding settings' grid, nested (-> *_grid.*)")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--synthetic", type=int, default=350, help="generated recordings added to every training set")
    ap.add_argument("--work", default="bench/_segmentation", help="--bmdhs: its manifest, feature cache and CV runs")
    ap.add_argument("--results", default="bench/results")
    args = ap.parse_args()
    from heart_nb.core import HeartConfig
    from heart_nb.segmenter import SEGMENTER_FILE, fit_segmenter, save_segmenter, segmenter

    cfg, t0 = HeartConfig(), time.time()
    if args.replot:
        return write_md(Path(args.results))
    data = circor(cfg)
    print(f"{len(data)} annotated CirCor recordings read: {time.time() - t0:.0f} s", flush=True)
    if args.bmdhs:
        rows = bmdhs_paired(cfg, Path(args.work))
        print(pd.DataFrame(rows).to_string())
        write_rows(Path(args.results) / "segmentation_bmdhs.json", rows, t0)
        write_md(Path(args.results))
        return
    syn_train = synthetic_training(args.synthetic, cfg)
    if args.ship:
        seg = fit_segmenter([(S, r) for _, S, r in data] + syn_train, cfg)
        save_segmenter(seg, SEGMENTER_FILE)
        kib = SEGMENTER_FILE.stat().st_size // 1024
        print(f"wrote {SEGMENTER_FILE} ({kib} KiB): {seg.info}, {time.time() - t0:.0f} s")
        return
    rng = np.random.default_rng(0)
    folds = np.array_split(rng.permutation(len(data)), args.folds)
    per = {"learned": [], PREVIOUS: [], "envelope": []}
    oof = []  # (fold, its segmenter, recording index, posteriors)
    for k, te in enumerate(folds):
        tr = np.setdiff1d(np.arange(len(data)), te)
        seg = fit_segmenter([data[i][1:] for i in tr] + syn_train, cfg)
        before = dataclasses.replace(seg, weight=1.0, sd_scale=1.0, lags=1)
        for i in te:
            name, S, rows = data[i]
            P = seg.posteriors(S)
            oof.append((k, seg, i, P))
            if args.grid:
                continue  # the grid decodes these posteriors itself
            for d, s in (("learned", seg), (PREVIOUS, before)):
                sg = s.decode(P)
                per[d].append({"name": name, "fold": k} | score(sg.s1, sg.s2, rows))
            per["envelope"].append({"name": name, "fold": k} | score(*envelope_detector(S, cfg), rows))
        print(f"fold {k + 1}/{args.folds}: {time.time() - t0:.0f} s", flush=True)
    if args.grid:
        return decoding_grid(oof, data, Path(args.results), t0)
    table = [summary(per[d], d, f"CirCor patient-wise {args.folds}-fold") for d in per]
    note = "the envelope rule on the cycle profile's 25-400 Hz log-Mel amplitude"
    syn = synthetic(cfg=cfg)
    shipped = segmenter()
    learned = lambda S: (lambda sg: (sg.s1, sg.s2))(shipped(S))
    for d, det in (("learned", learned), ("envelope", lambda S: envelope_detector(S, cfg))):
        table.append(summary([score(*det(S), rows) for _, S, rows in syn], d, "synthetic (shipped segmenter)"))
    for r in table:
        r["note"] = note if r["detector"] == "envelope" else f"trained with {args.synthetic} generated recordings"
        r["note"] += "; weight 1, spreads as measured, one cycle length" if r["detector"] == PREVIOUS else ""
    df = pd.DataFrame(table)
    print(df.to_string())
    out = Path(args.results)
    write_rows(out / "segmentation.json", table, t0, synthetic_training=args.synthetic, per_recording=per["learned"])
    write_md(out)
    print(f"wrote {out / 'segmentation.json'}, segmentation.md")


if __name__ == "__main__":
    sys.exit(main())
