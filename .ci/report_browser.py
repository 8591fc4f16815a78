"""Patient report pages in a real browser: `heart-nb predict --patients --report DIR`, then every page opened in
headless Chromium (offline), checking that every image loads (natural width > 0), that the page raised no console
error, that it asks for nothing outside itself, and that the verdict is there. Screenshot: OUT_DIR/report.png.

    python .ci/report_browser.py [OUT_DIR] [--run RUN FILE_OR_DIR...]   (exit 0: every page passed; 1: not)

Without --run: a tiny baseline+CNN run on SYNTHETIC recordings (BMD-HS-style names), and its test patients.
"""

import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from browser import BrowserHung, browse, find_chromium, serve  # noqa: E402

PROBE = (
    "<script>window.__errors=[];window.addEventListener('error',e=>window.__errors.push(String(e.message||"
    "(e.target&&(e.target.src||e.target.href))||'error')),true);const _ce=console.error;console.error=function(...a)"
    "{window.__errors.push(a.map(String).join(' '));_ce.apply(console,a)};window.addEventListener('load',()=>{"
    "const im=[...document.images];document.body.setAttribute('data-images',im.filter(i=>i.complete&&"
    "i.naturalWidth>0).length+'/'+im.length);document.body.setAttribute('data-errors',window.__errors.join(' | ')"
    "||'none');});</script>"
)


def fail(msg: str) -> None:
    print(f"report_browser: FAIL: {msg}")
    sys.exit(1)


def synthetic(work: Path) -> list[str]:
    "A tiny run and its test patients' recordings: ['--run', RUN, FILES...]."
    from heart_nb.synthetic import synthetic_manifest, tiny_config
    from heart_nb.training import train

    ds, man = synthetic_manifest(work / "data", classes=("N", "AS", "MR"), patients_per_class=4, duration_s=6)
    run = train(man, work / "run", tiny_config(), epochs=2, verbose=0, data_note="SYNTHETIC")
    split = __import__("pandas").read_csv(run / "split.csv")
    return ["--run", str(run), *split.path[split.split == "test"].tolist()]


def main() -> None:
    args = sys.argv[1:]
    out = Path(args.pop(0) if args and not args[0].startswith("--") else ".ci/out").resolve()
    out.mkdir(parents=True, exist_ok=True)
    chromium = find_chromium()
    if chromium is None:
        fail("chromium not found (apt install chromium; .ci/run installs it)")
    work = Path(tempfile.mkdtemp(prefix="heart_nb_report_"))
    target = args if args else synthetic(work)
    pages_dir = work / "report"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "heart_nb.cli",
            "predict",
            "--patients",
            "--report",
            str(pages_dir),
            *target[2:],
            "--run",
            target[1],
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )
    if r.returncode not in (0, 1) or "Traceback" in r.stderr:
        fail(f"predict --patients failed: {r.stderr[-800:]}")
    pages = sorted(pages_dir.glob("*.html"))
    if not pages:
        fail(f"no pages written: {r.stdout[-400:]} {r.stderr[-400:]}")
    problems = []
    for p in pages:
        text = p.read_text()
        if re.search(r"(src|href)=[\"']?(https?:)?//", text):
            problems.append(f"{p.name}: asks for an outside resource")
        p.write_text(text.replace("<head>", "<head>" + PROBE, 1))  # the probe goes into the served copy only
    with serve(pages_dir) as base:
        for p in pages:
            try:
                dom = browse(chromium, f"{base}/{p.name}", "--dump-dom", budget_ms=10000)
            except BrowserHung as e:
                problems.append(f"{p.name}: {e}")
                continue
            imgs = re.search(r'data-images="(\d+)/(\d+)"', dom)
            errs = re.search(r'data-errors="([^"]*)"', dom)
            verdict = re.search(r'<span id="verdict">([^<]+)</span>', dom)
            if not imgs:
                problems.append(f"{p.name}: the page did not finish loading")
                continue
            if imgs.group(1) != imgs.group(2) or imgs.group(2) == "0" and verdict and verdict.group(1) != "unknown":
                problems.append(f"{p.name}: {imgs.group(1)} of {imgs.group(2)} images loaded")
            if not errs or errs.group(1) != "none":
                problems.append(f"{p.name}: console errors: {errs and errs.group(1)}")
            if not verdict or not verdict.group(1).strip():
                problems.append(f"{p.name}: no verdict")
            if "not a medical device" not in dom:
                problems.append(f"{p.name}: no research-tool notice")
            print(f"{p.name}: verdict {verdict.group(1) if verdict else '?'}, images {imgs.group(1)}/{imgs.group(2)}")
        try:
            browse(
                chromium,
                f"{base}/{pages[0].name}",
                "--window-size=1100,2400",
                f"--screenshot={out / 'report.png'}",
                budget_ms=10000,
            )
        except BrowserHung as e:
            problems.append(f"screenshot: {e}")
    if problems:
        fail("; ".join(problems))
    print(
        f"report_browser: {len(pages)} patient pages rendered in {Path(chromium).name}: images, verdict, notice, "
        f"no console errors; screenshot {out / 'report.png'}"
    )


if __name__ == "__main__":
    main()
