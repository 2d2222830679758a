"""Store: schema, items, append-only labels, embeddings, concurrency, crashes, locks."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pandas as pd
import pytest

from coldrec.store import Store, StoreError, StoreLockedError

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _seed(store: Store) -> None:
    store.upsert_categories(pd.DataFrame({"name": ["Cookware", "Footwear"], "description": ["pans", "shoes"]}))
    store.upsert_items(
        pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["pan", "boot", "wok"], "price": [10, None, "3.5"]}),
        source="catalog",
    )


def test_items_and_categories_round_trip(store):
    _seed(store)
    items = store.items()
    assert items["item_id"].tolist() == ["a", "b", "c"]
    assert items.loc[0, "price"] == 10 and pd.isna(items.loc[1, "price"]) and items.loc[2, "price"] == 3.5
    assert store.category_names() == ["Cookware", "Footwear"]
    # Re-importing updates the text; re-uploading an upload keeps it an upload.
    store.upsert_items(pd.DataFrame({"item_id": ["a"], "title": ["steel pan"]}), source="catalog")
    assert store.items().set_index("item_id").loc["a", "title"] == "steel pan"
    store.upsert_items(pd.DataFrame({"item_id": ["u"], "title": ["mug"]}), source="upload", batch="b1")
    store.upsert_items(pd.DataFrame({"item_id": ["u"], "title": ["big mug"]}), source="upload", batch="b1")
    row = store.items().set_index("item_id").loc["u"]
    assert row["title"] == "big mug" and row["source"] == "upload" and row["batch"] == "b1"
    # The same product uploaded again later moves to the new batch...
    store.upsert_items(pd.DataFrame({"item_id": ["u"], "title": ["big mug"]}), source="upload", batch="b2")
    assert store.items().set_index("item_id").loc["u", "batch"] == "b2"
    # ...but another product may not take over its id (it would inherit its label).
    with pytest.raises(StoreError, match="'u' \\(batch 'b2'\\)"):
        store.upsert_items(pd.DataFrame({"item_id": ["u"], "title": ["teapot"]}), source="upload", batch="b3")


def test_labels_are_an_append_only_history(store):
    _seed(store)
    store.label("a", "Cookware", who="ana")
    store.label("a", "Footwear", who="ben", source="accepted")
    store.label("b", "Footwear", who="ana")
    store.label("b", None, who="ana")  # removal
    current = store.labels().set_index("item_id")
    assert current.loc["a", "category"] == "Footwear" and current.loc["a", "who"] == "ben"
    assert "b" not in current.index
    history = store.label_history("a")
    assert history["category"].tolist() == ["Footwear", "Cookware"]
    assert history["source"].tolist() == ["accepted", "manual"]
    assert len(store.label_history()) == 4


def test_bad_labels_are_refused_whole_and_name_the_problem(store):
    _seed(store)
    version = store.label_version()
    with pytest.raises(StoreError, match="'zz'"):
        store.add_labels(["a", "zz"], ["Cookware", "Cookware"], who="ana")
    with pytest.raises(StoreError, match="'Toys'"):
        store.add_labels(["a", "b"], ["Cookware", "Toys"], who="ana")
    with pytest.raises(StoreError, match="source"):
        store.label("a", "Cookware", who="ana", source="guess")
    assert store.label_version() == version and store.labels().empty


def test_label_version_changes_with_every_label(store):
    _seed(store)
    v0 = store.label_version()
    store.label("a", "Cookware", who="x")
    assert store.label_version() > v0


def test_items_filter_by_batch_label_and_unlabelled_in_sql(store):
    _seed(store)
    store.upsert_items(pd.DataFrame({"item_id": ["u1", "u2", "u3"], "title": ["mug", "cup", "jug"]}),
                       source="upload", batch="b1")
    store.upsert_items(pd.DataFrame({"item_id": ["v1"], "title": ["bowl"]}), source="upload", batch="b2")
    store.add_labels(["a", "u1", "u2"], ["Cookware", "Cookware", "Footwear"], who="t")
    store.label("u2", None, who="t")  # removed: unlabelled again
    assert store.items(category="Cookware")["item_id"].tolist() == ["a", "u1"]
    assert store.items(source="upload", batch="b1")["item_id"].tolist() == ["u1", "u2", "u3"]
    assert store.items(source="upload", batch="b1", unlabelled=True)["item_id"].tolist() == ["u2", "u3"]
    assert store.items(unlabelled=True)["item_id"].tolist() == ["b", "c", "u2", "u3", "v1"]
    assert store.items(category="Footwear").empty
    record = store.item_record("u1").iloc[0]
    assert (record["item_id"], record["title"], record["source"], record["batch"], record["category"]) == (
        "u1", "mug", "upload", "b1", "Cookware")
    assert store.item_record("a")["price"].tolist() == [10.0]
    assert store.item_record("u2")["category"].isna().all() and store.item_record("nope").empty


def test_embedding_matrix_is_aligned_with_the_hashes_asked(store, monkeypatch):
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(5, 3)).astype(np.float32)
    store.put_embeddings("m", ["h0", "h1", "h2", "h3", "h4"], vectors)
    store.put_embeddings("other", ["h0"], np.ones((1, 3), dtype=np.float32))
    asked = ["h3", "nope", "h0", "h3", "h4"]
    matrix, found = store.embedding_matrix("m", asked, 3)
    assert found.tolist() == [True, False, True, True, True]
    assert np.array_equal(matrix, np.stack([vectors[3], np.zeros(3), vectors[0], vectors[3], vectors[4]]))
    assert store.embedding_matrix("m", [], 3)[0].shape == (0, 3)
    with pytest.raises(StoreError, match="not 4-dimensional"):
        store.embedding_matrix("m", ["h1"], 4)


def test_embed_texts_through_the_store_fill_one_matrix_and_embed_only_what_is_missing(store, tiny_encoder):
    from coldrec.encoder import embed_texts

    calls = []

    class Counting:
        name, dim, device = tiny_encoder.name, tiny_encoder.dim, "cpu"

        def encode(self, texts, progress=None):
            calls.append(list(texts))
            return tiny_encoder.encode(texts)

    texts = ["steel pan", "leather boot", "steel pan", "dog food"]
    expected = tiny_encoder.encode(texts)
    first = embed_texts(Counting(), texts[:2], cache=store)
    assert calls == [["steel pan", "leather boot"]]
    both = embed_texts(Counting(), texts, cache=store)
    assert calls[1:] == [["dog food"]]  # the cached and repeated ones are not embedded again
    np.testing.assert_allclose(both, expected, atol=1e-5)
    np.testing.assert_allclose(first, expected[:2], atol=1e-5)
    seen = []
    embed_texts(Counting(), texts, cache=store, progress=lambda done, total: seen.append((done, total)))
    assert len(calls) == 2 and seen == [(0, 0)]


def test_embeddings_round_trip_per_model(store):
    vectors = np.random.default_rng(0).normal(size=(3, 5)).astype(np.float32)
    store.put_embeddings("m1", ["h1", "h2", "h3"], vectors)
    store.put_embeddings("m1", ["h1"], vectors[2:3])  # an existing hash is kept
    got = store.get_embeddings("m1", ["h3", "h1", "missing"])
    assert set(got) == {"h1", "h3"}
    np.testing.assert_array_equal(got["h1"], vectors[0])
    assert store.get_embeddings("m2", ["h1"]) == {}
    assert store.embedding_counts().set_index("model").loc["m1", "vectors"] == 3


def test_count_embedded_counts_each_occurrence_of_the_models_own_vectors(store):
    vectors = np.ones((2, 4), dtype=np.float32)
    store.put_embeddings("m1", ["h1", "h2"], vectors)
    store.put_embeddings("m2", ["h3"], vectors[:1])
    assert store.count_embedded("m1", ["h1", "h1", "h3", "missing", "h2"]) == 3
    assert store.count_embedded("m2", ["h1", "h3"]) == 1
    assert store.count_embedded("m1", []) == 0


def test_predictions_keep_the_latest_per_item(store):
    _seed(store)
    frame = pd.DataFrame(
        {"item_id": ["a"], "category": ["Cookware"], "probability": [0.9], "unsure": [False],
         "top3_json": [json.dumps([{"category": "Cookware", "probability": 0.9}])]}
    )
    store.save_predictions("m", frame)
    store.save_predictions("m", frame.assign(category="Footwear", probability=0.4, unsure=True))
    got = store.predictions("m")
    assert len(got) == 1 and got.loc[0, "category"] == "Footwear" and bool(got.loc[0, "unsure"])


def test_concurrent_sessions_lose_no_labels(store):
    _seed(store)
    errors = []

    def session(who, category):
        try:
            for i in range(50):
                store.label("abc"[i % 3], category, who=who)
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=session, args=(f"user{i}", ["Cookware", "Footwear"][i % 2])) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    history = store.label_history()
    assert len(history) == 200 and history["event_id"].is_unique
    assert history.groupby("who").size().to_dict() == {f"user{i}": 50 for i in range(4)}


def test_labels_survive_a_killed_process(tmp_path):
    db = tmp_path / "crash.duckdb"
    script = textwrap.dedent(
        f"""
        import sys, time, pandas as pd
        sys.path.insert(0, {PROJECT!r})
        from coldrec.store import Store
        s = Store({str(db)!r})
        s.upsert_categories(pd.DataFrame({{"name": ["Cookware"]}}))
        s.upsert_items(pd.DataFrame({{"item_id": ["a", "b"], "title": ["pan", "pot"]}}), source="catalog")
        s.label("a", "Cookware", who="ana")
        s.label("b", "Cookware", who="ana")
        print("saved", flush=True)
        time.sleep(60)
        """
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "saved"
        proc.send_signal(signal.SIGKILL)  # no close, no checkpoint
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    reopened = Store(db)
    try:
        assert reopened.labels()["item_id"].tolist() == ["a", "b"]
    finally:
        reopened.close()


def test_a_database_held_by_another_process_gives_a_clear_error(tmp_path):
    db = tmp_path / "held.duckdb"
    script = f"import sys, time; sys.path.insert(0, {PROJECT!r}); from coldrec.store import Store; s = Store({str(db)!r}); print('open', flush=True); time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "open"
        with pytest.raises(StoreLockedError, match="in use by another coldrec process"):
            Store(db)
    finally:
        proc.kill()
        proc.wait(timeout=10)


def test_user_text_is_stored_verbatim_not_executed(store):
    nasty = "x'); DROP TABLE items; --"
    store.upsert_categories(pd.DataFrame({"name": [nasty], "description": ["<script>alert(1)</script>"]}))
    store.upsert_items(pd.DataFrame({"item_id": [nasty], "title": ["Robert'); DROP TABLE labels;--"]}), source="upload")
    store.label(nasty, nasty, who=nasty)
    assert store.labels().loc[0, "category"] == nasty
    assert store.categories().loc[0, "description"] == "<script>alert(1)</script>"


def test_stats_count_everything(store):
    _seed(store)
    store.label("a", "Cookware", who="x")
    store.add_interactions(pd.DataFrame({"user_id": ["u1"], "item_id": ["a"], "order_number": [1]}))
    stats = store.stats()
    assert stats == {
        "catalog_items": 3, "uploaded_items": 0, "labelled_items": 1, "categories": 2,
        "cached_vectors": 0, "interactions": 1,
    }


def test_an_upload_cannot_overwrite_catalog_items(store):
    _seed(store)
    with pytest.raises(StoreError, match="'a'"):
        store.upsert_items(pd.DataFrame({"item_id": ["new1", "a"], "title": ["x", "y"]}), source="upload", batch="b")
    assert store.items().set_index("item_id").loc["a", "title"] == "pan"
    assert "new1" not in store.items()["item_id"].tolist()


def test_each_label_call_is_one_action_and_undo_restores_the_labels_before_it(store):
    _seed(store)
    store.add_labels(["a", "b"], ["Cookware", "Cookware"], who="ana")
    store.add_labels(["a", "c"], ["Footwear", "Footwear"], who="ana")
    history = store.label_history()
    assert history.groupby("action_id")["item_id"].apply(sorted).tolist() == [["a", "b"], ["a", "c"]]
    assert store.undo_last("ana") == {"reverted": 2, "kept": 0}
    assert store.labels().set_index("item_id")["category"].to_dict() == {"a": "Cookware", "b": "Cookware"}
    assert store.undo_last("ana") == {"reverted": 2, "kept": 0}
    assert store.labels().empty
    assert store.undo_last("ana") == {"reverted": 0, "kept": 0}
    # Undo is appended, never erased: 4 label events and 4 undo events stay in the history.
    assert len(store.label_history()) == 8


def test_undo_leaves_labels_someone_changed_since(store):
    _seed(store)
    store.add_labels(["a", "b"], ["Cookware", "Cookware"], who="ana")
    store.label("b", "Footwear", who="bo")
    assert store.undo_last("ana") == {"reverted": 1, "kept": 1}
    assert store.labels().set_index("item_id")["category"].to_dict() == {"b": "Footwear"}
    assert store.undo_last("bo") == {"reverted": 1, "kept": 0}
    # b had ana's label before bo's action (ana's undo kept b), so bo's undo brings that back.
    assert store.labels().set_index("item_id")["category"].to_dict() == {"b": "Cookware"}


def test_category_targets_and_projections(store):
    _seed(store)
    store.set_category_target("Cookware", 0.95)
    assert store.category_targets() == {"Cookware": 0.95}
    with pytest.raises(StoreError, match="between 0 and 1"):
        store.set_category_target("Footwear", 1.5)
    with pytest.raises(StoreError, match="unknown category"):
        store.set_category_target("Gardening", 0.9)
    store.set_category_target("Cookware", None)
    assert store.category_targets() == {}

    assert store.get_projection("k").empty
    store.put_projection("k", ["a", "b"], np.array([[0.0, 1.0], [2.0, 3.0]]))
    store.put_projection("k", ["a", "c"], np.array([[5.0, 6.0], [7.0, 8.0]]))  # replaces, not appends
    got = store.get_projection("k").sort_values("item_id")
    assert got["item_id"].tolist() == ["a", "c"] and got["x"].tolist() == [5.0, 7.0]


def test_version_1_database_gains_action_ids_on_open(tmp_path):
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(
        """CREATE SEQUENCE label_event_id;
           CREATE TABLE label_events (event_id BIGINT PRIMARY KEY DEFAULT nextval('label_event_id'),
               item_id VARCHAR NOT NULL, category VARCHAR, who VARCHAR NOT NULL, source VARCHAR NOT NULL,
               labelled_at TIMESTAMP NOT NULL);"""
    )
    con.close()
    store = Store(path)
    _seed(store)
    store.label("a", "Cookware", who="ana")
    assert store.undo_last("ana")["reverted"] == 1
    store.close()


# -- hardening (issue 12) --------------------------------------------------------------------------
def test_store_is_a_context_manager_and_close_is_idempotent(tmp_path):
    with Store(tmp_path / "ctx.duckdb") as store:
        _seed(store)
        with store._cursor():  # a pooled cursor, closed with the store
            pass
    with pytest.raises(StoreError, match="closed"):
        store.items()
    store.close()
    with Store(tmp_path / "ctx.duckdb") as again:  # the file was released
        assert len(again.items()) == 3


def test_editing_an_item_changes_the_catalog_fingerprint_and_a_no_op_upsert_does_not(store):
    _seed(store)
    before = store.catalog_fingerprint()
    store.upsert_items(pd.DataFrame({"item_id": ["a", "b", "c"], "title": ["pan", "boot", "wok"],
                                     "price": [10, None, "3.5"]}), source="catalog")
    assert store.catalog_fingerprint() == before
    store.upsert_items(pd.DataFrame({"item_id": ["b"], "title": ["leather boot"]}), source="catalog")
    after = store.catalog_fingerprint()
    assert after != before and after[0] == before[0]  # same count, newer change


def test_a_schema_2_database_gains_updated_at_on_open(tmp_path):
    import duckdb

    path = tmp_path / "v2.duckdb"
    con = duckdb.connect(str(path))
    con.execute("""CREATE TABLE meta (key VARCHAR PRIMARY KEY, value VARCHAR);
                   INSERT INTO meta VALUES ('schema_version', '2');
                   CREATE TABLE items (item_id VARCHAR PRIMARY KEY, title VARCHAR NOT NULL, description VARCHAR,
                       brand VARCHAR, price DOUBLE, attributes JSON, source VARCHAR NOT NULL, batch VARCHAR,
                       added_at TIMESTAMP NOT NULL, position INTEGER);
                   INSERT INTO items VALUES ('x', 'old', NULL, NULL, NULL, NULL, 'catalog', NULL, now(), 0);""")
    con.close()
    with Store(path) as store:
        assert store.get_meta("schema_version") == "4"  # the current schema (4 since issue 24)
        before = store.catalog_fingerprint()
        assert before[1] is not None
        store.upsert_items(pd.DataFrame({"item_id": ["x"], "title": ["new"]}), source="catalog")
        assert store.catalog_fingerprint() != before


def test_settings_version_changes_only_when_a_setting_changes(store):
    start = store.settings_version()
    store.set_meta("some_setting", "1")
    assert store.settings_version() == start + 1
    store.set_meta("some_setting", "1")
    assert store.settings_version() == start + 1
    store.set_meta("some_setting", "0")
    assert store.settings_version() == start + 2


def test_category_names_are_normalised_once_and_match_ignoring_case(store):
    import unicodedata

    nfd = unicodedata.normalize("NFD", "Café")
    store.upsert_categories(pd.DataFrame({"name": [nfd + "\u200b", "Cookware\x07"]}))
    assert store.category_names() == ["Café", "Cookware"]
    store.upsert_categories(pd.DataFrame({"name": ["cookware"], "description": ["pots"]}))
    cats = store.categories()
    assert cats["name"].tolist() == ["Café", "Cookware"]
    assert cats.set_index("name").loc["Cookware", "description"] == "pots"
    store.upsert_items(pd.DataFrame({"item_id": ["m"], "title": ["mug"]}), source="catalog")
    store.label("m", nfd, who="ana")  # a decomposed name typed elsewhere finds the stored one
    assert store.labels()["category"].tolist() == ["Café"]


def test_a_read_only_database_can_be_viewed_but_not_written(tmp_path):
    path = tmp_path / "ro.duckdb"
    with Store(path) as store:
        _seed(store)
    with Store(path, read_only=True) as viewer:
        assert len(viewer.items()) == 3 and viewer.read_only
        viewer.put_embeddings("m", ["h"], np.ones((1, 2), np.float32))  # a cache: silently not kept
        with pytest.raises(StoreError, match="read-only"):
            viewer.label("a", "Cookware", who="ana")


def test_an_unwritable_file_is_opened_read_only(tmp_path, monkeypatch):
    path = tmp_path / "perm.duckdb"
    Store(path).close()
    real_access = os.access
    # As root the permission bits do not bind, so ask os.access the question a normal user's open would.
    monkeypatch.setattr(os, "access", lambda p, mode: False if str(p) == str(path) else real_access(p, mode))
    with Store(path) as store:
        assert store.read_only


def test_a_missing_folder_is_refused_instead_of_created(tmp_path):
    with pytest.raises(StoreError, match="does not exist"):
        Store(tmp_path / "typo" / "db.duckdb")
    assert not (tmp_path / "typo").exists()


@pytest.mark.parametrize("content", [b"", b"DUCK" * 10, None])
def test_a_truncated_or_foreign_file_is_a_store_error(tmp_path, content):
    path = tmp_path / "bad.duckdb"
    if content is None:  # a real database cut in half
        with Store(path) as store:
            _seed(store)
        data = path.read_bytes()
        path.write_bytes(data[: len(data) // 2])
    else:
        path.write_bytes(content)
    with pytest.raises(StoreError, match="bad.duckdb"):
        Store(path).close()


@pytest.mark.parametrize(
    "column, value",
    [("order_number", 3_000_000_000), ("order_number", 1e20), ("order_number", -1),
     ("quantity", float("inf")), ("quantity", -2.0), ("quantity", float("-inf"))],
)
def test_out_of_range_purchases_are_refused_naming_the_row(store, column, value):
    from coldrec.errors import DataImportError

    _seed(store)
    frame = pd.DataFrame({"user_id": ["u", "u"], "item_id": ["a", "b"], column: [1, value]})
    with pytest.raises(DataImportError, match="row\\(s\\) 2$"):
        store.add_interactions(frame)
    assert store.interactions().empty


def test_version_counters_are_read_once_per_write(tmp_path):
    with Store(tmp_path / "v.duckdb") as store:
        _seed(store)
        statements = []
        real = store._registered

        def counting(tables):  # noqa: ANN001, ANN202
            statements.append(1)
            return real(tables)

        store._registered = counting
        first = (store.label_version(), store.catalog_fingerprint(), store.settings_version(), len(store.categories()))
        statements.clear()
        for _ in range(5):  # a rerun asks for them many times: nothing is read again
            assert (store.label_version(), store.catalog_fingerprint(), store.settings_version(),
                    len(store.categories())) == first
        assert statements == []
        store.label("a", "Cookware", who="ana")  # every write makes the next reading fresh
        assert store.label_version() > first[0]
        store.upsert_categories(pd.DataFrame({"name": ["Garden"]}))
        assert len(store.categories()) == first[3] + 1
        store.upsert_items(pd.DataFrame({"item_id": ["d"], "title": ["rake"]}), source="catalog")
        assert store.catalog_fingerprint()[0] == first[1][0] + 1
        store.set_meta("unsure_below", "0.4")
        assert store.settings_version() == first[2] + 1
        cats = store.categories()
        cats["extra"] = 1  # a caller's column does not reach the next caller
        assert "extra" not in store.categories().columns
