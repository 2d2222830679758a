"""Sign-in end to end: a local OpenID Connect provider (``oidc-provider-mock``), the dashboard with an
``[auth]`` section, and three people in three browser contexts: two labellers and a viewer.

Checks: before sign-in only the sign-in screen shows; after it the sidebar names the person and
role; the two labellers on Label next see different cards (claims); a labeller's label is
attributed to their email on the Audit page; the viewer's click on a suggestion is refused by
the library and says why, and the viewer may not save roles.
Needs Chromium at /usr/bin/chromium and the playwright and oidc-provider-mock packages.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pytest

from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, SHOTS, _free_port, _serve, expect, sync_api

pytestmark = pytest.mark.browser
oidc = pytest.importorskip("oidc_provider_mock", reason="the oidc-provider-mock package is not installed")

ADMIN, ANA, BO, VIC = "lead@shop.test", "ana@shop.test", "bo@shop.test", "vic@shop.test"


@pytest.fixture
def team_db(tmp_path: Path, tiny_encoder, small_catalog) -> Path:
    """The small catalog, an upload of new arrivals to label, and roles for three people (tiny model)."""
    from coldrec import access
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    catalog, categories = small_catalog
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    categories.to_csv(tmp_path / "categories.csv", index=False)
    db = tmp_path / "team.duckdb"
    with Workspace(Store(db), tiny_encoder) as ws:
        ws.imports.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
        arrivals = pd.DataFrame({"item_id": [f"n{i}" for i in range(6)], "description": [""] * 6,
                                 "title": ["steel pan large", "leather boot brown", "dog food big", "wok lid",
                                           "cotton socks", "cat toy mouse"]})
        ws.predictor.upload_and_predict(arrivals, batch="arrivals")
        ws.access.configure(sign_in=True, admins=[ADMIN])
        for email, role in ((ANA, "labeller"), (BO, "labeller"), (VIC, "viewer")):
            access.set_role(ws, ADMIN, email, role)
    return db


def test_two_labellers_and_a_viewer_sign_in_and_do_what_their_roles_allow(tmp_path, team_db, tiny_model_dir):
    with oidc.run_server_in_thread() as provider:
        port = _free_port()
        issuer = f"http://127.0.0.1:{provider.server_port}"
        secrets = tmp_path / "secrets.toml"
        secrets.write_text(
            "[auth]\n"
            f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
            f'cookie_secret = "{"c0ldrec-test-" * 4}"\n'
            'client_id = "coldrec-test"\nclient_secret = "not-secret"\n'
            f'server_metadata_url = "{issuer}/.well-known/openid-configuration"\n'
            f'[coldrec]\nadmins = ["{ADMIN}"]\n'
        )
        env = {"COLDREC_MODEL": str(tiny_model_dir), "COLDREC_DEVICE": "cpu"}
        server = _serve(tmp_path, team_db, port=port, args=("--secrets.files", str(secrets)), env=env)
        url, log_path = next(server)
        where = f"(server log: {log_path})"
        try:
            _journey(url, where)
        finally:
            server.close()


def _journey(url: str, where: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            ana, bo, vic = (_signed_in(browser, url, email, where) for email in (ANA, BO, VIC))
            expect(ana.get_by_text(f"Signed in as {ANA} · labeller")).to_be_visible(timeout=30_000)
            expect(vic.get_by_text(f"Signed in as {VIC} · viewer")).to_be_visible(timeout=30_000)
            assert ana.get_by_text("Your name (recorded with labels)").count() == 0  # no free-text identity

            # Both labellers open Label next: each gets a card the other is not looking at.
            cards = []
            for page in (ana, bo):
                _open(page, "Label next", where)
                heading = page.locator("h3").first  # the card's title (the sidebar has none)
                expect(heading, f"no card {where}").to_be_visible(timeout=60_000)
                cards.append(heading.inner_text().strip())
            assert cards[0] and cards[1] and cards[0] != cards[1], cards
            ana.screenshot(path=SHOTS / "sign_in_labeller_card.png")

            # Ana takes the first suggestion: the Audit page attributes it to her email.
            ana.get_by_role("button", name=re.compile(r"^1 · ")).click()
            _settle(ana, where)
            _open(ana, "Audit", where)
            expect(ana.get_by_text("Audit", exact=True).first).to_be_visible(timeout=30_000)
            grid = ana.locator('[data-testid="stDataFrame"]').first
            expect(grid).to_be_visible(timeout=30_000)
            csv = _download(ana, "Download as CSV")
            log = pd.read_csv(csv, dtype=str)
            mine = log[(log["who"] == ANA) & (log["action"] == "label")]
            assert len(mine) == 1 and mine["subject"].iloc[0] in {f"n{i}" for i in range(6)}, log.head()
            assert mine["source"].iloc[0] == "accepted"

            # The viewer sees the queue, and a click on a suggestion is refused by the library.
            _open(vic, "Label next", where)
            pick = vic.get_by_role("button", name=re.compile(r"^1 · "))
            expect(pick, f"no suggestion for the viewer {where}").to_be_visible(timeout=60_000)
            pick.click()
            expect(vic.get_by_text(re.compile(r"is a viewer: labelling needs the labeller role"))).to_be_visible(timeout=30_000)
            vic.screenshot(path=SHOTS / "sign_in_viewer_refused.png")
            _open(vic, "Roles", where)
            expect(vic.get_by_role("button", name="Save role")).to_be_disabled(timeout=30_000)
            for page in (ana, bo, vic):
                assert page.locator('[data-testid="stException"]').count() == 0, f"exception {where}"
        finally:
            browser.close()


def _signed_in(browser, url: str, email: str, where: str):
    """A new browser context (its own cookies) signed in as ``email`` through the provider's form."""
    page = browser.new_context(viewport={"width": 1400, "height": 1000}, accept_downloads=True).new_page()
    page.goto(url)
    sign_in = page.get_by_role("button", name="Sign in")
    expect(sign_in, f"no sign-in screen {where}").to_be_visible(timeout=90_000)
    # Before sign-in: no count, no item, no page list.
    assert page.get_by_text("Catalog items").count() == 0
    assert page.locator('[data-testid="stSidebarNav"]').count() == 0
    if email == ANA:
        page.screenshot(path=SHOTS / "sign_in_screen.png")
    sign_in.click()
    page.locator('input[name="sub"]').fill(email)
    page.get_by_role("button", name="Authorize").click()
    expect(page.get_by_text(f"Signed in as {email}"), f"{email} not signed in {where}").to_be_visible(timeout=90_000)
    return page


def _open(page, name: str, where: str) -> None:
    # Each person is a page of one headless browser: the one not in front is throttled like a hidden
    # tab (its connection lapsed while the others worked, about one run in three), so it comes to the
    # front first, as a person's window would.
    page.bring_to_front()
    page.locator('[data-testid="stSidebarNav"] a', has_text=re.compile(rf"{re.escape(name)}$")).click()
    expect(page.locator("h1", has_text=re.compile(rf"^{re.escape(name)}$")), f"no {name} page {where}").to_be_visible(
        timeout=60_000)
    _settle(page, where)


def _settle(page, where: str) -> None:
    expect(page.locator('[data-testid="stStatusWidget"]'), f"app still running {where}").to_have_count(0, timeout=90_000)


def _download(page, label: str) -> str:
    with page.expect_download(timeout=30_000) as download:
        page.locator('[data-testid="stDownloadButton"] button', has_text=label).click()  # not the table's own toolbar
    return download.value.path()
