"""What the two browser checks share: Debian's chromium with the project's flags, and a local web server."""

import contextlib
import functools
import http.server
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def find_chromium() -> str | None:
    "The chromium executable, or None."
    return shutil.which("chromium") or shutil.which("chromium-browser")


@contextlib.contextmanager
def serve(folder: Path):
    "Serve `folder` on 127.0.0.1 (a free port) while the block runs; yields the base URL."

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a):
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}"
    finally:
        srv.shutdown()


def browse(chromium: str, url: str, *extra: str, budget_ms: int = 20000) -> str:
    "Open `url` in headless chromium with a fresh profile and `extra` flags (--dump-dom, --screenshot=...); its stdout."
    prof = tempfile.mkdtemp(prefix="chromium_")
    return subprocess.run(
        [chromium, *FLAGS, f"--user-data-dir={prof}", f"--virtual-time-budget={budget_ms}", *extra, url],
        capture_output=True,
        text=True,
        timeout=180,
    ).stdout
