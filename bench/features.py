"""Feature-extraction speed and memory on all BMD-HS recordings, side by side in one run.

(a) a plain one-process loop: librosa.load(sr=4000) + librosa.feature.melspectrogram with the config's Mel parameters
    (64 bands, n_fft 256, hop 160 at the defaults)
(b) heart_nb.cache.extract_features, cold cache, worker processes
(c) the same from its cache
Each runs in a fresh subprocess, so its peak RSS is its own; numba's first-run JIT is warmed up and every module
imported before the clock starts. Peak RSS is the larger of the process's own and its largest finished child's
(the default fork workers finish with the extraction, so they are counted).
Also (d): (b) on a tenth of the files, for the memory-growth check.

Whole processes, as a user meets them (wall clock of the command, start-up and imports included):
(e) `heart-nb features --manifest M --cache C`, cold cache;  (f) the same again, warm cache;
(g) the plain loop of (a) as its own script (`python -c`: import librosa, then the loop).
#12's start-up targets: (e) <= 0.5 x and (f) <= 0.15 x the plain loop, reported against (a) (the loop's own time,
as the issue measured it) and against (g) (whole process against whole process).

Each of (a)-(d) runs --rounds times (default 3), (a) and (b) alternating; the ratios are taken within a round.

    python bench/features.py [--data ../shared/data/bmd-hs] [--jobs N] [--rounds 3]
    python bench/features.py --rounds 5 | tee bench/results/features.txt        # the figures kept in the repository
"""

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

CHILD = textwrap.dedent("""
    import json, resource, sys, time, warnings
    warnings.simplefilter("ignore")
    import numpy as np, librosa
    mode, data, cache, frac, jobs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), int(sys.argv[5])
    from pathlib import Path
    files = sorted(Path(data, "audio").glob("*.wav"))
    files = files[: max(1, int(len(files) * frac))]
    import pandas as pd
    from heart_nb.core import HeartConfig
    cfg = HeartConfig(); mel = dict(sr=cfg.sr, n_fft=cfg.n_fft, hop_length=cfg.hop_length, n_mels=cfg.n_mels)
    y, _ = librosa.load(files[0], sr=cfg.sr); librosa.feature.melspectrogram(y=y, **mel)      # JIT warm-up
    from heart_nb.cache import extract_features# imports are not extraction: both sides import before the clock
    t = time.perf_counter()
    if mode == "plain":
        n = 0
        for f in files:
            y, _ = librosa.load(f, sr=cfg.sr)
            n += librosa.feature.melspectrogram(y=y, **mel).shape[1]
    else:
        fs = extract_features(pd.DataFrame({"path": [str(f) for f in files]}), HeartConfig(), n_jobs=jobs or None,
                              cache_dir=cache, progress=False)
        n = len(fs.X)
    dt = time.perf_counter() - t
    rss = max(resource.getrusage(who).ru_maxrss for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(json.dumps({"mode": mode, "files": len(files), "seconds": dt, "peak_rss_mb": rss / 1024, "n": n}))
""")

PLAIN = textwrap.dedent("""
    import sys, warnings
    warnings.simplefilter("ignore")
    from pathlib import Path
    import librosa
    sr, n_fft, hop, n_mels = 4000, int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
    n = 0
    for f in sorted(Path(sys.argv[1], "audio").glob("*.wav")):
        y, _ = librosa.load(f, sr=sr)
        n += librosa.feature.melspectrogram(y=y, sr=sr, n_fft=n_fft, hop_length=hop, n_mels=n_mels).shape[1]
""")


def wall(cmd) -> float:
    "Seconds the command `cmd` takes, start to exit."
    t = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    return time.perf_counter() - t


def run(mode, data, cache, frac=1.0, jobs=0):
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(data), str(cache), str(frac), str(jobs)],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (a)-(d), each in fresh caches; medians reported")
    a = ap.parse_args()
    from heart_nb.core import find_bmdhs

    data = Path(a.data) if a.data else find_bmdhs()
    if data is None:
        sys.exit("BMD-HS not found: pass --data or set HEART_NB_BMDHS")
    import datetime
    import os
    import platform

    print(
        f"# bench/features.py --rounds {a.rounds}, {datetime.date.today()}, {os.cpu_count()} CPU cores "
        f"({platform.processor() or platform.machine()}), "
        f"Python {platform.python_version()}, data {data}"
    )
    from heart_nb.core import HeartConfig

    cfg = HeartConfig()
    cli = [shutil.which("heart-nb") or sys.exit("the heart-nb command is not on PATH")]
    work = Path(tempfile.mkdtemp())
    man = work / "manifest.csv"
    subprocess.run(
        [*cli, "map", "--annotations", data / "BMD-HS_Data_Annotation.xlsx", "--audio", data / "audio", "--out", man],
        capture_output=True,
        check=True,
    )
    rounds = []
    for _ in range(a.rounds):  # (a) and (b) alternate, so a drift in the machine's speed hits both sides alike
        with (
            tempfile.TemporaryDirectory() as c1,
            tempfile.TemporaryDirectory() as c2,
            tempfile.TemporaryDirectory() as c3,
        ):
            r = {
                "plain": run("plain", data, c1),
                "cold": run("heart_nb", data, c1, jobs=a.jobs),
                "warm": run("heart_nb", data, c1, jobs=a.jobs),
                "tenth": run("heart_nb", data, c2, 0.1, a.jobs),
            }
            feat = [*cli, "features", "--manifest", man, "--cache", c3] + (["--jobs", str(a.jobs)] if a.jobs else [])
            r["proc_plain"] = wall(
                [sys.executable, "-c", PLAIN, data, str(cfg.n_fft), str(cfg.hop_length), str(cfg.n_mels)]
            )
            r["proc_cold"] = wall(feat)
            r["proc_warm"] = wall(feat)
            rounds.append(r)
    med = lambda f: statistics.median(f(r) for r in rounds)  # median over rounds of a per-round figure
    ratio = lambda r, k: r[k]["seconds"] / r["plain"]["seconds"]
    names = {
        "plain": "(a) plain librosa loop",
        "cold": "(b) heart_nb cold",
        "warm": "(c) heart_nb from cache",
        "tenth": "(d) heart_nb cold, 1/10 of the files",
    }
    print(
        f"{len(rounds)} round(s); median seconds, the ratio to (a) of the same round (median, min-max), median peak RSS"
    )
    print(f"{'':40s} {'files':>6s} {'seconds':>8s} {'x (a)':>7s} {'range':>13s} {'peak RSS MB':>12s}")
    for k, name in names.items():
        rs = [ratio(r, k) for r in rounds]
        print(
            f"{name:40s} {rounds[0][k]['files']:6d} {med(lambda r: r[k]['seconds']):8.2f} {statistics.median(rs):7.3f} "
            f"{min(rs):6.3f}-{max(rs):.3f} {med(lambda r: r[k]['peak_rss_mb']):12.0f}"
        )
    print("whole processes (wall seconds, median; ratio to (a) and to (g) within each round, median):")
    for k, name in (
        ("proc_cold", "(e) heart-nb features, cold cache"),
        ("proc_warm", "(f) heart-nb features, warm cache"),
        ("proc_plain", "(g) the plain loop as a script"),
    ):
        va = statistics.median(r[k] / r["plain"]["seconds"] for r in rounds)
        vg = statistics.median(r[k] / r["proc_plain"] for r in rounds)
        print(f"{name:40s} {med(lambda r: r[k]):8.2f} s   x (a) {va:6.3f}   x (g) {vg:6.3f}")
    pa = lambda k: med(lambda r: r[k] / r["plain"]["seconds"])
    pg = lambda k: med(lambda r: r[k] / r["proc_plain"])
    print(
        f"start-up targets (#12): (e) <= 0.5 x: {pa('proc_cold'):.2f} x (a), {pg('proc_cold'):.2f} x (g); "
        f"(f) <= 0.15 x: {pa('proc_warm'):.2f} x (a), {pg('proc_warm'):.3f} x (g)"
    )
    print(
        f"targets: (b) <= 0.5 x (a): {med(lambda r: ratio(r, 'cold')):.2f}; (c) <= 0.05 x (a): "
        f"{med(lambda r: ratio(r, 'warm')):.3f}; "
        f"RSS (b) <= 1.5 x RSS (d): {med(lambda r: r['cold']['peak_rss_mb'] / r['tenth']['peak_rss_mb']):.2f}"
    )


if __name__ == "__main__":
    main()
