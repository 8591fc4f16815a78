"""The prediction panel in a real browser, offline.

Executes a small notebook (a tiny run on SYNTHETIC data, then `prediction_panel`) with the widget state stored
(nbconvert, store_widget_state), serves the HTML on 127.0.0.1 with local copies of require.js and
@jupyter-widgets/html-manager (fetched once with `npm pack` into ~/.cache/heart_nb/npm; the exported HTML would load
them from public CDNs and render blank offline), opens it in headless Chromium and checks that the panel's controls,
its verdict line and its figure are in the rendered page. Keeps a screenshot: OUT_DIR/panel.png.

    python .ci/widget_browser.py [OUT_DIR]        (exit 0: rendered; 1: not)
"""

import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from browser import BrowserHung, browse, find_chromium, serve  # noqa: E402

CDN = {
    "https://cdnjs.cloudflare.com/ajax/libs/require.js/2.1.10/require.min.js": "require.js",
    "https://unpkg.com/@jupyter-widgets/html-manager@*/dist/embed-amd.js": "embed-amd.js",
}
NOTEBOOK = [  # the first cell's output (TensorFlow's start-up lines) is removed from the page
    "import os\nos.environ['TF_CPP_MIN_LOG_LEVEL'] = '2'\nfrom pathlib import Path\nimport numpy as np\n"
    "from heart_nb.synthetic import synthetic_manifest, tiny_config\nfrom heart_nb.training import train\n"
    "from heart_nb.panel import prediction_panel\n"
    "ds, man = synthetic_manifest(Path('data'), classes=('N', 'AS', 'MR'), patients_per_class=4, duration_s=6)\n"
    "run = train(man, Path('run_cnn'), tiny_config(), model='cnn', epochs=2, verbose=0, data_note='SYNTHETIC')\n"
    "from heart_nb.runs import load_run\nload_run(run).probabilities(np.zeros((1, 32, 51), np.float32))",
    "prediction_panel(run, ds.audio_dir)",
]


def fail(msg: str) -> None:
    print(f"widget_browser: FAIL: {msg}")
    sys.exit(1)


def widget_manager(cache: Path) -> dict[str, Path]:
    "Local copies of require.js and the html-manager's embed-amd.js (npm pack, once)."
    files = {"require.js": cache / "require.js", "embed-amd.js": cache / "embed-amd.js", "fonts": cache / "dist"}
    if all(f.exists() for f in files.values()):
        return files
    cache.mkdir(parents=True, exist_ok=True)
    if not shutil.which("npm"):
        fail("npm not found: it fetches the widget manager (apt install npm)")
    r = subprocess.run(
        ["npm", "pack", "@jupyter-widgets/html-manager@1", "requirejs@2"], cwd=cache, capture_output=True, text=True
    )
    if r.returncode:
        fail(f"npm pack failed: {r.stderr.strip()[-300:]}")
    for tgz, member, dest in (
        ("jupyter-widgets-html-manager-*.tgz", "package/dist/embed-amd.js", "embed-amd.js"),
        ("requirejs-*.tgz", "package/require.js", "require.js"),
    ):
        with tarfile.open(next(cache.glob(tgz))) as t:
            (cache / dest).write_bytes(t.extractfile(member).read())
    with tarfile.open(next(cache.glob("jupyter-widgets-html-manager-*.tgz"))) as t:  # the icon fonts it asks for
        for m in t.getmembers():
            if (
                m.isfile()
                and m.name.startswith("package/dist/")
                and m.name.rsplit(".", 1)[-1] in ("woff", "woff2", "ttf", "eot", "svg")
            ):
                (cache / "dist").mkdir(exist_ok=True)
                (cache / "dist" / Path(m.name).name).write_bytes(t.extractfile(m).read())
    return files


def cell_seconds(path: Path) -> list[float]:
    "Each executed cell's seconds, from the timestamps nbclient records (so that a slow run says which cell was)."
    stamp = lambda c, k: datetime.fromisoformat(c["metadata"]["execution"][k].replace("Z", "+00:00"))
    cells = json.loads(path.read_text())["cells"]
    return [(stamp(c, "shell.execute_reply") - stamp(c, "iopub.execute_input")).total_seconds() for c in cells]


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".ci/out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium()
    if chromium is None:
        fail("chromium not found (apt install chromium; .ci/run installs it)")
    work = Path(tempfile.mkdtemp(prefix="heart_nb_widget_"))
    nb = {
        "cells": [
            {
                "cell_type": "code",
                "execution_count": None,
                "id": f"c{i}",
                "outputs": [],
                "source": s,
                "metadata": {"tags": ["remove_output"] if i == 0 else []},
            }
            for i, s in enumerate(NOTEBOOK)
        ],
        "metadata": {"kernelspec": {"display_name": "python3", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    (work / "panel.ipynb").write_text(json.dumps(nb))
    jup = [sys.executable, "-m", "jupyter", "nbconvert"]
    t0 = time.perf_counter()
    r = subprocess.run(
        [
            *jup,
            "--to",
            "notebook",
            "--execute",
            "panel.ipynb",
            "--output",
            "panel_run.ipynb",
            "--ExecutePreprocessor.store_widget_state=True",
            "--ExecutePreprocessor.timeout=600",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    if r.returncode:
        fail(f"nbconvert --execute failed: {r.stderr.strip()[-800:]}")
    took = {"execute": time.perf_counter() - t0, "cells": cell_seconds(work / "panel_run.ipynb")}
    r = subprocess.run(
        [
            *jup,
            "--to",
            "html",
            "panel_run.ipynb",
            "--output",
            "panel",
            "--no-input",
            "--TagRemovePreprocessor.enabled=True",
            "--TagRemovePreprocessor.remove_all_outputs_tags=remove_output",
        ],
        cwd=work,
        capture_output=True,
        text=True,
    )
    if r.returncode:
        fail(f"nbconvert --to html failed: {r.stderr.strip()[-800:]}")
    html = (work / "panel.html").read_text()
    if "application/vnd.jupyter.widget-state+json" not in html:
        fail("no widget state stored in the HTML")
    for url, name in CDN.items():
        if url not in html:
            fail(f"the HTML no longer loads {url}: update CDN in this script")
        html = html.replace(url, name)
    (work / "panel.html").write_text(html)
    wm = widget_manager(Path.home() / ".cache" / "heart_nb" / "npm")
    shutil.copy(wm["require.js"], work)
    shutil.copy(wm["embed-amd.js"], work)
    shutil.copytree(wm["fonts"], work / "@jupyter-widgets" / "html-manager" / "dist")
    with serve(work) as base:
        url = f"{base}/panel.html"
        t0 = time.perf_counter()
        try:
            dom = browse(chromium, url, "--dump-dom")
            browse(chromium, url, "--window-size=1100,1000", f"--screenshot={out / 'panel.png'}")
        except BrowserHung as e:
            fail(str(e))
        took["chromium"] = time.perf_counter() - t0
    (out / "panel_dom.html").write_text(dom)
    panel = dom[dom.find("widget-vbox") :]
    checks = {
        "the run and recording choosers": panel.count("widget-dropdown") >= 2,
        "the upload button": "widget-upload" in panel,
        "the verdict line": bool(re.search(r"<b>prediction:</b>.*heart rate.*quality", panel)),
        "the figure": bool(re.search(r'<img[^>]+src="data:image/png;base64,[A-Za-z0-9+/]{1000}', panel)),
        "a screenshot": (out / "panel.png").exists() and (out / "panel.png").stat().st_size > 10_000,
    }
    missing = [k for k, ok in checks.items() if not ok]
    if missing:
        fail(f"not rendered: {', '.join(missing)} (DOM in {out / 'panel_dom.html'})")
    print(
        f"widget_browser: the panel rendered offline in {Path(chromium).name}: "
        + ", ".join(checks)
        + f"; {out / 'panel.png'}"
        + f" (kernel {took['execute']:.0f} s, its cells {', '.join(f'{c:.0f}' for c in took['cells'])} s;"
        + f" chromium {took['chromium']:.0f} s)"
    )


if __name__ == "__main__":
    main()
