"""Click-to-settled times in a real Chromium on the demo database (used by bench_clicks.py --browser).

A Streamlit server runs over a fresh demo database (``python -m coldrec init``); Playwright
presses keys on Label next and clicks on Upload & predict, and times each from the key press
to the moment the page shows the result (the next item's title; for undo, the look-alike offer
of the undone label gone) and Streamlit's running indicator is gone, polled on every animation
frame, so the figure carries no polling delay of its own. The indicator shows only for runs
that last a moment, so the visible result is what the figure really waits for.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"

_SETTLED = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
_H3_CHANGED = "t => { const h = document.querySelector('h3'); return h && h.innerText !== t; }"
# Undo clears the look-alike offer of the undone label: the page has settled when it is gone.
_UNDONE = "() => !document.body.innerText.includes('label its look-alikes too?')"


def browser_clicks(repeats: int = 3) -> dict[str, dict[str, float]]:
    """Median and max seconds from a key press or click until the page has settled."""
    from playwright.sync_api import sync_playwright

    from benchmarks._harness import CHROMIUM_ARGS
    from benchmarks._harness import free_port as _free_port

    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "COLDREC_DB": str(Path(tmp) / "demo.duckdb"), "HF_HUB_OFFLINE": "1"}
        subprocess.run([sys.executable, "-m", "coldrec", "init"], cwd=ROOT, env=env, check=True, capture_output=True)
        port = _free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1"], cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
                page = browser.new_page(viewport={"width": 1400, "height": 1800})
                for _ in range(120):
                    try:
                        page.goto(f"http://127.0.0.1:{port}/queue", timeout=5_000)
                        break
                    except Exception:  # noqa: BLE001 - the server is still starting
                        time.sleep(1)
                page.get_by_role("button", name="Skip for now").wait_for(timeout=180_000)
                page.wait_for_function(_SETTLED, polling="raf", timeout=120_000)

                def timed(name: str, action, done: str, arg=None) -> None:  # noqa: ANN001
                    started = time.perf_counter()
                    action()
                    page.wait_for_function(done, arg=arg, polling="raf", timeout=120_000)
                    page.wait_for_timeout(50)  # let a rerun that was about to start show its indicator
                    page.wait_for_function(_SETTLED, polling="raf", timeout=120_000)
                    times.setdefault(name, []).append(time.perf_counter() - started - 0.05)

                for _ in range(repeats):
                    for key, name in (("1", "Label next: key 1"), ("s", "Label next: skip (S)")):
                        title = page.locator("h3").first.inner_text()
                        timed(name, lambda k=key: page.keyboard.press(k), _H3_CHANGED, title)
                    timed("undo (U)", lambda: page.keyboard.press("u"), _UNDONE)
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {name: {"median_s": round(statistics.median(v), 3), "max_s": round(max(v), 3), "n": len(v)}
            for name, v in times.items()}


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    for action, figure in browser_clicks().items():
        print(f"{action:<30} median {figure['median_s']:.3f} s  max {figure['max_s']:.3f} s  (n={figure['n']})")
