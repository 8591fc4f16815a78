"""Scale-out bench: does extraction and training keep its throughput, and its memory flat, as the dataset grows?

Generated datasets of 1x, 4x and 10x BMD-HS's size (872 recordings of 20 s at 4 kHz, 16-bit WAV; made by
heart_nb's synthetic generator into a temporary folder, deleted afterwards, never stored) go through, each in a
fresh process so that one's memory cannot hide in another's:

- extraction: `extract_features` into an empty cache (the default joblib workers); throughput = recordings per
  second of the call, after a warm-up call on 16 of the recordings into a throw-away cache (the imports and the
  first fork of a fresh process are start-up, measured by bench/features.py, not throughput); peak RSS = the
  larger of the calling process's and its largest worker's high-water mark;
- training: one epoch of the CNN (`fit_model`, the shipped recipe) reading the windows from that cache as
  `FeatureSet.windows` (85 % of the recordings train, 15 % validate); throughput = training windows per second
  from the end of batch 20 to the epoch's last training batch (tracing and the first batches left out); peak RSS =
  the process's high-water mark.

It prints a table, then, last, one JSON line exactly:
{"extract_throughput_ratio": tput10x/tput1x, "extract_rss_ratio": rss10x/rss1x, "train_throughput_ratio": ...,
 "train_rss_ratio": ...}. Targets (issue #14): throughput ratios within 0.8-1.2, RSS ratios <= 1.5.

    python bench/scale.py [--scales 1,4,10] [--out bench/results/scale.txt] [--train-source memory]
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BMDHS = 872  # recordings in BMD-HS
SECONDS = 20.0  # about a BMD-HS recording's length


def peak_rss_mb() -> float:
    "This process's resident-memory high-water mark (VmHWM), in MB."
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def generate(folder: Path, n: int) -> Path:
    "n synthetic recordings (all seven classes, 8 per patient) and their manifest; returns the manifest's path."
    import pandas as pd
    import soundfile as sf
    from joblib import Parallel, delayed

    from heart_nb.core import CLASSES
    from heart_nb.synthetic import synth_heart_sound

    def one(i: int) -> dict:
        label = CLASSES[(i // 8) % len(CLASSES)]
        p = folder / f"{label}_{i // 8:05d}_{i % 8}.wav"
        sf.write(p, synth_heart_sound(label, duration_s=SECONDS, seed=i), 4000, subtype="PCM_16")
        return {
            "path": str(p),
            "patient_id": f"{i // 8:05d}",
            "recording_id": p.stem,
            "label": label,
            **{c: int(c == label) for c in CLASSES},
        }

    folder.mkdir(parents=True, exist_ok=True)
    rows = Parallel(n_jobs=os.cpu_count(), batch_size=64)(delayed(one)(i) for i in range(n))
    pd.DataFrame(rows).to_csv(folder / "manifest.csv", index=False)
    return folder / "manifest.csv"


def child_extract(manifest: str, cache: str) -> dict:
    import pandas as pd

    from heart_nb.cache import extract_features
    from heart_nb.core import HeartConfig

    man = pd.read_csv(manifest, dtype={"patient_id": str})
    with tempfile.TemporaryDirectory() as warm:  # imports and the first fork, once per process: not throughput
        extract_features(man.iloc[-16:], HeartConfig(), n_jobs=2, cache_dir=warm, progress=False)
    t0 = time.perf_counter()
    fs = extract_features(man, HeartConfig(), cache_dir=cache, progress=False)
    dt = time.perf_counter() - t0
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {
        "recordings": len(man),
        "windows": len(fs.X),
        "seconds": dt,
        "throughput": len(man) / dt,
        "rss_mb": max(peak_rss_mb(), workers),
        "caller_rss_mb": peak_rss_mb(),
        "worker_rss_mb": workers,
    }


def child_train(manifest: str, cache: str, work: str, source: str = "stream") -> dict:
    import keras
    import numpy as np
    import pandas as pd

    from heart_nb.cache import extract_features
    from heart_nb.core import HeartConfig
    from heart_nb.splits import present_classes, target_matrix
    from heart_nb.training import fit_model

    cfg = HeartConfig()
    man = pd.read_csv(manifest, dtype={"patient_id": str})
    fs = extract_features(man, cfg, cache_dir=cache, progress=False)  # warm: the memory map only
    pid = man.patient_id.astype(int).to_numpy()
    tr, va = pid % 20 >= 3, pid % 20 < 3  # 85 % / 15 % of the patients
    Y = target_matrix(man, present_classes(man))
    wtr, wva = np.isin(fs.row, np.flatnonzero(tr)), np.isin(fs.row, np.flatnonzero(va))
    marks = {}

    class Clock(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 19:
                marks["start"] = (batch, time.perf_counter())
            marks["end"] = (batch, time.perf_counter())

    Xtr, Xva = fs.windows(tr), fs.windows(va)
    if source == "memory":
        Xtr, Xva = np.asarray(Xtr), np.asarray(Xva)  # the old path, for comparison
    fit_model(
        "cnn",
        Xtr,
        Y[fs.row[wtr]],
        Xva,
        Y[fs.row[wva]],
        cfg,
        "multilabel",
        work,
        groups=fs.row[wtr],
        epochs=1,
        callbacks=[Clock()],
    )
    (b0, t0), (b1, t1) = marks["start"], marks["end"]
    n = min((b1 + 1) * cfg.batch_size, int(wtr.sum())) - (b0 + 1) * cfg.batch_size
    return {
        "windows": int(wtr.sum()),
        "val_windows": int(wva.sum()),
        "seconds": t1 - t0,
        "throughput": n / (t1 - t0),
        "rss_mb": peak_rss_mb(),
    }


def run_child(*args) -> dict:
    "Run this script as a child (`--child ...`) and read the JSON line it prints last."
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONWARNINGS": "ignore"}
    r = subprocess.run([sys.executable, __file__, "--child", *map(str, args)], capture_output=True, text=True, env=env)
    if r.returncode:
        sys.exit(f"scale: child {args[0]} failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--scales",
        default="1,4,10",
        help="dataset sizes as multiples of BMD-HS (the first and the last give the ratios)",
    )
    ap.add_argument("--out", default=None, help="also write the printed report here")
    ap.add_argument(
        "--train-source",
        choices=["stream", "memory"],
        default="stream",
        help="memory: training windows read into memory first (the path before streaming), to compare",
    )
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        fn = {"extract": child_extract, "train": child_train}[a.child[0]]
        print(json.dumps(fn(*a.child[1:])))
        return
    scales = [float(s) for s in a.scales.split(",")]
    work = Path(tempfile.mkdtemp(prefix="heart_nb_scale_"))
    lines, res = [], {}
    say = lambda s: (print(s, flush=True), lines.append(s))
    say(
        f"# bench/scale.py --scales {a.scales} --train-source {a.train_source}, {time.strftime('%Y-%m-%d')}, "
        f"{os.cpu_count()} CPU cores, Python {sys.version.split()[0]}; synthetic recordings of {SECONDS:g} s at 4 kHz, "
        f"{BMDHS} = 1x (BMD-HS)"
    )
    say(
        f"{'scale':>6} {'recordings':>10} {'generate s':>10} | {'extract s':>9} {'rec/s':>7} {'peak RSS MB':>11} | "
        f"{'train windows':>13} {'windows/s':>9} {'peak RSS MB':>11}"
    )
    try:
        for s in scales:
            n = int(round(BMDHS * s))
            d = work / f"x{s:g}"
            t0 = time.perf_counter()
            manifest = generate(d / "audio", n)
            gen = time.perf_counter() - t0
            ex = run_child("extract", manifest, d / "cache")
            trn = run_child("train", manifest, d / "cache", d / "fit", a.train_source)
            res[s] = (ex, trn)
            say(
                f"{s:>5g}x {n:>10} {gen:>10.1f} | {ex['seconds']:>9.1f} {ex['throughput']:>7.1f} "
                f"{ex['rss_mb']:>11.0f} | {trn['windows']:>13} {trn['throughput']:>9.1f} {trn['rss_mb']:>11.0f}"
            )
            shutil.rmtree(d / "audio")  # the recordings are not kept
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (e1, t1), (e10, t10) = res[scales[0]], res[scales[-1]]
    say(
        f"extraction peak RSS: caller {e1['caller_rss_mb']:.0f} -> {e10['caller_rss_mb']:.0f} MB, largest worker "
        f"{e1['worker_rss_mb']:.0f} -> {e10['worker_rss_mb']:.0f} MB"
    )
    say("targets (#14): throughput ratios within 0.8-1.2, RSS ratios <= 1.5")
    say(
        json.dumps(
            {
                "extract_throughput_ratio": round(e10["throughput"] / e1["throughput"], 3),
                "extract_rss_ratio": round(e10["rss_mb"] / e1["rss_mb"], 3),
                "train_throughput_ratio": round(t10["throughput"] / t1["throughput"], 3),
                "train_rss_ratio": round(t10["rss_mb"] / t1["rss_mb"], 3),
            }
        )
    )
    if a.out:
        Path(a.out).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
