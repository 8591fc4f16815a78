"""The documentation site in a real browser: build it (.ci/docs), serve it on 127.0.0.1, open every page in
headless Chromium and check that each has its title and headings, that every image loads (natural width > 0), and
that no error output or traceback shows, that the title comes before any code, that no Markdown table is left as
raw `|---|` text and that no cell output holds a WARNING. Screenshots: OUT_DIR/screens/PAGE.png.

    python .ci/docs_browser.py [OUT_DIR]        (exit 0: every page passed; 1: not)
"""

import re
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from browser import BrowserHung, browse, find_chromium, serve  # noqa: E402

PROBE = (
    "<script>window.addEventListener('load', () => { const im = [...document.images]; document.body.setAttribute("
    "'data-images', im.filter(i => i.complete && i.naturalWidth > 0).length + '/' + im.length); });</script>"
)


def main() -> None:
    root = Path(__file__).resolve().parents[1]
    out = Path(sys.argv[1] if len(sys.argv) > 1 else ".ci/out").resolve()
    (out / "screens").mkdir(parents=True, exist_ok=True)
    chromium = find_chromium()
    if chromium is None:
        print("docs_browser: FAIL: chromium not found (apt install chromium)")
        sys.exit(1)
    site = Path(tempfile.mkdtemp(prefix="heart_nb_site_"))
    r = subprocess.run([str(root / ".ci" / "docs"), str(site)], capture_output=True, text=True)
    if r.returncode:
        print(f"docs_browser: FAIL: .ci/docs failed: {r.stderr.strip()[-800:]}")
        sys.exit(1)
    pages = sorted(site.glob("*.html"))
    for p in pages:
        p.write_text(p.read_text().replace("</body>", PROBE + "</body>", 1))  # the probe: served copy only
    problems, summary = [], []
    with serve(site) as base:
        for p in pages:
            url = f"{base}/{p.name}"
            shot = out / "screens" / f"{p.stem}.png"
            try:
                dom = browse(chromium, url, "--dump-dom", budget_ms=10000)
                browse(chromium, url, "--window-size=1200,1400", f"--screenshot={shot}", budget_ms=10000)
            except BrowserHung as e:
                problems.append(f"{p.name}: {e}")
                continue
            title = re.search(r"<title>(.*?)</title>", dom, re.S)
            heads = len(re.findall(r"<h[12][\s>]", dom))
            imgs = re.search(r'data-images="(\d+)/(\d+)"', dom)
            bad = []
            if not title or not title.group(1).strip() or title.group(1).strip().startswith("Notebook"):
                bad.append("no title")
            if heads == 0:
                bad.append("no headings")
            if not imgs:
                bad.append("the page did not finish loading")
            elif imgs.group(1) != imgs.group(2):
                bad.append(f"{int(imgs.group(2)) - int(imgs.group(1))} of {imgs.group(2)} images did not load")
            if "Traceback (most recent call last)" in dom or re.search(
                r'<div[^>]*data-mime-type="application/vnd.jupyter.stderr"', dom
            ):
                bad.append("error output")
            prose = re.sub(r'<div class="highlight[^"]*"><pre>.*?</pre>', "", dom, flags=re.S)  # without input code
            if re.search(r"\|\s*:?-{3,}:?\s*\|", re.sub(r"<code>.*?</code>", "", prose, flags=re.S)):
                bad.append("a Markdown table shown as raw |---| text")
            if "WARNING" in prose:
                bad.append("a cell output holds a WARNING")
            h1, code = dom.find("<h1"), dom.find('class="jp-Cell jp-CodeCell')
            if h1 < 0 or 0 <= code < h1:
                bad.append("code before the title")
            if 'class="heart-nb-sidebar"' not in dom:
                bad.append("no sidebar")
            shown = imgs.group(0)[13:-1] if imgs else "?"
            summary.append(f"{p.name}: {title.group(1).strip() if title else '?'}, {heads} headings, images {shown}")
            problems += [f"{p.name}: {b}" for b in bad]
    print("\n".join(summary))
    if problems:
        print("docs_browser: FAIL: " + "; ".join(problems))
        sys.exit(1)
    print(
        f"docs_browser: {len(pages)} pages rendered in {Path(chromium).name}: titles, headings, images, no errors; "
        f"screenshots in {out / 'screens'}"
    )


if __name__ == "__main__":
    main()
