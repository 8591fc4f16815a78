"""Refresh the outputs the notebooks are committed with: the figures and small results a reader of the docs needs.

Executes each notebook in nbs/ (nbclient, the notebook's own folder as working directory) and keeps, per cell:
PNG figures; small results (an execute_result's text/html or text/plain under 8 kB); printed lines under 2 kB
without TensorFlow's logs. Everything else (stderr, training logs, progress bars, widget state) is dropped, so the
notebooks stay small and nbdev_clean leaves them as they are. Figures are made from BMD-HS where the data is found
and from SYNTHETIC data otherwise; the cells' titles say which.

    python .ci/outputs.py [NOTEBOOK ...]        (default: every notebook in nbs/)
"""

import os
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def shrink(b64: str, limit: int = 150_000) -> str:
    "A PNG over `limit` bytes re-encoded with a 256-colour palette (figures lose nothing visible)."
    import base64
    import io

    from PIL import Image

    raw = base64.b64decode(b64)
    if len(raw) <= limit:
        return b64
    buf = io.BytesIO()
    Image.open(io.BytesIO(raw)).convert("RGB").quantize(256).save(buf, "PNG", optimize=True)
    return base64.b64encode(buf.getvalue()).decode() if buf.tell() < len(raw) else b64


NOISE = ("absl::", "oneDNN", "WARNING:", "INFO:tensorflow", "tf.function retracing", "XNNPACK", "\r")


def keep(o) -> bool:
    "Whether output `o` is one a reader wants to see."
    if o.output_type == "stream":
        return o.name == "stdout" and len(o.text) < 2000 and not any(n in o.text for n in NOISE)
    if o.output_type in ("display_data", "execute_result"):
        d = o.get("data", {})
        if "image/png" in d:
            o["data"] = {k: v for k, v in d.items() if k in ("image/png", "text/plain")}
            o["data"]["image/png"] = shrink(o["data"]["image/png"])
            return True
        small = {k: v for k, v in d.items() if k in ("text/html", "text/plain", "text/markdown") and len(v) < 8000}
        if small and "application/vnd.jupyter.widget-view+json" not in d:
            o["data"] = small
            return True
    return False


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    nbs = [Path(a) for a in sys.argv[1:]] or sorted((root / "nbs").glob("*.ipynb"))
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    for p in nbs:
        t = time.time()
        nb = nbformat.read(p, as_version=4)
        skipped = {
            i: c.source
            for i, c in enumerate(nb.cells)  # `#| eval: false`, as nbdev_test
            if c.cell_type == "code" and any(l.replace(" ", "") == "#|eval:false" for l in c.source.splitlines())
        }
        for i in skipped:
            nb.cells[i].source = ""
        NotebookClient(
            nb, timeout=1200, kernel_name="python3", resources={"metadata": {"path": str(p.parent)}}
        ).execute()
        for i, src in skipped.items():
            nb.cells[i].source = src
        for c in nb.cells:
            if c.cell_type == "code":
                c["outputs"] = [o for o in c.get("outputs", []) if keep(o)]
                c["execution_count"] = None
                for o in c["outputs"]:
                    if "execution_count" in o:
                        o["execution_count"] = None
        nb.metadata.pop("widgets", None)
        nbformat.write(nb, p)
        print(
            f"{p.name}: {time.time() - t:.0f} s, "
            f"{sum(len(c.get('outputs', [])) for c in nb.cells if c.cell_type == 'code')} outputs, "
            f"{p.stat().st_size // 1024} kB",
            flush=True,
        )


if __name__ == "__main__":
    main()
