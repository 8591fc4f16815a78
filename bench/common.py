"""Helpers every bench script shares: Markdown tables, the machine in words, log-odds.

A script run as `python bench/X.py` has bench/ on its import path already, so `from common import ...` needs nothing.
"""

import numpy as np


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

        gpus = tf.config.list_physical_devices("GPU")
        acc = f"{len(gpus)} GPU" if gpus else "none"
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
