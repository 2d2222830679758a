"""CLI: init, predict (CSV and JSON), evaluate contract, stats, clear errors."""

from __future__ import annotations

import json

import pandas as pd
import pytest

from coldrec.cli import main


def test_init_if_missing_leaves_an_existing_database(env, capsys):
    assert main(["init", "--if-missing"]) == 0
    assert "nothing to do" in capsys.readouterr().out


def test_predict_writes_csv_with_top3_unsure_and_five_neighbours(env):
    pd.DataFrame({"sku": ["n1", "n2"], "name": ["steel pot set", "cat toy ball"]}).to_csv(env / "new.csv", index=False)
    assert main(["predict", str(env / "new.csv"), "-o", str(env / "out.csv")]) == 0
    out = pd.read_csv(env / "out.csv", encoding="utf-8-sig")
    assert out["item_id"].tolist() == ["n1", "n2"]
    for col in ["top1", "top1_probability", "top2", "top3", "top3_probability", "unsure"]:
        assert col in out.columns
    assert all(len(ids.split()) == 5 for ids in out["neighbour_ids"])


def test_predict_json_and_save_batch(env):
    (env / "new.jsonl").write_text('{"id": "n1", "title": "leather boot"}\n{"id": "n2", "title": "wok"}\n')
    assert main(["predict", str(env / "new.jsonl"), "-o", str(env / "out.json"), "--save-batch", "b1"]) == 0
    rows = json.loads((env / "out.json").read_text())
    assert [r["item_id"] for r in rows] == ["n1", "n2"] and len(rows[0]["neighbour_ids"]) == 5
    from coldrec.store import Store

    store = Store(env / "cli.duckdb")
    try:
        assert store.items(batch="b1")["item_id"].tolist() == ["n1", "n2"]
        assert len(store.predictions(store.embedding_counts()["model"][0])) == 2
    finally:
        store.close()


def test_bad_file_gives_a_message_and_exit_2(env, capsys):
    (env / "bad.csv").write_text("sku,price\nA1,3\n")
    assert main(["predict", str(env / "bad.csv")]) == 2
    err = capsys.readouterr().err
    assert "bad.csv" in err and "no text column" in err and "Traceback" not in err


def test_missing_model_gives_a_message_naming_it(env, monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("COLDREC_MODEL", str(tmp_path / "nowhere"))
    (env / "new.csv").write_text("title\npan\n")
    assert main(["predict", str(env / "new.csv")]) == 2
    assert "nowhere" in capsys.readouterr().err


def test_evaluate_follows_the_json_contract(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    rows = _labelled_rows()
    rows.append({"title": "rare thing", "category": "Tiny"})  # dropped by --min-per-class
    rows.append({"title": "pan pot 0", "category": ""})  # empty label: dropped
    pd.DataFrame(rows).assign(description="").to_csv(tmp_path / "data.csv", index=False)
    pd.DataFrame({"name": ["Cookware"], "description": ["pans"]}).to_csv(tmp_path / "cats.csv", index=False)
    args = ["--model", str(tiny_model_dir), "evaluate", str(tmp_path / "data.csv"), "--text-col", "title",
            "--text-col", "description", "--label-col", "category", "--categories", str(tmp_path / "cats.csv"),
            "--shots", "0,1,4", "--seeds", "2", "--test-size", "12", "--min-per-class", "10",
            "--json", str(tmp_path / "out.json")]
    assert main(args) == 0
    doc = json.loads((tmp_path / "out.json").read_text())
    assert {"dataset", "n_items", "n_classes", "model", "device", "embed_items_per_s", "results"} <= set(doc)
    assert doc["n_classes"] == 3 and doc["n_items"] == 42 and doc["device"] == "cpu"
    ours = [r for r in doc["results"] if r["method"] == "coldrec"]
    assert [r["shots"] for r in ours] == [0, 1, 4]
    for r in ours:
        assert {"accuracy", "accuracy_std", "macro_f1", "macro_f1_std", "seeds"} <= set(r) and r["seeds"] == 2
        assert 0.0 <= r["accuracy"] <= 1.0
    assert {r["method"] for r in doc["results"]} == {"coldrec", "coldrec-inductive", "prototype", "tfidf-logreg"}
    # Deterministic for given seeds.
    assert main(args[:-1] + [str(tmp_path / "again.json")]) == 0
    again = json.loads((tmp_path / "again.json").read_text())
    assert [r["accuracy"] for r in again["results"]] == [r["accuracy"] for r in doc["results"]]


def test_bad_shots_argument_is_rejected():
    with pytest.raises(SystemExit):
        main(["evaluate", "x.csv", "--text-col", "t", "--label-col", "l", "--shots", "a,b"])


def test_prototype_baseline_is_the_class_mean_alone():
    """The baseline must not borrow the product's prompts or graph: a class without examples never wins."""
    import numpy as np

    import coldrec.evaluate as ev

    x = np.eye(3, dtype=np.float32)[[0, 0, 1, 1]]
    proba = ev._prototype_proba(x, np.array([0, 0, 1, 1]), np.eye(3, dtype=np.float32), 3)
    assert proba.argmax(axis=1).tolist() == [0, 1, 0] and (proba[:, 2] == 0).all()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)


def _labelled_rows() -> list[dict[str, str]]:
    """14 titles in each of three categories, from small distinct vocabularies."""
    words = {"Cookware": "pan pot wok skillet steel iron", "Footwear": "shoe boot sneaker sandal leather",
             "Pets": "dog cat pet food toy ball"}
    rows = []
    for label, vocab in words.items():
        w = vocab.split()
        for i in range(14):
            rows.append({"title": f"{w[i % len(w)]} {w[(i * 2 + 1) % len(w)]} {i}", "category": label})
    return rows


def _labelled_csv(path):
    pd.DataFrame(_labelled_rows()).to_csv(path, index=False)
    return path


def test_evaluate_active_writes_the_curve_rows(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    data = _labelled_csv(tmp_path / "data.csv")
    args = ["--model", str(tiny_model_dir), "evaluate", str(data), "--text-col", "title", "--label-col", "category",
            "--active", "margin", "--active", "random", "--budget", "20", "--step", "10", "--seeds", "2",
            "--test-size", "12", "--json", str(tmp_path / "active.json")]
    assert main(args) == 0
    doc = json.loads((tmp_path / "active.json").read_text())
    assert {"dataset", "n_items", "n_classes", "model", "device", "results", "labels_to_match_random"} <= set(doc)
    assert {r["method"] for r in doc["results"]} == {"active:margin", "active:random"}
    margin = [r for r in doc["results"] if r["method"] == "active:margin"]
    assert [r["labels"] for r in margin] == [0, 10, 20]
    for r in margin:
        assert {"method", "labels", "accuracy", "macro_f1", "accuracy_std", "macro_f1_std", "seeds"} <= set(r)
        assert 0.0 <= r["accuracy"] <= 1.0 and r["seeds"] == 2
    assert set(doc["labels_to_match_random"]) == {"margin", "random"}


def test_evaluate_active_accepts_comma_lists_and_all(tmp_path, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    data = _labelled_csv(tmp_path / "data.csv")
    base = ["--model", str(tiny_model_dir), "evaluate", str(data), "--text-col", "title", "--label-col", "category",
            "--budget", "6", "--step", "3", "--seeds", "1", "--test-size", "12"]
    assert main([*base, "--active", "all", "--json", str(tmp_path / "all.json")]) == 0
    methods = {r["method"] for r in json.loads((tmp_path / "all.json").read_text())["results"]}
    assert methods == {f"active:{s}" for s in ("random", "least-confidence", "margin", "entropy", "cluster-margin")}
    assert main([*base, "--active", "entropy, least-confidence", "--json", str(tmp_path / "two.json")]) == 0
    rows = json.loads((tmp_path / "two.json").read_text())["results"]
    assert [r["labels"] for r in rows] == [0, 3, 6, 0, 3, 6]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--active", "smallest-margin"], "valid: random, least-confidence, margin, entropy, cluster-margin"),
        (["--active", "margin,bogus"], "bogus"),
        (["--active", "margin", "--budget", "10", "--step", "20"], "must not exceed"),
        (["--active", "margin", "--step", "0"], "positive"),
        (["--active", "margin", "--budget", "-5"], "positive"),
        (["--budget", "50"], "need --active"),
    ],
)
def test_evaluate_active_rejects_bad_arguments_with_exit_2(tmp_path, capsys, extra, message):
    # Validation happens before the file or the model is read.
    assert main(["evaluate", str(tmp_path / "missing.csv"), "--text-col", "t", "--label-col", "l", *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_labels_export_import_round_trip_and_queue(env, capsys):
    pd.DataFrame({"sku": ["n1", "n2", "n3"], "name": ["steel pot", "cat ball", "boot"]}).to_csv(env / "new.csv", index=False)
    assert main(["predict", str(env / "new.csv"), "-o", str(env / "p.csv"), "--save-batch", "b1"]) == 0
    assert main(["queue", "--strategy", "margin", "-n", "2", "-o", str(env / "queue.csv")]) == 0
    queue = pd.read_csv(env / "queue.csv", encoding="utf-8-sig")
    assert len(queue) == 2 and set(queue["item_id"]) <= {"n1", "n2", "n3"}

    assert main(["export-labels", "-o", str(env / "labels.csv")]) == 0
    exported = pd.read_csv(env / "labels.csv", encoding="utf-8-sig")
    assert len(exported) == 12 and {"item_id", "category", "who", "source", "labelled_at"} <= set(exported.columns)
    changed = exported.copy()
    changed.loc[changed["item_id"] == "C1", "category"] = "Footwear"
    changed.to_csv(env / "changed.csv", index=False)
    assert main(["import-labels", str(env / "changed.csv"), "--who", "ana"]) == 0
    assert "1 labels changed" in capsys.readouterr().out
    pd.DataFrame({"item_id": ["nope"], "category": ["Footwear"]}).to_csv(env / "bad.csv", index=False)
    assert main(["import-labels", str(env / "bad.csv")]) == 2
    assert "bad.csv: unknown item_id in row(s) 2" in capsys.readouterr().err


def test_import_taxonomy_keeps_the_chosen_branch(env, capsys):
    (env / "taxonomy.txt").write_text(
        "# Google_Product_Taxonomy_Version: 2021-09-21\n"
        "1 - Home & Garden\n2 - Home & Garden > Kitchen & Dining\n3 - Home & Garden > Kitchen & Dining > Cookware\n"
        "4 - Home & Garden > Kitchen & Dining > Tableware\n5 - Toys & Games\n6 - Toys & Games > Puzzles\n"
    )
    assert main(["import-taxonomy", str(env / "taxonomy.txt"), "--branch", "Home & Garden > Kitchen & Dining"]) == 0
    assert "2 categories imported" in capsys.readouterr().out
    from coldrec.store import Store

    store = Store(env / "cli.duckdb")
    try:
        cats = store.categories().set_index("name")
        assert cats.loc["Tableware", "path"] == "Home & Garden > Kitchen & Dining > Tableware"
        assert "Puzzles" not in cats.index
    finally:
        store.close()
