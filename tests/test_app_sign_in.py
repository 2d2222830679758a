"""Sign-in in the dashboard (Streamlit AppTest with a seeded ``st.user``; the browser test with a
real OpenID provider is in test_browser_sign_in.py): nothing but a sign-in screen before sign-in,
the identity and role in the sidebar after, and the roles enforced on a page."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from tests.conftest import PROJECT

AUTH = {
    "auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32, "client_id": "coldrec",
             "client_secret": "secret", "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"},
    "coldrec": {"admins": ["lead@shop.test"]},
}


def _app(user: dict | None, page: str = "app.py") -> AppTest:
    at = AppTest.from_file(str(PROJECT / page), default_timeout=60)
    at.secrets = AUTH
    if user is not None:
        at.user = user
    return at


def _everything_said(at: AppTest) -> str:
    parts = [e.value for kind in ("title", "markdown", "caption", "info", "warning", "error") for e in getattr(at, kind)]
    parts += [m.label for m in at.metric] + [b.label for b in at.button]
    return "\n".join(map(str, parts)).replace("\\", "")  # markdown escapes: "a\\.b" reads "a.b"


def test_before_sign_in_only_the_sign_in_screen_shows(app_env):
    at = _app({"is_logged_in": False}).run()
    assert not at.exception
    assert [t.value for t in at.title] == ["coldrec"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.metric and not at.dataframe and not at.sidebar.text_input
    said = _everything_said(at)
    assert "Catalog items" not in said and "Labelled" not in said and "steel" not in said
    # A page opened directly, without app.py, shows nothing either.
    page = _app({"is_logged_in": False}, "pages/label.py").run()
    assert not page.exception and not page.title and not page.dataframe


def test_signed_in_without_a_role_sees_whom_to_ask_and_nothing_else(app_env):
    at = _app({"is_logged_in": True, "email": "Stranger@Else.test"}).run()
    assert not at.exception
    said = _everything_said(at)
    assert "You are signed in as stranger@else.test, but you have no role" in said
    assert "Ask an admin to add you on the Roles page: lead@shop.test" in said
    assert not at.metric and [b.label for b in at.button] == ["Sign out"]


def test_a_signed_in_admin_sees_the_dashboard_with_identity_and_no_name_box(app_env):
    at = _app({"is_logged_in": True, "email": "lead@shop.test"}).run()
    assert not at.exception
    assert at.title[0].value == "Overview"
    assert any("lead@shop.test" in c.value.replace("\\", "") and "admin" in c.value for c in at.sidebar.caption)
    assert not at.sidebar.text_input  # no free-text name while sign-in is on
    assert {m.label for m in at.sidebar.metric} >= {"Catalog items"}


def test_a_viewer_cannot_add_a_category_on_the_page(app_env):
    at = _app({"is_logged_in": True, "email": "lead@shop.test"}, "pages/roles.py").run()
    at.text_input[0].input("vic@shop.test")
    at.radio[0].set_value("viewer")
    at.button[0].click().run()
    assert not at.exception and not at.error
    viewer = _app({"is_logged_in": True, "email": "vic@shop.test"}, "pages/label.py").run()
    assert not viewer.exception
    form = [t for t in viewer.text_input if t.label == "Name"][0]
    form.input("Toys")
    [b for b in viewer.button if b.label == "Add category"][0].click().run()
    assert "needs the admin role" in viewer.error[0].value
    from coldrec import ui

    ws = ui._open_workspace()  # the dashboard's cached workspace (it holds the database file)
    assert "Toys" not in ws.store.category_names()
    assert ws.store.role_of("vic@shop.test") == "viewer"


def test_a_label_someone_gave_meanwhile_is_shown_on_the_card_not_overwritten(app_env, tiny_encoder):
    import pandas as pd

    from coldrec import access, ui
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    with Workspace(Store(app_env / "app.duckdb"), tiny_encoder) as ws:
        ws.predictor.upload_and_predict(pd.DataFrame({"item_id": ["n1", "n2"], "title": ["steel pan", "leather boot"],
                                            "description": ["", ""]}), batch="b1")
        ws.access.configure(sign_in=True, admins=["lead@shop.test"])
        for email in ("ana@shop.test", "bo@shop.test"):
            access.set_role(ws, "lead@shop.test", email, "labeller")
    at = _app({"is_logged_in": True, "email": "ana@shop.test"}, "pages/queue.py").run()
    assert not at.exception
    item = ui._open_workspace().store.claims().set_index("who").loc["ana@shop.test", "item_id"]  # ana's card
    ui._open_workspace().labels.label(item, "Pet Supplies", who="bo@shop.test")  # bo, in another session, meanwhile
    next(b for b in at.button if b.label.startswith("1 · ")).click().run()
    said = _everything_said(at).replace("**", "")
    assert "bo@shop.test labelled" in said and "as Pet Supplies while you were looking at it" in said, said
    labels = ui._open_workspace().store.labels().set_index("item_id")
    assert labels.loc[item, "who"] == "bo@shop.test"  # not overwritten
    next(b for b in at.button if b.label.startswith("Save ") and b.label.endswith(" anyway")).click().run()
    assert not at.exception
    labels = ui._open_workspace().store.labels().set_index("item_id")
    assert labels.loc[item, "who"] == "ana@shop.test"  # her choice, saved knowingly
