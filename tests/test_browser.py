"""End to end in a real browser: init a database with the bundled model, run the app, upload, predict, label.

Needs Chromium at /usr/bin/chromium and the ``playwright`` Python package (no downloaded browsers);
skipped when either is missing. Screenshots go to ``artifacts/screenshots/``.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

PROJECT = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
SHOTS = PROJECT / "artifacts" / "screenshots"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(f"{CHROMIUM} not found (apt-get install chromium)", allow_module_level=True)
sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
expect = sync_api.expect


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _tail(path: Path, chars: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-chars:]
    except OSError:
        return ""


def _serve(tmp_path: Path, db: Path, port: int | None = None, args: tuple[str, ...] = (), env: dict | None = None):
    """A Streamlit server over ``db`` on a free port (or ``port``) with extra command-line ``args``
    and environment ``env``: yields (url, log path), stops it after."""
    env = {**os.environ, "COLDREC_DB": str(db), "HF_HUB_OFFLINE": "1", **(env or {})}
    port = port or _free_port()
    log_path = tmp_path / "streamlit.log"
    with open(log_path, "w") as log:
        server = subprocess.Popen(
            [
                sys.executable, "-m", "streamlit", "run", "app.py",
                "--server.headless", "true",
                "--server.port", str(port),
                "--server.address", "127.0.0.1",
                "--browser.gatherUsageStats", "false",
                *args,
            ],
            cwd=PROJECT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            if server.poll() is not None:
                pytest.fail(f"streamlit exited with {server.returncode}; log {log_path}:\n{_tail(log_path)}")
            try:
                with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as resp:
                    if resp.read().decode().strip() == "ok":
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"streamlit not healthy after 90 s; log {log_path}:\n{_tail(log_path)}"
            time.sleep(0.5)
        yield url, log_path
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=5)


@pytest.fixture
def app_url(tmp_path: Path):
    """A fresh database (real model, demo catalog) and a Streamlit server on a free port; yields its URL."""
    db = tmp_path / "e2e.duckdb"
    env = {**os.environ, "COLDREC_DB": str(db), "HF_HUB_OFFLINE": "1"}
    init = subprocess.run(
        [sys.executable, "-m", "coldrec", "init"], cwd=PROJECT, env=env, capture_output=True, text=True, timeout=600
    )
    assert init.returncode == 0, f"coldrec init failed:\n{init.stdout[-2000:]}\n{init.stderr[-3000:]}"
    yield from _serve(tmp_path, db)


@pytest.fixture
def empty_app_url(tmp_path: Path):
    """A Streamlit server over a database file that does not exist yet; yields its URL."""
    yield from _serve(tmp_path, tmp_path / "new.duckdb")


def test_upload_predict_label_in_browser(app_url) -> None:
    url, log_path = app_url
    SHOTS.mkdir(parents=True, exist_ok=True)
    where = f"(server log: {log_path})"

    def title(text: str):
        return page.locator("h1", has_text=re.compile(rf"^{re.escape(text)}$"))

    def open_page(name: str, heading: str) -> None:
        # Seen once in four traced runs (websocket frames logged): a page link clicked in the second
        # between a run that ended with st.rerun() (an onboarding step) and that rerun is answered
        # with the old page: Streamlit folds the click's rerun request into the script's own. The
        # request was sent and the server was idle afterwards, so the click is made again.
        link = page.locator('[data-testid="stSidebarNav"] a', has_text=re.compile(rf"{re.escape(name)}$"))
        for attempt in range(3):
            link.click()
            try:
                expect(title(heading)).to_be_visible(timeout=30_000 if attempt < 2 else 90_000)
                break
            except AssertionError:
                if attempt == 2:
                    raise AssertionError(f"no '{heading}' title {where}") from None
        page.wait_for_timeout(300)  # the run starts after the title of the new page arrives
        settle(name)

    def no_exception(name: str) -> None:
        boxes = page.locator('[data-testid="stException"]')
        assert boxes.count() == 0, f"exception on the {name} page: {boxes.first.inner_text()[:2000]} {where}"

    def subheader(pattern: str):
        return page.locator("h3", has_text=re.compile(pattern))

    def settle(what: str) -> None:
        """Wait until the script run is over (the running/Stop status widget unmounts when idle)."""
        expect(page.locator('[data-testid="stStatusWidget"]'), f"{what}: app still running {where}").to_have_count(
            0, timeout=90_000
        )

    def charts_drawn(scope) -> None:
        for chart in scope.locator('[data-testid="stPlotlyChart"]').all():
            expect(chart.locator(".main-svg").first).to_be_visible(timeout=30_000)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})

            # Overview
            page.goto(url)
            expect(title("Overview"), f"no Overview title {where}").to_be_visible(timeout=90_000)
            expect(page.get_by_text("Catalog items")).to_be_visible(timeout=30_000)
            expect(subheader("^Latest uploads$")).to_be_visible(timeout=60_000)
            settle("Overview")
            charts_drawn(page)
            no_exception("Overview")
            page.screenshot(path=SHOTS / "overview_fresh.png")

            # Upload & predict
            open_page("Upload & predict", "Upload & predict")
            page.locator('[data-testid="stFileUploader"] input[type="file"]').set_input_files(
                PROJECT / "data" / "demo" / "new_arrivals.csv"
            )
            predict = page.get_by_role("button", name="Predict", exact=True)
            expect(predict, f"no Predict button after upload {where}").to_be_visible(timeout=60_000)
            no_exception("Upload & predict (mapping)")
            predict.click()
            counts = subheader(r"^72 predictions · \d+ unsure · 0 labelled$")
            expect(counts, f"no predictions subheader {where}").to_be_visible(timeout=120_000)
            settle("predict")
            no_exception("Upload & predict (predictions)")

            # Select the first result row: click its selection checkbox on the grid canvas.
            # The demo's own batch was on screen before the upload: wait until its table is replaced.
            page.wait_for_timeout(1_000)
            settle("results table")
            grid = page.locator('[data-testid="stDataFrame"]').last
            expect(grid, f"no results table {where}").to_be_visible(timeout=60_000)
            grid.scroll_into_view_if_needed()
            accept = page.get_by_role("button", name=re.compile(r"^Accept: "))
            box = grid.bounding_box()
            assert box, "results table has no bounding box"
            targets = [(box["x"] + 15, box["y"] + 35 + 17), (box["x"] + 120, box["y"] + 35 + 17)]
            for x, y in targets:
                page.mouse.click(x, y)
                try:
                    accept.wait_for(state="visible", timeout=15_000)
                    break
                except sync_api.TimeoutError:
                    continue
            expect(accept, f"selecting the first row shows no Accept button {where}").to_be_visible(timeout=5_000)
            category = accept.inner_text().strip().removeprefix("Accept: ").strip()
            assert category, "Accept button names no category"
            settle("row detail")
            charts_drawn(page)
            no_exception("Upload & predict (row detail)")
            # Predictions subheader at the top: the table with its selected row and the detail below it.
            counts.evaluate("el => el.scrollIntoView({block: 'start'})")
            page.screenshot(path=SHOTS / "upload.png")

            accept.click()
            labelled = subheader(r"^72 predictions · \d+ unsure · 1 labelled$")
            expect(labelled, f"label not saved {where}").to_be_visible(timeout=60_000)
            settle("accept")
            badge = page.get_by_text(f"Labelled: {category}", exact=True)
            expect(badge, f"no 'Labelled: {category}' after accepting {where}").to_be_visible(timeout=30_000)
            no_exception("Upload & predict (after accept)")

            # The label survives a reload (it lives in DuckDB, not the session).
            page.reload()  # stays on the /upload URL with a fresh session
            expect(page.locator("h1").first, f"no title after reload {where}").to_be_visible(timeout=60_000)
            open_page("Upload & predict", "Upload & predict")
            expect(labelled, f"label lost on reload {where}").to_be_visible(timeout=60_000)
            no_exception("Upload & predict (after reload)")

            # Label
            open_page("Label", "Label")
            expect(page.get_by_role("button", name="Save labels")).to_be_visible(timeout=60_000)
            settle("Label")
            charts_drawn(page)
            no_exception("Label")
            page.screenshot(path=SHOTS / "label.png")

            # Label next: the 1 key accepts the first suggestion and the next item comes up
            open_page("Label next", "Label next")
            first = page.get_by_role("button", name=re.compile(r"^1 · "))
            expect(first, f"no suggestion button {where}").to_be_visible(timeout=60_000)
            settle("Label next")
            item_title = page.locator("h3").first.inner_text()
            page.keyboard.press("1")
            expect(page.locator("h3").first, f"key 1 did not label {where}").not_to_have_text(item_title, timeout=60_000)
            expect(page.get_by_text("Label its look-alikes too")).to_be_visible(timeout=60_000)
            settle("Label next (after key 1)")
            charts_drawn(page)
            no_exception("Label next")
            page.screenshot(path=SHOTS / "queue.png")

            # Explore: the stored map, and the SQL box refusing a write
            open_page("Explore", "Explore")
            expect(page.locator(".js-plotly-plot").first, f"no map {where}").to_be_visible(timeout=120_000)
            settle("Explore")
            charts_drawn(page)
            no_exception("Explore")
            page.screenshot(path=SHOTS / "explore.png")

            # Categories & model
            open_page("Categories & model", "Categories & model")
            settle("Categories & model")
            no_exception("Categories & model")
            page.screenshot(path=SHOTS / "categories.png")

            # Audience: shoppers for an uploaded product (demo purchases are loaded by init)
            open_page("Audience", "Audience")
            expect(page.get_by_text("Strong audience").first, f"no audience sizes {where}").to_be_visible(
                timeout=60_000
            )
            expect(page.locator('[data-testid="stDataFrame"]').first, f"no audience table {where}").to_be_visible()
            settle("Audience")
            no_exception("Audience")
            page.screenshot(path=SHOTS / "audience.png")

            # Overview again, now with uploads, and a typed product predicted at once
            open_page("Overview", "Overview")
            box = page.get_by_label("Title on the first line, description below")
            box.fill("Enamelled cast iron casserole 24cm\nHolds heat for slow cooking; oven safe to 250°C.")
            box.press("Control+Enter")
            expect(page.get_by_text("Similar catalog items"), f"typed product not predicted {where}").to_be_visible(
                timeout=60_000
            )
            settle("Overview (typed product)")
            charts_drawn(page)
            no_exception("Overview (typed product)")
            page.screenshot(path=SHOTS / "overview.png")
        finally:
            browser.close()


PAGES = [  # sidebar name, page title, screenshot name
    ("Overview", "Overview", "overview"),
    ("Upload & predict", "Upload & predict", "upload"),
    ("Label next", "Label next", "queue"),
    ("Label", "Label", "label"),
    ("Explore", "Explore", "explore"),
    ("Audience", "Audience", "audience"),
    ("Categories & model", "Categories & model", "categories"),
]


def test_from_an_empty_database_to_labels_and_a_map_in_browser(empty_app_url) -> None:
    """A newcomer's journey: every page empty (no traceback, a next step), categories imported and
    one added from the page, an upload predicted, a label, the map; every page shot in both states."""
    url, log_path = empty_app_url
    SHOTS.mkdir(parents=True, exist_ok=True)
    where = f"(server log: {log_path})"

    def title(text: str):
        return page.locator("h1", has_text=re.compile(rf"^{re.escape(text)}$"))

    def settle(what: str) -> None:
        expect(page.locator('[data-testid="stStatusWidget"]'), f"{what}: app still running {where}").to_have_count(
            0, timeout=120_000
        )

    def open_page(name: str, heading: str) -> None:
        # A navigation click made while the previous page was still finishing is sometimes lost
        # (seen in about one run in three since this round's merges, not yet understood: the
        # server is idle, no script runs): click again, at most three times.
        link = page.locator('[data-testid="stSidebarNav"] a', has_text=re.compile(rf"{re.escape(name)}$"))
        for attempt in range(3):
            link.click()
            try:
                expect(title(heading)).to_be_visible(timeout=30_000 if attempt < 2 else 90_000)
                break
            except AssertionError:
                if attempt == 2:
                    raise AssertionError(f"no '{heading}' title {where}") from None
        page.wait_for_timeout(300)  # the run starts after the title of the new page arrives
        settle(name)

    def no_exception(name: str) -> None:
        boxes = page.locator('[data-testid="stException"]')
        assert boxes.count() == 0, f"exception on the {name} page: {boxes.first.inner_text()[:2000]} {where}"

    def shoot(name: str) -> None:
        """A screenshot once the page's charts are drawn (a tall window: Streamlit scrolls inside the page)."""
        settle(name)
        for chart in page.locator('[data-testid="stPlotlyChart"]').all():
            expect(chart.locator(".main-svg").first).to_be_visible(timeout=60_000)
        page.screenshot(path=SHOTS / f"{name}.png")

    def upload(label: str, path: Path) -> None:
        box = page.locator('[data-testid="stFileUploader"]').filter(has_text=label).first
        box.locator('input[type="file"]').set_input_files(path)

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.goto(url)
            expect(title("Overview"), f"no Overview title {where}").to_be_visible(timeout=120_000)
            settle("Overview")

            # Every page on the empty database: no traceback, and a message saying what to do.
            for name, heading, shot in PAGES:
                open_page(name, heading)
                no_exception(f"{name} (empty)")
                expect(page.locator('[data-testid="stAlertContentInfo"]').first, f"{name}: no empty state {where}").to_be_visible()
                shoot(f"empty_{shot}")

            # Categories from a file, in place on the Overview's empty state.
            open_page("Overview", "Overview")
            page.get_by_role("tab", name="Import categories or a taxonomy").click()
            upload("Categories or taxonomy file", PROJECT / "data" / "demo" / "categories.csv")
            imported = page.get_by_role("button", name="Import categories", exact=True)
            expect(imported, f"no Import categories button {where}").to_be_visible(timeout=60_000)
            imported.click()
            expect(page.get_by_text("New arrivals", exact=False).first, f"categories not imported {where}").to_be_visible(timeout=60_000)
            settle("import categories")
            no_exception("Overview (categories imported)")

            # One more category typed in on Categories & model. The category table is drawn on a
            # canvas and the "Added" toast lasts seconds (under load it was gone before the check
            # ran, which read as a lost click): the sidebar's category count is what must move.
            open_page("Categories & model", "Categories & model")
            count = page.locator('[data-testid="stSidebar"]').get_by_text(re.compile(r"Categories: \d+")).first
            before = int(re.search(r"Categories: (\d+)", count.inner_text()).group(1))
            page.get_by_text("Add a category", exact=True).click()
            page.get_by_label("Name", exact=True).fill("Car Care")
            page.get_by_label("One-line description (zero-shot prediction reads it)").fill("Engine oil, car wax and cleaning for cars")
            page.get_by_role("button", name="Add category").click()
            expect(count, f"category not added {where}").to_have_text(re.compile(rf"Categories: {before + 1}$"), timeout=60_000)
            settle("add category")
            no_exception("Categories & model (added)")

            # Upload and predict.
            open_page("Upload & predict", "Upload & predict")
            page.locator('[data-testid="stFileUploader"] input[type="file"]').first.set_input_files(
                PROJECT / "data" / "demo" / "new_arrivals.csv"
            )
            predict = page.get_by_role("button", name="Predict", exact=True)
            expect(predict, f"no Predict button after upload {where}").to_be_visible(timeout=60_000)
            predict.click()
            expect(page.locator("h3", has_text=re.compile(r"^72 predictions")), f"no predictions {where}").to_be_visible(timeout=180_000)
            settle("predict")
            no_exception("Upload & predict (predictions)")

            # Label next: "none of these" never preselects; key 1 labels.
            open_page("Label next", "Label next")
            first = page.get_by_role("button", name=re.compile(r"^1 · "))
            expect(first, f"no suggestion {where}").to_be_visible(timeout=60_000)
            item_title = page.locator("h3").first.inner_text()
            page.keyboard.press("1")
            expect(page.locator("h3").first, f"key 1 did not label {where}").not_to_have_text(item_title, timeout=60_000)
            settle("Label next (key 1)")
            no_exception("Label next (labelled)")

            # Explore: the map is drawn, and drift explains that there is no catalog.
            open_page("Explore", "Explore")
            expect(page.locator(".js-plotly-plot").first, f"no map {where}").to_be_visible(timeout=180_000)
            settle("Explore")
            no_exception("Explore")

            # Fine-tune: the section says what it needs before it is offered (one label per category
            # is far below the rule), with no exception on the way.
            open_page("Categories & model", "Categories & model")
            expect(page.get_by_text("Improve the model on your labels").first, f"no fine-tuning section {where}").to_be_visible(timeout=60_000)
            expect(page.get_by_text("label examples of at least two categories first").or_(
                page.get_by_text("fine-tuning needs")).first, f"no fine-tuning readiness {where}").to_be_visible(timeout=60_000)
            no_exception("Categories & model (fine-tune)")

            # Every page again, now with data.
            for name, heading, shot in PAGES:
                open_page(name, heading)
                no_exception(f"{name} (filled)")
                shoot(f"filled_{shot}")
        finally:
            browser.close()
