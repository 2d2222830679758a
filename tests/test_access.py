"""Issue 24 in the library: roles checked in the write paths, the audit trail, claims, conflicts
and agreement (tiny model, the small catalog)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pandas as pd
import pytest

from coldrec import access, audit, claims, explore, finetune, labelling
from coldrec.errors import LabelConflict, PermissionDenied, StoreError
from coldrec.export import to_csv_bytes
from coldrec.store import SCHEMA_VERSION, Store

NEW = pd.DataFrame({"item_id": ["n1", "n2", "n3"], "title": ["steel frying pan", "leather boot", "dog food pack"],
                    "description": [""] * 3})
ADMIN, LABELLER, VIEWER, OTHER = "lead@shop.test", "ana@shop.test", "vic@shop.test", "bo@shop.test"


@pytest.fixture
def team(workspace):
    """The workspace with an upload, sign-in on, one configured admin and three granted roles."""
    workspace.predictor.upload_and_predict(NEW, batch="b1")  # local mode: anyone may
    workspace.access.configure(sign_in=True, admins=[ADMIN])
    access.set_role(workspace, ADMIN, LABELLER, "labeller")
    access.set_role(workspace, ADMIN, OTHER.upper(), "labeller")  # stored in lower case
    access.set_role(workspace, ADMIN, VIEWER, "viewer")
    return workspace


def _labels(ws) -> pd.Series:
    return ws.store.labels().set_index("item_id")["category"]


def test_local_mode_lets_a_typed_name_do_everything_as_before(workspace):
    assert workspace.access.sign_in is False
    workspace.predictor.upload_and_predict(NEW, batch="b1", who="anyone")
    workspace.labels.label("n1", "Cookware", who="ana")
    workspace.catalog.add_category("Toys")
    assert access.roles_table(workspace).empty
    assert _labels(workspace)["n1"] == "Cookware"
    assert workspace.store.label_history("n1")["who"].iloc[0] == "ana"


def test_a_viewer_changes_nothing_and_is_told_why(team):
    before = (team.store.label_version(), team.store.category_names(), len(team.store.items()))
    attempts = [
        lambda: team.labels.label("n1", "Cookware", who=VIEWER),
        lambda: labelling.bulk_label(team, ["n1", "n2"], "Cookware", who=VIEWER),
        lambda: team.labels.undo(VIEWER),
        lambda: team.labels.save_label_edits(pd.Series({"n1": ""}), pd.Series({"n1": "Cookware"}), who=VIEWER),
        lambda: team.catalog.add_category("Toys", actor=VIEWER),
        lambda: team.predictor.upload_and_predict(NEW.assign(item_id=["x1", "x2", "x3"]), batch="b2", who=VIEWER),
        lambda: team.catalog.import_categories(pd.DataFrame({"name": ["Toys"]}), "c.csv", actor=VIEWER),
        lambda: team.models.set_encoder_choice("multilingual", actor=VIEWER),
        lambda: team.catalog.set_category_target("Cookware", 0.9, actor=VIEWER),
        lambda: access.set_role(team, VIEWER, VIEWER, "admin"),
        lambda: labelling.import_labels(team, b"item_id,category\nn1,Cookware\n", "l.csv", who=VIEWER),
    ]
    for attempt in attempts:
        with pytest.raises(PermissionDenied, match="viewer"):
            attempt()
    assert (team.store.label_version(), team.store.category_names(), len(team.store.items())) == before
    assert team.store.category_targets() == {}


def test_nobody_without_a_role_and_no_identity_may_write(team):
    for who in ("stranger@else.test", "", None):
        with pytest.raises(PermissionDenied, match="no role"):
            team.labels.label("n1", "Cookware", who=who)
    with pytest.raises(PermissionDenied):
        team.catalog.add_category("Toys")  # no actor at all while sign-in is on (a page that forgot to pass one)


def test_a_labeller_labels_undoes_and_bulk_labels_up_to_the_limit_but_administers_nothing(team, monkeypatch):
    team.labels.label("n1", "Cookware", who=LABELLER)
    assert _labels(team)["n1"] == "Cookware"
    assert team.labels.undo(LABELLER)["reverted"] == 1
    monkeypatch.setattr(access, "LABELLER_BULK_MAX", 2)
    assert labelling.bulk_label(team, ["n1", "n2"], "Cookware", who=LABELLER) == 2
    with pytest.raises(PermissionDenied, match="more than a labeller"):
        labelling.bulk_label(team, ["n1", "n2", "n3"], "Footwear", who=LABELLER)
    with pytest.raises(PermissionDenied, match="more than a labeller"):
        explore.cluster_to_category(team, "Boots", ["n1", "n2", "n3"], who=LABELLER)
    assert "Boots" not in team.store.category_names()  # refused before the category was made
    for attempt in (
        lambda: team.catalog.add_category("Toys", actor=LABELLER),
        lambda: team.models.set_encoder_choice("auto", actor=LABELLER),
        lambda: finetune.switch_version(team, None, actor=LABELLER),
        lambda: access.set_role(team, LABELLER, OTHER, "admin"),
        lambda: team.imports.import_interactions(b"user_id,item_id\nu1,n1\n", "p.csv", actor=LABELLER),
    ):
        with pytest.raises(PermissionDenied, match="needs the admin role"):
            attempt()
    assert _labels(team)[["n1", "n2"]].tolist() == ["Cookware", "Cookware"]
    assert "n3" not in _labels(team)


def test_an_admin_does_everything_and_roles_are_guarded(team):
    team.catalog.add_category("Toys", actor=ADMIN)
    team.catalog.set_category_target("Toys", 0.9, actor=ADMIN)
    assert labelling.bulk_label(team, ["n1", "n2", "n3"], "Toys", who=ADMIN) == 3
    team.imports.import_catalog(pd.DataFrame({"item_id": ["S1"], "title": ["wooden spoon"], "category": ["Cookware"]}), "more.csv",
                        actor=ADMIN)
    assert team.store.labels().set_index("item_id").loc["S1", "who"] == ADMIN  # not "catalog": who imported it
    access.set_role(team, ADMIN, VIEWER, "labeller")
    assert team.access.role_of(VIEWER) == "labeller"
    access.set_role(team, ADMIN, VIEWER, None)
    assert team.access.role_of(VIEWER) is None
    access.set_role(team, ADMIN, LABELLER, "admin")
    with pytest.raises(StoreError, match="own role"):
        access.set_role(team, LABELLER, LABELLER, "viewer")
    with pytest.raises(StoreError, match="configuration"):
        access.set_role(team, LABELLER, ADMIN, "viewer")
    with pytest.raises(StoreError, match="not an email"):
        access.set_role(team, ADMIN, "not an address", "viewer")
    with pytest.raises(StoreError, match="a role is one of"):
        access.set_role(team, ADMIN, OTHER, "owner")
    table = access.roles_table(team)
    assert table.loc[table["email"] == ADMIN, "source"].tolist() == ["configuration"]
    assert table.loc[table["email"] == OTHER, "role"].tolist() == ["labeller"]


def test_the_cli_through_the_dashboard_runs_as_the_local_operator(team):
    with access.local_operator():
        team.catalog.add_category("Toys")
    with pytest.raises(PermissionDenied):
        team.catalog.add_category("Games")


def test_the_audit_trail_lists_every_action_with_before_and_after(team):
    team.labels.label("n1", "Cookware", who=LABELLER)
    team.labels.label("n1", "Footwear", who=OTHER)
    team.labels.undo(OTHER)
    labelling.bulk_label(team, ["n2", "n3"], "Footwear", who=LABELLER)
    team.catalog.add_category("=Risky", actor=ADMIN)
    team.models.use_encoder(SimpleNamespace(name="another-model"), actor=ADMIN)
    log = audit.audit_log(team)
    assert list(log.columns) == audit.AUDIT_COLUMNS
    n1 = log[(log["subject"] == "n1") & (log["action"] == "label")]
    # Newest first: the undo puts Cookware back, after Footwear replaced it.
    assert n1[["who", "source", "before", "after"]].values.tolist()[:3] == [
        [OTHER, "undo", "Footwear", "Cookware"], [OTHER, "manual", "Cookware", "Footwear"], [LABELLER, "manual", None, "Cookware"],
    ]
    assert set(log.loc[log["subject"].isin(["n2", "n3"]) & (log["who"] == LABELLER), "source"]) == {"bulk"}
    actions = set(log["action"])
    assert {"label", "import", "category", "role", "model"} <= actions
    model = log[log["action"] == "model"].iloc[0]
    assert (model["who"], model["after"]) == (ADMIN, "another-model")
    uploads = log[(log["action"] == "import") & log["subject"].str.startswith("upload batch")]
    assert len(uploads) == 1
    assert audit.audit_log(team, who=OTHER, source="undo")["subject"].tolist() == ["n1"]
    assert audit.audit_log(team, who=LABELLER, text="LEATHER")["subject"].tolist() == ["n2"]  # by title, ignoring case
    assert audit.audit_log(team, action="role", limit=1)["subject"].tolist() == [VIEWER]
    filters = audit.audit_filters(team)
    assert {ADMIN, LABELLER, OTHER} <= set(filters["who"]) and "look-alikes" not in filters["source"]
    exported = pd.read_csv(io.BytesIO(to_csv_bytes(log)), dtype=str)
    assert "'=Risky" in set(exported["subject"])  # spreadsheet-safe


def test_a_conflicting_label_is_refused_and_reported_not_overwritten(team):
    seen = team.store.label_version()  # both cards drawn now
    team.labels.label("n1", "Cookware", who=LABELLER, since=seen)
    with pytest.raises(LabelConflict, match="ana@shop.test labelled item 'n1' as Cookware") as caught:
        team.labels.label("n1", "Footwear", who=OTHER, since=seen)
    assert caught.value.theirs == {"n1": (LABELLER, "Cookware")}
    assert _labels(team)["n1"] == "Cookware"
    team.labels.label("n1", "Pet Supplies", who=LABELLER, since=seen)  # changing one's own label is no conflict
    team.labels.label("n1", "Pet Supplies", who=OTHER, since=seen)  # nor is giving the same answer
    with pytest.raises(LabelConflict):
        team.labels.save_label_edits(pd.Series({"n1": "Pet Supplies"}), pd.Series({"n1": "Footwear"}), who=LABELLER, since=seen)
    team.labels.label("n1", "Footwear", who=OTHER)  # "save mine anyway": no ``since``
    assert _labels(team)["n1"] == "Footwear"


def test_two_labellers_on_one_queue_get_different_cards(team, monkeypatch):
    queue = labelling.queue(team, "margin", n=10)["item_id"].tolist()
    first = claims.next_card(team, queue, LABELLER)
    second = claims.next_card(team, queue, OTHER)
    assert first == queue[0] and second == queue[1]
    assert claims.next_card(team, queue, LABELLER) == first  # a rerun keeps one's own card
    claims.release(team, LABELLER)
    assert claims.next_card(team, [first], OTHER) == first  # released: the other may take it
    assert claims.next_card(team, [first], LABELLER) is None  # now held by the other
    monkeypatch.setattr(claims, "CLAIM_SECONDS", 0)
    claims.next_card(team, [second], OTHER)  # expires at once
    assert claims.next_card(team, [second], LABELLER) == second
    team.access.configure(sign_in=False)
    assert claims.next_card(team, queue, "anyone") == queue[0]  # local mode: no claims


def test_agreement_counts_items_labelled_by_two_people(team):
    assert audit.agreement(team).empty
    team.labels.label("n1", "Cookware", who=LABELLER)
    team.labels.label("n1", "Cookware", who=OTHER)
    team.labels.label("n2", "Footwear", who=LABELLER)
    team.labels.label("n2", "Cookware", who=OTHER)
    team.labels.label("n3", "Pet Supplies", who=LABELLER)  # one labeller: not counted
    table = audit.agreement(team).set_index("category")
    assert table.loc["Cookware", ["items", "agreed"]].tolist() == [2, 1]
    assert table.loc["Footwear", ["items", "agreed"]].tolist() == [1, 0]
    assert "Pet Supplies" not in table.index
    team.labels.undo(OTHER)  # the disagreement on n2 is withdrawn
    table = audit.agreement(team).set_index("category")
    assert table.loc["Cookware", "agreement"] == 1.0 and "Footwear" not in table.index


def test_a_database_of_schema_3_gains_the_new_tables(tmp_path):
    path = tmp_path / "old.duckdb"
    with Store(path) as old:
        old._exec("DROP TABLE roles; DROP TABLE audit_events; DROP TABLE claims; UPDATE meta SET value = '3' WHERE key = 'schema_version'")
    with Store(path) as store:
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)
        store.record_audit("lead", "import", subject="x")
        assert store.audit_events()["who"].tolist() == ["lead"]
        assert store.roles().empty and store.claims().empty
