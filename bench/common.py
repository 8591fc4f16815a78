"""Helpers every bench script shares: Markdown tables, the machine in words, log-odds.

A script run as `python bench/X.py` has bench/ on its import path already, so `from common import ...` needs nothing.
"""

import sys

import numpy as np

import heart_nb.core  # noqa: F401  (first: TensorFlow's environment, oneDNN included, before any script loads it)
from heart_nb.core import HeartError


def md(df) -> str:
    "A DataFrame as a Markdown table."
    cols = [df.index.name or ""] + list(df.columns)
    return "\n".join(
        ["| " + " | ".join(map(str, cols)) + " |", "|" + "---|" * len(cols)]
        + ["| " + " | ".join(map(str, [i, *r])) + " |" for i, r in zip(df.index, df.itertuples(index=False))]
    )


def machine() -> str:
    "Cores, CPU, Keras backend and accelerator of this run, in words."
    import os
    import platform

    import keras

    be = keras.backend.backend()
    acc = "none"
    if be == "tensorflow":
        import tensorflow as tf
        from tensorflow.python.util import _pywrap_util_port

        gpus = tf.config.list_physical_devices("GPU")
        acc = f"{len(gpus)} GPU" if gpus else "none"
        be += f" (oneDNN {'on' if _pywrap_util_port.IsMklEnabled() else 'off'})"
    elif be == "jax":
        import jax

        d = jax.devices()[0]
        acc = "none" if d.platform == "cpu" else f"{jax.device_count()} x {d.device_kind}"
    elif be == "torch":
        import torch

        acc = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    cpu = platform.processor() or platform.machine()
    return f"{os.cpu_count()} CPU cores ({cpu}), Keras {keras.__version__} on {be}, accelerator: {acc}"


def logit(P: np.ndarray) -> np.ndarray:
    "Log-odds of probabilities `P`, clipped to [1e-4, 1 - 1e-4]."
    P = np.clip(P, 1e-4, 1 - 1e-4)
    return np.log(P / (1 - P))


def cpu_machine() -> str:
    "This machine's cores in words, for a bench that runs no network (no Keras import)."
    import os
    import platform

    return f"{os.cpu_count()} CPU cores ({platform.machine()}), no GPU"


def write_rows(out, rows: list, t0: float, **extra) -> dict:
    "A bench's rows written to `out` as JSON with the command, the machine and the wall time; the written dict."
    import json
    import sys
    import time

    meta = {"command": "python " + " ".join(sys.argv), "machine": cpu_machine(), "seconds": round(time.time() - t0)}
    meta |= extra | {"rows": rows}
    out.write_text(json.dumps(meta, indent=1))
    return meta


def three_sources(work):
    "BMD-HS, PhysioNet 2016 and CirCor 2022 mapped with their presets (once, into `work`) and combined, in that order."
    from heart_nb.core import find_bmdhs
    from heart_nb.mapping import combine_manifests, map_dataset, read_manifest

    D = find_bmdhs().parent
    spec = {
        "bmdhs": (D / "bmd-hs/BMD-HS_Data_Annotation.xlsx", D / "bmd-hs/audio", "bmd-hs"),
        "pn16": (D / "physionet2016/REFERENCE.csv", D / "physionet2016/audio", "physionet2016"),
        "circor": (D / "circor2022/patients.csv", D / "circor2022/audio", "circor2022"),
    }
    work.mkdir(parents=True, exist_ok=True)
    for name, args in spec.items():
        if not (work / f"{name}.csv").exists():
            map_dataset(args[0], args[1], work / f"{name}.csv", args[2])
    return combine_manifests([read_manifest(work / f"{n}.csv") for n in spec]).reset_index(drop=True)


def fold_lesion_macro(r, pick: dict | None = None) -> float:
    "Patient lesion macro-AUROC of cross-validation result `r`, mean over folds; `pick`: per fold, rows resampled."
    from heart_nb.metrics import metric_table

    d, Y, P = r.level("patient")
    vals = []
    for k, idx in d.groupby("fold").indices.items():
        i = idx if pick is None else idx[pick[k]]
        vals.append(metric_table(Y[i], P[i], r.classes, r.task)["lesion_macro_auroc"])
    return float(np.nanmean(vals))


def config_with(cfg, sets: list[str]):
    """`cfg` with each KEY=VALUE of `sets` (a lever's HeartConfig fields), and a folder tag.

    A value takes the field's type: 'true'/'false' or 1/0 for a flag, a comma list for a tuple (conv_filters=32,64)."""
    for kv in sets:
        k, eq, v = kv.partition("=")
        if not eq or not hasattr(cfg, k):
            sys.exit(f"--set {kv}: expected KEY=VALUE with KEY a HeartConfig field (e.g. batch_size=64)")
        cur = getattr(cfg, k)
        try:
            if isinstance(cur, bool):
                val = v.lower() in ("1", "true", "yes")
            elif isinstance(cur, tuple):
                val = tuple(map(type(cur[0]), v.split(",")))
            else:
                val = type(cur)(v)
            cfg = cfg.replace(**{k: val})
        except (ValueError, HeartError) as e:
            sys.exit(f"--set {kv}: {e}")
    return cfg, "".join(f"__{kv.replace('=', '_')}" for kv in sets)


def keras_block(x, filters: int, pool: tuple[int, int], name: str, pool_first: bool = False):
    "The convolution block before the fused batch normalisation: conv → Keras's batch norm → ReLU → max-pool."
    from keras import layers

    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(name=f"{name}_bn")(x)
    x = layers.Activation("relu", name=f"{name}_relu")(x)
    return layers.MaxPooling2D(pool, name=f"{name}_pool")(x)


BLOCKS = {
    "package": "",
    "fused": "the fused block, norm before pool, in every model",
    "keras": "the block before the fused batch norm",
    "pool_first": "the pool-first block (conv, max-pool, batch norm, ReLU) in every model",
}


def use_block(name: str) -> str:
    "Builds every model with the convolution block `name` of `BLOCKS` ('package': the package's own); its words."
    import heart_nb.models

    own = heart_nb.models._conv_block  # the package's: norm before pool, or pool first where a model asks
    blocks = {
        "fused": lambda x, filters, pool, name, pool_first=False: own(x, filters, pool, name),
        "keras": keras_block,
        "pool_first": lambda x, filters, pool, name, pool_first=False: own(x, filters, pool, name, pool_first=True),
    }
    if name in blocks:
        heart_nb.models._conv_block = blocks[name]
    return BLOCKS[name]
