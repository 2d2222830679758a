"""Versions: settings become encoders in one place, and the model loads only when a text must be embedded."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from coldrec import versions
from coldrec.cli import main
from coldrec.config import Settings
from coldrec.encoder import ModelLoadError
from coldrec.store import Store

PROJECT = Path(__file__).resolve().parent.parent


def test_the_first_open_loads_and_records_then_reopening_is_lazy(tmp_path, tiny_model_dir):
    settings = Settings(db_path=tmp_path / "v.duckdb", model=str(tiny_model_dir), device="cpu")
    with Store(settings.db_path) as store:
        first = versions.open_encoder(store, settings)
        assert not isinstance(first, versions.LazyEncoder)
        again = versions.open_encoder(store, settings)
    assert isinstance(again, versions.LazyEncoder) and not again.is_loaded()
    assert (again.name, again.dim) == (first.name, first.dim)
    vectors = again.encode(["steel pan"])  # loads now
    assert again.is_loaded() and vectors.shape == (1, first.dim)
    assert again.device == "cpu"  # any other attribute is the loaded encoder's


def test_a_lazy_encoder_refuses_a_model_that_is_not_the_recorded_one(tiny_encoder):
    lazy = versions.LazyEncoder(lambda: tiny_encoder, tiny_encoder.name, tiny_encoder.dim + 1)
    with pytest.raises(ModelLoadError, match="recorded"):
        lazy.encode(["x"])


def test_the_encoder_module_imports_neither_finetune_nor_versions():
    import ast

    tree = ast.parse((PROJECT / "coldrec" / "encoder.py").read_text())
    imported = {node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not imported & {"finetune", "versions", "coldrec.finetune", "coldrec.versions"}


@pytest.mark.parametrize("configured", [True, False], ids=["COLDREC_MODEL", "bundled, language rule"])
def test_a_second_predict_of_embedded_titles_does_not_import_torch(monkeypatch, tmp_path, tiny_model_dir, small_catalog,
                                                                    configured):
    catalog, categories = small_catalog
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    categories.to_csv(tmp_path / "categories.csv", index=False)
    env = {**os.environ, "COLDREC_DB": str(tmp_path / "cli.duckdb"), "COLDREC_DEVICE": "cpu", "HF_HUB_OFFLINE": "1"}
    env.pop("COLDREC_MODEL", None)
    monkeypatch.delenv("COLDREC_MODEL", raising=False)
    if configured:
        env["COLDREC_MODEL"] = str(tiny_model_dir)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert main(["init", "--catalog", str(tmp_path / "catalog.csv"), "--categories", str(tmp_path / "categories.csv")]) == 0
    pd.DataFrame({"sku": ["n1"], "name": ["steel pot set"]}).to_csv(tmp_path / "new.csv", index=False)
    code = ("import sys; from coldrec.cli import main; rc = main(['predict', sys.argv[1], '-o', sys.argv[2]]); "
            "print('torch' in sys.modules, 'transformers' in sys.modules); sys.exit(rc)")
    run = [sys.executable, "-c", code, str(tmp_path / "new.csv"), str(tmp_path / "out.csv")]
    first = subprocess.run(run, capture_output=True, text=True, cwd=PROJECT, env=env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.split()[-2:] == ["True", "True"]  # new text: the model loads
    second = subprocess.run(run, capture_output=True, text=True, cwd=PROJECT, env=env)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split()[-2:] == ["False", "False"]
    assert pd.read_csv(tmp_path / "out.csv", encoding="utf-8-sig")["item_id"].tolist() == ["n1"]
