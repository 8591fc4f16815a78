"""Feature-extraction speed and memory on all BMD-HS recordings, side by side in one run.

(a) a plain one-process loop: librosa.load(sr=4000) + librosa.feature.melspectrogram with the config's Mel parameters
    (64 bands, n_fft 256, hop 160 at the defaults)
(b) heart_nb.features.extract_features, cold cache, worker processes
(c) the same from its cache
Each runs in a fresh subprocess, so its peak RSS is its own; numba's first-run JIT is warmed up and every module
imported before the clock starts. Peak RSS is the larger of the process's own and its largest finished child's
(the default fork workers finish with the extraction, so they are counted).
Also (d): (b) on a tenth of the files, for the memory-growth check.

Each of (a)-(d) runs --rounds times (default 3), (a) and (b) alternating; the ratios are taken within a round.

    python bench/features.py [--data ../shared/data/bmd-hs] [--jobs N] [--rounds 3]
    python bench/features.py --rounds 5 | tee bench/results/features.txt        # the figures kept in the repository
"""
import argparse, json, statistics, subprocess, sys, tempfile, textwrap
from pathlib import Path

CHILD = textwrap.dedent('''
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
    from heart_nb.features import extract_features      # imports are not extraction: both sides import before the clock
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
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    print(json.dumps({"mode": mode, "files": len(files), "seconds": dt, "peak_rss_mb": rss / 1024, "n": n}))
''')

def run(mode, data, cache, frac=1.0, jobs=0):
    out = subprocess.run([sys.executable, "-c", CHILD, mode, str(data), str(cache), str(frac), str(jobs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None); ap.add_argument("--jobs", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=3, help="rounds of (a)-(d), each in fresh caches; medians reported")
    a = ap.parse_args()
    from heart_nb.core import find_bmdhs
    data = Path(a.data) if a.data else find_bmdhs()
    if data is None: sys.exit("BMD-HS not found: pass --data or set HEART_NB_BMDHS")
    import datetime, os, platform
    print(f"# bench/features.py --rounds {a.rounds}, {datetime.date.today()}, {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}), "
          f"Python {platform.python_version()}, data {data}")
    rounds = []
    for _ in range(a.rounds):       # (a) and (b) alternate, so a drift in the machine's speed hits both sides alike
        with tempfile.TemporaryDirectory() as c1, tempfile.TemporaryDirectory() as c2:
            rounds.append({"plain": run("plain", data, c1), "cold": run("heart_nb", data, c1, jobs=a.jobs),
                           "warm": run("heart_nb", data, c1, jobs=a.jobs), "tenth": run("heart_nb", data, c2, 0.1, a.jobs)})
    med = lambda f: statistics.median(f(r) for r in rounds)        # median over rounds of a per-round figure
    ratio = lambda r, k: r[k]["seconds"] / r["plain"]["seconds"]
    names = {"plain": "(a) plain librosa loop", "cold": "(b) heart_nb cold", "warm": "(c) heart_nb from cache",
             "tenth": "(d) heart_nb cold, 1/10 of the files"}
    print(f"{len(rounds)} round(s); median seconds, the ratio to (a) of the same round (median, min-max), median peak RSS")
    print(f"{'':40s} {'files':>6s} {'seconds':>8s} {'x (a)':>7s} {'range':>13s} {'peak RSS MB':>12s}")
    for k, name in names.items():
        rs = [ratio(r, k) for r in rounds]
        print(f"{name:40s} {rounds[0][k]['files']:6d} {med(lambda r: r[k]['seconds']):8.2f} {statistics.median(rs):7.3f} "
              f"{min(rs):6.3f}-{max(rs):.3f} {med(lambda r: r[k]['peak_rss_mb']):12.0f}")
    print(f"targets: (b) <= 0.5 x (a): {med(lambda r: ratio(r, 'cold')):.2f}; (c) <= 0.05 x (a): {med(lambda r: ratio(r, 'warm')):.3f}; "
          f"RSS (b) <= 1.5 x RSS (d): {med(lambda r: r['cold']['peak_rss_mb'] / r['tenth']['peak_rss_mb']):.2f}")

if __name__ == "__main__": main()
