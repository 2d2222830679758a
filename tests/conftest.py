"""Shared fixtures: a tiny random BERT saved to disk (offline, fast), stores and workspaces."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

PROJECT = Path(__file__).resolve().parent.parent
DEMO = PROJECT / "data" / "demo"
SHARED = PROJECT.parent / "shared" / "datasets"

_WORDS = (
    "pan pot skillet wok steel iron nonstick kettle toaster blender mixer coffee espresso "
    "shirt dress jeans jacket cotton wool linen socks shoe boot sneaker sandal leather "
    "phone case charger cable usb wireless headphones speaker earbuds bluetooth "
    "dog cat pet food toy ball puzzle lego doll kids game yoga mat dumbbell bike "
    "tea rice pasta chocolate honey coffee beans organic the a with for and of in x pack set"
).split()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-dim random BERT with a word-level vocabulary, saved as a HF folder."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *dict.fromkeys(_WORDS), *"abcdefghijklmnopqrstuvwxyz0123456789"]
    vocab += [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz0123456789"]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    # transformers 5 builds a fast tokenizer from ``vocab`` (a ``vocab_file`` alone is ignored
    # and every word would be [UNK]); vocab.txt is still written for the saved folder.
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)}, do_lower_case=True)
    tokenizer.model_max_length = 64
    tokenizer.save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=64,
    )
    BertModel(config).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tiny_model_dir: Path):
    """The tiny model loaded on CPU."""
    from coldrec.encoder import load_encoder

    return load_encoder(str(tiny_model_dir), device="cpu", batch_size=4)


@pytest.fixture(scope="session")
def real_encoder():
    """The bundled all-MiniLM-L6-v2 (installed by requirements.txt)."""
    from coldrec.encoder import load_encoder

    return load_encoder(None, device="cpu")


@pytest.fixture
def store(tmp_path: Path):
    """An empty store in a temporary file."""
    from coldrec.store import Store

    s = Store(tmp_path / "test.duckdb")
    yield s
    s.close()


@pytest.fixture
def small_catalog() -> tuple[pd.DataFrame, pd.DataFrame]:
    """A hand-made catalog of 3 categories x 4 items, and its categories."""
    categories = pd.DataFrame(
        {
            "name": ["Cookware", "Footwear", "Pet Supplies"],
            "description": ["pots and pans for cooking", "shoes boots and sandals", "food and toys for dog and cat"],
            "path": ["Home > Cookware", "Fashion > Footwear", "Pet Supplies"],
        }
    )
    rows = [
        ("C1", "steel frying pan", "Cookware"),
        ("C2", "cast iron skillet", "Cookware"),
        ("C3", "nonstick wok", "Cookware"),
        ("C4", "steel pot set", "Cookware"),
        ("F1", "leather boot", "Footwear"),
        ("F2", "running sneaker", "Footwear"),
        ("F3", "beach sandal", "Footwear"),
        ("F4", "wool socks and shoe", "Footwear"),
        ("P1", "dog food pack", "Pet Supplies"),
        ("P2", "cat toy ball", "Pet Supplies"),
        ("P3", "pet bed for dog", "Pet Supplies"),
        ("P4", "cat food organic", "Pet Supplies"),
    ]
    catalog = pd.DataFrame(rows, columns=["item_id", "title", "category"])
    catalog["description"] = ""
    return catalog, categories


@pytest.fixture
def workspace(tmp_path: Path, tiny_encoder, small_catalog):
    """A workspace over the small catalog with the tiny model."""
    from coldrec.config import Settings
    from coldrec.workspace import Workspace

    catalog, categories = small_catalog
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    categories.to_csv(tmp_path / "categories.csv", index=False)
    settings = Settings(db_path=tmp_path / "ws.duckdb", model=None)
    from coldrec.store import Store

    ws = Workspace(Store(settings.db_path), tiny_encoder, settings)
    ws.imports.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
    yield ws
    ws.close()


@pytest.fixture
def empty(tmp_path, tiny_encoder):
    """A workspace on a new, empty database (the onboarding steps start here)."""
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    ws = Workspace(Store(tmp_path / "new.duckdb"), tiny_encoder)
    yield ws
    ws.close()


@pytest.fixture
def app_env(monkeypatch, tmp_path, tiny_model_dir, tiny_encoder, small_catalog):
    """An initialised database and the environment that points the dashboard at it (tiny model)."""
    from coldrec.store import Store
    from coldrec.workspace import Workspace

    catalog, categories = small_catalog
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    categories.to_csv(tmp_path / "categories.csv", index=False)
    ws = Workspace(Store(tmp_path / "app.duckdb"), tiny_encoder)
    ws.imports.init_catalog(tmp_path / "catalog.csv", tmp_path / "categories.csv")
    ws.close()
    yield from dashboard_on(monkeypatch, tmp_path / "app.duckdb", tiny_model_dir, tmp_path)


def dashboard_on(monkeypatch, db: Path, model_dir: Path, value):
    """Point the dashboard (its env and cached workspace) at ``db`` with the tiny model; yields ``value``."""
    import streamlit as st

    monkeypatch.setenv("COLDREC_DB", str(db))
    monkeypatch.setenv("COLDREC_MODEL", str(model_dir))
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    st.cache_resource.clear()
    yield value
    st.cache_resource.clear()


def unit_rows(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """Random unit vectors."""
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture
def env(monkeypatch, tmp_path, tiny_model_dir, small_catalog):
    """An initialised CLI database (the small catalog, the tiny model) and its folder."""
    from coldrec.cli import main

    catalog, categories = small_catalog
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    categories.to_csv(tmp_path / "categories.csv", index=False)
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "cli.duckdb"))
    monkeypatch.setenv("COLDREC_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    assert main(["init", "--catalog", str(tmp_path / "catalog.csv"), "--categories", str(tmp_path / "categories.csv")]) == 0
    return tmp_path


@pytest.fixture
def uploaded(app_env, tiny_encoder):
    """The dashboard database of ``app_env`` with four new products uploaded as batch ``new``."""
    from coldrec.store import Store
    from coldrec.workspace import Workspace
    from tests.test_pages_loop import NEW

    ws = Workspace(Store(app_env / "app.duckdb"), tiny_encoder)
    ws.predictor.upload_and_predict(NEW, batch="new")
    ws.close()
    return app_env
