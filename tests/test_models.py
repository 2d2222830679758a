"""The serving model (coldrec/services/models.py): the language rule picks the bundled model by the
catalogue's language (a mixed one gets both), and the page's override and the settings win over
it. Uses the real bundled USE model; MiniLM is replaced by the tiny model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coldrec import finetune, language
from coldrec.config import MULTILINGUAL_MODEL_NAME, Settings
from coldrec.store import Store
from coldrec.workspace import Workspace

from tests.test_multilingual import CATALOG


def _catalog_ws(tmp_path, encoder, settings=None, frame=CATALOG) -> Workspace:
    settings = settings or Settings(db_path=tmp_path / "zh.duckdb", model=None, device="cpu")
    ws = Workspace(Store(settings.db_path), encoder, settings)
    ws.imports.import_catalog(frame.copy(), "商品.csv")
    return ws


def test_a_chinese_catalogue_switches_the_workspace_to_the_multilingual_encoder(tmp_path, tiny_encoder):
    ws = _catalog_ws(tmp_path, tiny_encoder)
    try:
        assert ws.encoder.name == MULTILINGUAL_MODEL_NAME
        choice = ws.models.encoder_choice()
        assert choice["choice"] == language.MULTILINGUAL and choice["source"] == "auto"
        assert language.RULE in choice["reason"]
        assert ws.vectors.embedding_coverage()["embedded"] == len(CATALOG)  # embedded with the chosen model
        prediction = ws.predictor.predict_text("OPPO Find X7 手机 5G").predictions[0]
        assert prediction.category == "手机"
        # Fine-tuning is not offered for it, and the page says why.
        assert "cannot be fine-tuned" in finetune.readiness(ws)["reason"]
    finally:
        ws.close()
    # The choice is stored with the workspace: reopening loads the multilingual model directly.
    reopened = Workspace.open(Settings(db_path=tmp_path / "zh.duckdb", model=None, device="cpu"))
    try:
        assert reopened.encoder.name == MULTILINGUAL_MODEL_NAME
    finally:
        reopened.close()


def test_an_english_catalogue_keeps_minilm(workspace):
    # The conftest workspace: English titles, the tiny model standing in for MiniLM.
    before = workspace.encoder.name
    assert workspace.models.encoder_choice()["choice"] == language.MINILM
    assert workspace.models.apply_language_rule() == language.MINILM
    assert workspace.encoder.name == before


def test_the_page_override_and_back_to_automatic(tmp_path, tiny_encoder, monkeypatch):
    import coldrec.services.models as models_module

    # Loading MiniLM is replaced by the tiny model (the rule, not the weights, is under test).
    real_load = models_module.load_encoder
    monkeypatch.setattr(models_module, "load_encoder",
                        lambda model, device=None: tiny_encoder if model is None else real_load(model, device))
    ws = _catalog_ws(tmp_path, tiny_encoder)
    try:
        ws.models.set_encoder_choice("minilm")
        assert ws.encoder is tiny_encoder
        assert ws.models.encoder_choice() == {"choice": "minilm", "source": "override", "reason": "chosen on Categories & model"}
        ws.imports.add_upload(CATALOG.assign(item_id=CATALOG["item_id"] + "u", description=""), "more")
        assert ws.encoder is tiny_encoder  # an override is kept whatever arrives
        ws.models.set_encoder_choice("auto")
        assert ws.encoder.name == MULTILINGUAL_MODEL_NAME and ws.models.encoder_choice()["source"] == "auto"
        with pytest.raises(ValueError):
            ws.models.set_encoder_choice("bert")
    finally:
        ws.close()


def test_coldrec_model_and_coldrec_encoder_win_over_the_rule(tmp_path, tiny_encoder, tiny_model_dir):
    configured = Settings(db_path=tmp_path / "a.duckdb", model=str(tiny_model_dir), device="cpu")
    ws = _catalog_ws(tmp_path, tiny_encoder, configured)
    try:
        assert ws.encoder is tiny_encoder and ws.models.encoder_choice()["source"] == "configured"
    finally:
        ws.close()
    pinned = Settings(db_path=tmp_path / "b.duckdb", model=None, device="cpu", encoder="multilingual")
    ws = Workspace(Store(pinned.db_path), tiny_encoder, pinned)
    try:
        assert ws.models.encoder_choice() == {"choice": "multilingual", "source": "setting", "reason": "COLDREC_ENCODER=multilingual"}
        assert ws.models.base_source() == MULTILINGUAL_MODEL_NAME
    finally:
        ws.close()


def test_a_mixed_catalogue_gets_both_models(tmp_path, tiny_encoder, monkeypatch):
    import coldrec.encoder as encoder_module
    from coldrec.config import BOTH_MODEL_NAME
    from coldrec.encoder import PairEncoder

    real_load = encoder_module.load_encoder
    # MiniLM is replaced by the tiny model inside the pair (the pairing, not the weights, is under test).
    monkeypatch.setattr(encoder_module, "load_encoder",
                        lambda model=None, device=None, batch_size=None, backend=None, **kw:
                        tiny_encoder if model is None else real_load(model, device, batch_size, backend, **kw))
    english = pd.DataFrame({"item_id": [f"e{i}" for i in range(12)], "category": ["Cookware"] * 6 + ["Footwear"] * 6,
                            "title": ["steel frying pan", "cast iron skillet", "nonstick wok", "steel pot set", "kettle",
                                      "wok", "leather boot", "running sneaker", "beach sandal", "wool socks", "boot",
                                      "shoe"]})
    ws = _catalog_ws(tmp_path, tiny_encoder, frame=pd.concat([CATALOG, english], ignore_index=True))
    try:
        assert ws.models.encoder_choice()["choice"] == language.BOTH
        assert isinstance(ws.encoder, PairEncoder) and ws.encoder.name == BOTH_MODEL_NAME
        assert ws.encoder.dim == tiny_encoder.dim + 512
        vectors = ws.encoder.encode(["黄金戒指", "steel pan"])
        assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
        assert ws.predictor.predict_text("OPPO Find X7 手机 5G").predictions[0].category == "手机"
        assert "cannot be fine-tuned" in finetune.readiness(ws)["reason"]
    finally:
        ws.close()


def test_predict_of_a_file_applies_the_rule_without_storing_it(workspace, tiny_encoder, monkeypatch):
    import coldrec.encoder as encoder_module

    real_load = encoder_module.load_encoder
    monkeypatch.setattr(encoder_module, "load_encoder",
                        lambda model=None, device=None, batch_size=None, backend=None, **kw:
                        tiny_encoder if model is None else real_load(model, device, batch_size, backend, **kw))
    titles = CATALOG["title"].tolist() * 5  # 60 Chinese titles against the 12 English stored ones
    assert workspace.models.apply_language_rule(extra_texts=titles, store=False) == language.BOTH
    assert workspace.encoder.backend == "pair"
    assert workspace.models.encoder_choice()["choice"] == language.MINILM  # nothing stored


def test_the_choice_line_says_a_page_choice_once():
    from coldrec.ui import _choice_line

    assert _choice_line({"choice": "minilm", "source": "override", "reason": "chosen on Categories & model"}) \
        == "your choice on Categories & model"
    assert _choice_line({"choice": "minilm", "source": "auto", "reason": "no items yet: the default"}) \
        == "the language rule (no items yet: the default)"
