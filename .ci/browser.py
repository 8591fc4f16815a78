"""What the two browser checks share: Debian's chromium with the project's flags, and a local web server."""

import contextlib
import functools
import http.server
import os
import shutil
import signal
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


class BrowserHung(RuntimeError):
    "Chromium did not finish a page within its time limit, twice."


def browse(chromium: str, url: str, *extra: str, budget_ms: int = 20000, limit_s: int = 180) -> str:
    """Open `url` in headless chromium (fresh profile, `extra` flags: --dump-dom, --screenshot=...); its stdout.

    Headless chromium now and then hangs on a page it renders in seconds (seen once in CI, on a loaded machine): a
    run past `limit_s` is killed with all its processes and tried once more with a fresh profile; a second hang
    raises `BrowserHung`, one line naming the page, which the checks report as that page's failure."""
    for attempt in (1, 2):
        prof = tempfile.mkdtemp(prefix="chromium_")
        cmd = [chromium, *FLAGS, f"--user-data-dir={prof}", f"--virtual-time-budget={budget_ms}", *extra, url]
        proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
        )
        try:
            return proc.communicate(timeout=limit_s)[0]
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
            print(f"browser: chromium hung on {url} ({' '.join(extra)}) for {limit_s} s, attempt {attempt} of 2")
        finally:
            shutil.rmtree(prof, ignore_errors=True)
    raise BrowserHung(f"chromium did not finish {url} within {limit_s} s, twice")
