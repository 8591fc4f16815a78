"""Training throughput on real BMD-HS windows: the package's training loop against a bare `model.fit`, side by side.

For the CNN and the CRNN at the shipped configuration (`HeartConfig()`), in one process:

(loop) `heart_nb.training.fit_model`, the one training recipe, unchanged: the `PyDataset` that draws k windows per
       recording, augments and standardises every batch, with sample weights, the learning-rate schedule,
       early stopping, CSV log and `BackupAndRestore`.
(bare) `model.fit` of the same architecture on the same number of in-memory, already standardised windows, with
       sample weights and the same batch size: the speed of the model itself.
Both are timed per epoch, from the epoch's start until the loop's validation starts (the bare fit has none: until
its epoch ends), so the end of an epoch's data pipeline counts (Keras's enqueuer waited 0.1 s there: until
2026-12-05 this bench stopped at the last batch and missed it); the validation pass is not training, and neither is
`fit`'s own set-up before the epoch.

The two alternate: after each loop epoch, one bare epoch runs (from a callback), so drifts of this machine's speed
hit both alike; the first epoch of each (tracing, warm-up) is dropped and medians are reported. The overhead is
bare / loop of the medians, and also round by round (each loop epoch against the bare epoch right after it): the
median of those ratios with a 95 % CI from 2,000 bootstrap resamples of the rounds, since a figure near a target
of 1.10 moves by a few hundredths from one run to the next on this kind of machine.

FLOPs per window are counted from the layers (convolutions, dense and LSTM matrix products; forward x 3 for
forward + backward); `peak_gflops_per_s` is the best of several float32 matrix products (2048 x 2048) through
the same Keras backend, measured in the same run.

    python bench/training.py [--quick] [--data ../shared/data/bmd-hs] [--rounds 6] [--models cnn,crnn] [--profile]
    python bench/training.py --ab TF_ENABLE_ONEDNN_OPTS=0 [--pairs 3] [--models cnn,crnn]
    python bench/training.py --ab=--block=keras | --ab=--block=fused [--pairs 3] [--models cnn,crnn]
    python bench/training.py --ab=--jit=on | --ab=--set=batch_size=64 [--pairs 3] [--models cnn,crnn]
    python bench/training.py --ab TF_NUM_INTRAOP_THREADS=1 --together 2 [--pairs 3] [--models cnn,crnn]

--ab KEY=VALUE: a setting that only a fresh process can take (an environment variable TensorFlow reads at import),
against the package's default, side by side: --pairs pairs of child processes, alternating (default, then KEY=VALUE),
each running this bench with one timed round per model (--ab-rounds N: N rounds, their median). --ab=--FLAG=VALUE:
the same, with this bench's own flag given to the other child instead of an environment variable. Per model it prints
the median windows/s of the loop and of the bare fit under each, their ratio (default / KEY=VALUE), and each side's
share of its own matmul peak, measured in its own process (a setting may speed the matrix product too).

--together N (with --ab): the setting's side is N child processes at once, e.g. two models trained side by side on
one core each (TF_NUM_INTRAOP_THREADS=1, as two folds of a cross-validation could be) against one on both cores:
their windows/s are summed, and their share is of the default's matmul peak in the same pair.

--set KEY=VALUE: a HeartConfig field changed (repeatable; one in an --ab). --jit on: every model compiled with XLA
(`jit_compile=True`), the loop's and the bare fit's alike.

--block NAME: the models built with another convolution block of bench/common.BLOCKS, for the other side of an
--ab. keras: the block before the fused batch normalisation (Keras's own batch normalisation, the ReLU before the
max-pool; the same function and weights). fused: the norm before the pool in every model (the CNN before it pooled
first; the CRNN's own). pool_first: the pool before the norm in every model (the CNN's own; the CRNN's a lever that
changes the function, kept only if bench/accuracy.py --block pool_first holds the CV's accuracy).

--profile: where an epoch's time goes, each stage timed alone on the same batches (median ms per batch of `batch_size`,
then times the batches of an epoch): drawing and augmenting windows (`augment_windows`, NumPy; the thread that prepares
batches does the same without its second copy of the batch), standardising, the forward pass, forward + backward (the
gradients, a compiled `tf.function`), the whole train step (`train_on_batch`: + the optimizer and the metrics; the
optimizer is the difference), and validation (a `predict` over the validation windows, 15 % of them as in `train`). The
loop overlaps the first two with the model (`heart_nb.batches.prefetched`), so the stages add up to more than its epoch.

Prints a header, a line per round, then one JSON line per model:
{"model": "cnn", "loop_windows_per_s": ..., "bare_fit_windows_per_s": ..., "overhead": bare/loop,
 "overhead_paired": median of the rounds' bare/loop, "overhead_ci": [low, high], "gflops_per_s": ...,
 "peak_gflops_per_s": ...}
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from subprocess import PIPE

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from common import BLOCKS, config_with, use_block  # noqa: E402

import heart_nb.core  # noqa: E402, F401  (first: TensorFlow's environment, oneDNN included, before it loads)


def model_flops(model) -> float:
    "Forward FLOPs (2 per multiply-add) of one window through `model`: convolutions, dense layers, LSTMs, attention."
    from keras import layers

    from heart_nb.models import AttentionPooling

    total = 0.0
    for layer in model.layers:
        if isinstance(layer, layers.Conv2D):
            kh, kw = layer.kernel_size
            _, h, w, cout = layer.output.shape
            total += 2 * kh * kw * layer.input.shape[-1] * cout * h * w
        elif isinstance(layer, layers.Dense):
            total += 2 * layer.kernel.shape[0] * layer.kernel.shape[1]
        elif isinstance(layer, layers.Bidirectional):  # two LSTMs over the sequence
            _, t, d = layer.input.shape
            u = layer.forward_layer.units
            total += 2 * 2 * 4 * (d + u) * u * t
        elif isinstance(layer, AttentionPooling):  # tanh projection, score, weighted sum
            _, t, d = layer.input.shape
            total += 2 * t * (d * layer.units + layer.units + d)
    return total


def matmul_peak(n: int = 2048, reps: int = 5) -> float:
    "Best GFLOP/s of an n x n float32 matrix product through the Keras backend."
    import numpy as np
    from keras import ops

    a = ops.convert_to_tensor(np.random.default_rng(0).normal(size=(n, n)).astype("float32"))
    ops.convert_to_numpy(ops.matmul(a, a))
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        ops.convert_to_numpy(ops.matmul(a, a))
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best / 1e9


def paired_overhead(loop: list[float], bare: list[float], boot: int = 2000) -> tuple[float, float, float]:
    "The median over rounds of bare / loop windows/s (each round's pair), with a 95 % bootstrap CI over rounds."
    import numpy as np

    r = np.asarray(bare) / np.asarray(loop)
    meds = np.median(r[np.random.default_rng(0).integers(0, len(r), (boot, len(r)))], axis=1)
    return float(np.median(r)), float(np.quantile(meds, 0.025)), float(np.quantile(meds, 0.975))


def bench_model(kind, fs, Y, groups, cfg, rounds, log):
    "Alternating loop / bare epochs for one model: medians of windows/s and the paired overhead with its CI."
    import keras
    import numpy as np

    from heart_nb.features import Standardiser
    from heart_nb.models import build_model
    from heart_nb.training import class_weights, compile_model, fit_model, sample_weights

    X = np.asarray(fs.X)
    std = Standardiser.fit(X)
    n_loop = sum(min(cfg.train_windows or 10**9, c) for c in np.bincount(groups) if c)
    pick = np.random.default_rng(0).choice(len(X), n_loop, replace=False)
    Xb, Yb = std(X[pick]), Y[pick]
    wb = sample_weights(Yb, class_weights(Yb))
    bare = compile_model(build_model(kind, cfg, Y.shape[1], multilabel=True), "multilabel", cfg)
    times = {"loop": [], "bare": []}

    class Timer(keras.callbacks.Callback):
        "Windows per second of an epoch's training: from the epoch's start to its validation's start, or its end."

        def on_epoch_begin(self, epoch, logs=None):
            self.t0, self.t1 = time.perf_counter(), None

        def on_test_begin(self, logs=None):
            self.t1 = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.t1 = self.t1 or time.perf_counter()

        def rate(self):
            return n_loop / (self.t1 - self.t0)

    class Alternate(Timer):
        def on_epoch_end(self, epoch, logs=None):
            super().on_epoch_end(epoch, logs)
            times["loop"].append(self.rate())
            timer = Timer()
            bare.fit(
                Xb,
                Yb,
                sample_weight=wb,
                batch_size=cfg.batch_size,
                epochs=1,
                shuffle=True,
                verbose=0,
                callbacks=[timer],
            )
            times["bare"].append(timer.rate())
            log(
                f"  {kind} round {epoch}: loop {times['loop'][-1]:.0f} windows/s, bare fit {times['bare'][-1]:.0f}"
                + ("  (warm-up, dropped)" if epoch == 0 else "")
            )

    va = np.random.default_rng(1).choice(len(X), min(256, len(X)), replace=False)
    with tempfile.TemporaryDirectory() as d:
        net, _, _ = fit_model(
            kind,
            X,
            Y,
            X[va],
            Y[va],
            cfg.replace(patience=rounds + 1),
            "multilabel",
            d,
            groups=groups,
            epochs=rounds + 1,
            callbacks=[Alternate()],
        )
    loop, barefit = statistics.median(times["loop"][1:]), statistics.median(times["bare"][1:])
    return loop, barefit, paired_overhead(times["loop"][1:], times["bare"][1:]), model_flops(net) / 1e9


def stage_profile(kind, X, Y, groups, cfg, log, batches: int = 30) -> dict:
    "Median milliseconds per batch of each stage of a training epoch, and the epoch's split (seconds)."
    import numpy as np
    import tensorflow as tf

    from heart_nb.batches import augment_windows
    from heart_nb.features import Standardiser
    from heart_nb.models import build_model
    from heart_nb.training import class_weights, compile_model, sample_weights

    std = Standardiser.fit(X, cfg.normalise, cfg.hop_length / cfg.sr)
    model = compile_model(build_model(kind, cfg, Y.shape[1], multilabel=True), "multilabel", cfg)
    w = sample_weights(Y, class_weights(Y))
    rng = np.random.default_rng(0)
    idx = [np.sort(rng.choice(len(X), cfg.batch_size, replace=False)) for _ in range(batches + 2)]

    def fwd_bwd(x, y, sw):
        with tf.GradientTape() as tape:
            loss = model.compute_loss(x, y, model(x, training=True), sw)
        return tape.gradient(loss, model.trainable_variables)

    forward = tf.function(lambda x: model(x, training=True))
    gradients = tf.function(fwd_bwd)
    stages = {k: [] for k in ("draw_augment", "standardise", "forward", "forward_backward", "train_step")}
    for j, b in enumerate(idx):
        t = time.perf_counter()
        xa = augment_windows(X[b], np.random.default_rng([0, j]), cfg)
        t1 = time.perf_counter()
        xs = std(xa)
        t2 = time.perf_counter()
        forward(xs)[0, 0].numpy()
        t3 = time.perf_counter()
        [g.numpy() for g in gradients(xs, Y[b], w[b])[:1]]
        t4 = time.perf_counter()
        model.train_on_batch(xs, Y[b], sample_weight=w[b])
        t5 = time.perf_counter()
        if j >= 2:  # the first two: tracing
            for k, v in zip(stages, (t1 - t, t2 - t1, t3 - t2, t4 - t3, t5 - t4)):
                stages[k].append(v * 1e3)
    ms = {k: statistics.median(v) for k, v in stages.items()}
    ms["optimizer"] = max(ms["train_step"] - ms["forward_backward"], 0.0)
    ms["backward"] = max(ms["forward_backward"] - ms["forward"], 0.0)
    n_train = sum(min(cfg.train_windows or 10**9, c) for c in np.bincount(groups) if c)
    n_val = int(0.15 * len(X))
    xv = std(X[:n_val])
    model.predict(xv, batch_size=256, verbose=0)  # traced for both batch shapes (256 and the rest), as after epoch 1
    t = time.perf_counter()
    model.predict(xv, batch_size=256, verbose=0)
    val_s = time.perf_counter() - t
    per_epoch = n_train / cfg.batch_size / 1e3
    split = {
        "draw_augment": ms["draw_augment"] * per_epoch,
        "standardise": ms["standardise"] * per_epoch,
        "forward": ms["forward"] * per_epoch,
        "backward": ms["backward"] * per_epoch,
        "optimizer": ms["optimizer"] * per_epoch,
        "validation": val_s,
    }
    total = sum(split.values())
    log(f"# {kind} epoch profile ({n_train} training windows, {n_val} validation; each stage alone, serial):")
    for k, v in split.items():
        log(f"  {k:14s} {v:6.2f} s  {100 * v / total:4.0f} %")
    return {
        "model": kind,
        "ms_per_batch": {k: round(v, 2) for k, v in ms.items()},
        "epoch_s": {k: round(float(v), 3) for k, v in split.items()},
    }


def ab(a) -> None:
    "The package's default against one environment setting or bench flag, in alternating child processes."
    key, _, value = a.ab.partition("=")
    if not key or not value:
        sys.exit(f"--ab: expected KEY=VALUE or --FLAG=VALUE, got {a.ab!r}")
    args = [sys.executable, __file__, "--rounds", str(a.ab_rounds), "--models", a.models]
    args += ["--data", a.data] if a.data else []
    flag = [a.ab] if key.startswith("--") else []
    runs = {"default": [], a.ab: []}
    log = lambda s: print(s, flush=True)
    both = f" --together {a.together}" if a.together > 1 else ""
    log(f"# bench/training.py --ab={a.ab}{both} --pairs {a.pairs}, {datetime.date.today()}, {os.cpu_count()} CPU cores")
    for i in range(a.pairs):
        for side in runs:
            env = {**os.environ, key: value} if side == a.ab and not flag else os.environ
            n = a.together if side == a.ab else 1
            kids = [
                subprocess.Popen(args + (flag if side == a.ab else []), env=env, stdout=PIPE, stderr=PIPE, text=True)
                for _ in range(n)
            ]
            outs = [(k.communicate(), k.returncode) for k in kids]
            for (_, err), rc in outs:
                if rc:
                    sys.exit(f"--ab: the {side} child failed: {err.strip().splitlines()[-1:]}")
            rows = [[json.loads(x) for x in o.splitlines() if x.startswith("{")] for (o, _), _ in outs]
            if n > 1:  # side by side: the machine's throughput is the sum, its peak the default's of this pair
                peak = {m: r["peak_gflops_per_s"] for m, r in runs["default"][-1].items()}
                rows = [
                    {
                        "model": r0["model"],
                        **{k: sum(r[j][k] for r in rows) for k in ("loop_windows_per_s", "bare_fit_windows_per_s")},
                        "gflops_per_s": sum(r[j]["gflops_per_s"] for r in rows),
                        "peak_gflops_per_s": peak[r0["model"]],
                    }
                    for j, r0 in enumerate(rows[0])
                ]
            else:
                rows = rows[0]
            runs[side].append({r["model"]: r for r in rows})
            log(f"  pair {i} {side:>24s}: " + ", ".join(f"{r['model']} {r['loop_windows_per_s']:.0f}" for r in rows))
    out = []
    for kind in a.models.split(","):
        row = {"model": kind, "setting": a.ab}
        for side, tag in ((a.ab, "setting"), ("default", "default")):
            per = [r[kind] for r in runs[side]]
            loop = statistics.median(r["loop_windows_per_s"] for r in per)
            row[f"{tag}_loop_windows_per_s"] = round(loop, 1)
            row[f"{tag}_bare_fit_windows_per_s"] = round(statistics.median(r["bare_fit_windows_per_s"] for r in per), 1)
            row[f"{tag}_peak_share"] = round(
                statistics.median(r["gflops_per_s"] / r["peak_gflops_per_s"] for r in per), 3
            )
        row["speedup"] = round(row["default_loop_windows_per_s"] / row["setting_loop_windows_per_s"], 2)
        log(
            f"# {kind}: default {row['default_loop_windows_per_s']:.0f} windows/s "
            f"({100 * row['default_peak_share']:.0f} % of its peak), {a.ab} {row['setting_loop_windows_per_s']:.0f} "
            f"({100 * row['setting_peak_share']:.0f} %): the default x{row['speedup']:.2f}"
        )
        out.append(row)
    for o in out:
        print(json.dumps(o))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None)
    ap.add_argument("--quick", action="store_true", help="3 rounds per model (under 5 minutes on 2 cores)")
    ap.add_argument("--rounds", type=int, default=6, help="timed rounds per model (one more for warm-up)")
    ap.add_argument("--models", default="cnn,crnn")
    ap.add_argument("--profile", action="store_true", help="also: an epoch's time split by stage")
    ap.add_argument("--ab", default=None, metavar="KEY=VALUE", help="the default against this environment setting")
    ap.add_argument("--block", default="package", choices=list(BLOCKS), help="a block of bench/common.BLOCKS")
    ap.add_argument("--pairs", type=int, default=3, help="with --ab: alternating pairs of processes")
    ap.add_argument("--ab-rounds", type=int, default=1, help="with --ab: timed rounds in each child (their median)")
    ap.add_argument("--together", type=int, default=1, help="with --ab: the setting's side as N processes at once")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a HeartConfig field")
    ap.add_argument("--jit", default="off", choices=["off", "on"], help="on: every model compiled with XLA")
    a = ap.parse_args()
    if a.together < 1 or (a.together > 1 and not a.ab):
        sys.exit(f"--together {a.together}: expected a count >= 1, and with --ab (the setting's side runs N at once)")
    if a.ab:
        return ab(a)
    block = use_block(a.block)
    if a.jit == "on":
        import keras

        compile_ = keras.Model.compile
        keras.Model.compile = lambda self, *args, **kw: compile_(self, *args, **{**kw, "jit_compile": True})
    rounds = 3 if a.quick else a.rounds
    import keras
    import numpy as np

    from heart_nb.cache import extract_features
    from heart_nb.core import HeartConfig, find_bmdhs
    from heart_nb.mapping import map_dataset
    from heart_nb.splits import present_classes, target_matrix

    data = Path(a.data) if a.data else find_bmdhs()
    if data is None:
        sys.exit("BMD-HS not found: pass --data or set HEART_NB_BMDHS")
    cfg = config_with(HeartConfig(), a.set)[0]
    work = Path("bench/_training")
    work.mkdir(parents=True, exist_ok=True)
    man, _ = map_dataset(data / "BMD-HS_Data_Annotation.xlsx", data / "audio", work / "manifest.csv")
    fs = extract_features(man, cfg, cache_dir=work / "cache", progress=False)
    Y = target_matrix(man, present_classes(man))[fs.row]
    log = lambda s: print(s, flush=True)
    peak = matmul_peak()
    cpu = platform.processor() or platform.machine()
    log(
        f"# bench/training.py{' --quick' if a.quick else ''}, {datetime.date.today()}, {os.cpu_count()} CPU cores "
        f"({cpu}), Python {platform.python_version()}, Keras {keras.__version__} "
        f"({keras.backend.backend()}); BMD-HS {len(man)} recordings, {len(fs.X)} windows {fs.X.shape[1:]}, "
        f"{cfg.train_windows or 'all'} per recording per epoch, batch {cfg.batch_size}; matmul peak {peak:.1f} GFLOP/s"
        + (f"; {block}" if block else "")
        + ("; XLA (jit_compile)" if a.jit == "on" else "")
        + "".join(f"; {kv}" for kv in a.set)
    )
    out = []
    for kind in a.models.split(","):
        loop, bare, (paired, lo, hi), gflop = bench_model(kind, fs, Y, fs.row, cfg, rounds, log)
        peak = max(peak, matmul_peak())
        out.append(
            {
                "model": kind,
                "loop_windows_per_s": round(loop, 1),
                "bare_fit_windows_per_s": round(bare, 1),
                "overhead": round(bare / loop, 3),
                "overhead_paired": round(paired, 3),
                "overhead_ci": [round(lo, 3), round(hi, 3)],
                "gflops_per_s": round(3 * gflop * loop, 2),
                "peak_gflops_per_s": round(peak, 1),
            }
        )
        share = 100 * out[-1]["gflops_per_s"] / peak
        log(f"# {kind}: {gflop * 1e3:.1f} MFLOP forward per window; training at {share:.0f} % of the matmul peak")
        log(f"# {kind}: the loop's overhead, round by round (bare / loop): {paired:.3f} [{lo:.3f}, {hi:.3f}]")
    if a.profile:
        for kind in a.models.split(","):
            out.append(stage_profile(kind, np.asarray(fs.X), Y, fs.row, cfg, log))
    for o in out:
        print(json.dumps(o))


if __name__ == "__main__":
    main()
