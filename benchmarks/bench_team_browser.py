"""Five people labelling one queue at once in real browsers, signed in (issue 24).

A fresh demo database (``python -m coldrec init``, bundled model) gets ``--sessions`` labellers;
a local OpenID provider (``oidc-provider-mock``) signs each in through its form, in a browser
context of their own (one Chromium), and each opens Label next. Then all press **1** at the same
moment, ``--clicks`` times each, as fast as the page allows: each press is timed from the key
to the next card's title on screen with Streamlit's running indicator gone (polled on every
animation frame, as bench_clicks_browser.py does). After the server stops, the label history
says whether every press that showed a new card saved its label under that person's email (no
label lost) and whether any item got labels from two people (the claims should give none).

Usage: python benchmarks/bench_team_browser.py [--sessions 5] [--clicks 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._harness import CHROMIUM_ARGS, finish, free_port, result  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
_SETTLED = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
_H3_CHANGED = "t => { const h = document.querySelector('h3'); return h && h.innerText !== t; }"


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


async def _session(browser, url: str, email: str, ready: asyncio.Barrier, clicks: int, times: list[float]) -> int:  # noqa: ANN001
    context = await browser.new_context(viewport={"width": 1400, "height": 1800})
    page = await context.new_page()
    await page.goto(url)
    await page.get_by_role("button", name="Sign in").click(timeout=180_000)
    await page.locator('input[name="sub"]').fill(email)
    await page.get_by_role("button", name="Authorize").click()
    await page.get_by_text(f"Signed in as {email}").wait_for(timeout=180_000)
    await page.locator('[data-testid="stSidebarNav"] a', has_text="Label next").click()
    await page.get_by_role("button", name="Skip for now").wait_for(timeout=180_000)
    await page.wait_for_function(_SETTLED, polling="raf", timeout=120_000)
    await ready.wait()
    done = 0
    for _ in range(clicks):
        title = await page.locator("h3").first.inner_text()
        started = time.perf_counter()
        await page.keyboard.press("1")
        try:
            await page.wait_for_function(_H3_CHANGED, arg=title, polling="raf", timeout=120_000)
        except Exception:
            text = await page.locator("body").inner_text()
            raise RuntimeError(f"{email}: the card did not change after key 1 on {title!r}; the page says:\n{text[:3000]}") from None
        await page.wait_for_timeout(50)  # a rerun about to start shows its indicator
        await page.wait_for_function(_SETTLED, polling="raf", timeout=120_000)
        times.append(time.perf_counter() - started - 0.05)
        done += 1
    await context.close()
    return done


async def _sessions(url: str, people: list[str], clicks: int) -> tuple[dict[str, int], list[float], float]:
    from playwright.async_api import async_playwright

    times: list[float] = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        ready = asyncio.Barrier(len(people))
        began = time.perf_counter()
        done = await asyncio.gather(*(_session(browser, url, p, ready, clicks, times) for p in people))
        wall = time.perf_counter() - began
        await browser.close()
    return dict(zip(people, done)), times, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=8)
    args = parser.parse_args()
    import oidc_provider_mock

    from coldrec.store import Store

    people = [f"labeller{i}@bench.test" for i in range(args.sessions)]
    record = result("team_browser", sessions=args.sessions, clicks_each=args.clicks)
    with tempfile.TemporaryDirectory() as tmp, oidc_provider_mock.run_server_in_thread() as provider:
        db = Path(tmp) / "demo.duckdb"
        env = {**os.environ, "COLDREC_DB": str(db), "HF_HUB_OFFLINE": "1"}
        subprocess.run([sys.executable, "-m", "coldrec", "init"], cwd=ROOT, env=env, check=True, capture_output=True)
        with Store(db) as store:
            for email in people:
                store.set_role(email, "labeller", by="bench")
        port = free_port()
        secrets = Path(tmp) / "secrets.toml"
        secrets.write_text(
            f'[auth]\nredirect_uri = "http://127.0.0.1:{port}/oauth2callback"\ncookie_secret = "{"b3nch-" * 8}"\n'
            'client_id = "bench"\nclient_secret = "bench"\n'
            f'server_metadata_url = "http://127.0.0.1:{provider.server_port}/.well-known/openid-configuration"\n'
        )
        server = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true", "--server.port", str(port),
             "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false", "--secrets.files", str(secrets)],
            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            for _ in range(180):
                try:
                    with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2):
                        break
                except OSError:
                    time.sleep(1)
            pressed, times, wall = asyncio.run(_sessions(url, people, args.clicks))
        finally:
            server.terminate()
            server.wait(timeout=60)
        with Store(db, read_only=True) as store:
            history = store.label_history()
    mine = history[history["who"].isin(people)]
    per_person = mine.groupby("who")["item_id"].nunique().reindex(people, fill_value=0)
    record.update(
        wall_s=round(wall, 1), presses=pressed, labels_saved=per_person.to_dict(),
        labels_lost=int(sum(max(0, pressed[p] - int(per_person[p])) for p in people)),
        items_labelled_by_two_people=int((mine.groupby("item_id")["who"].nunique() > 1).sum()),
        click={"n": len(times), "median_s": round(statistics.median(times), 3), "p95_s": round(_p95(times), 3),
               "max_s": round(max(times), 3)},
    )
    print(finish(record, ROOT / "benchmarks" / "results" / "team_browser.json"))


if __name__ == "__main__":
    main()
