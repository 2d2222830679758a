"""The bundled multilingual encoder behind the encoder interface, and the workspace's choice of
encoder by its catalogue's language (issue 20). Uses the real bundled USE model (numpy, loads in
about a second); MiniLM is replaced by the tiny test model where a test would load it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coldrec import finetune, language
from coldrec.config import MULTILINGUAL_MODEL_NAME, Settings
from coldrec.encoder import load_encoder, load_use_encoder
from coldrec.store import Store
from coldrec.workspace import Workspace

CATALOG = pd.DataFrame(
    [
        ("z1", "华为 Mate 60 Pro 手机 12GB+512GB 雅川青", "手机"),
        ("z2", "小米14 徕卡光学镜头 5G手机 骁龙8", "手机"),
        ("z3", "苹果 iPhone 15 手机壳 透明硅胶 防摔", "手机"),
        ("z4", "OPPO Reno11 5G 手机 月光宝石", "手机"),
        ("z5", "周大福 足金黄金戒指 女款 古法", "珠宝"),
        ("z6", "925纯银项链 女 锁骨链 简约", "珠宝"),
        ("z7", "千足金手镯 古法传承 实心", "珠宝"),
        ("z8", "天然珍珠耳钉 女 银饰", "珠宝"),
        ("z9", "卡西欧 石英手表 男士 防水 运动", "钟表"),
        ("z10", "静音挂钟 客厅 简约时尚 石英钟", "钟表"),
        ("z11", "天梭 机械表 男 商务 皮带", "钟表"),
        ("z12", "儿童电子手表 防水 夜光", "钟表"),
    ],
    columns=["item_id", "title", "category"],
)


@pytest.fixture(scope="module")
def use_encoder():
    return load_use_encoder()


def test_the_multilingual_encoder_has_the_interface(use_encoder):
    assert use_encoder.name == MULTILINGUAL_MODEL_NAME and use_encoder.dim == 512 and use_encoder.device == "cpu"
    assert use_encoder.supports_finetuning is False and use_encoder.backend == "numpy"
    assert load_encoder(MULTILINGUAL_MODEL_NAME).name == MULTILINGUAL_MODEL_NAME
    texts = CATALOG["title"].tolist()
    calls: list[tuple[int, int]] = []
    small = load_use_encoder(batch_size=5)
    vectors = small.encode(texts, progress=lambda done, total: calls.append((done, total)))
    assert vectors.shape == (12, 512) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert calls == [(5, 12), (10, 12), (12, 12)]
    # Batching does not change a vector; same-category titles are nearer than others.
    alone = np.vstack([use_encoder.encode([t]) for t in texts[:3]])
    assert np.allclose(alone, vectors[:3], atol=1e-5)
    sims = vectors @ vectors.T
    assert sims[0, 1] > sims[0, 8] and sims[4, 5] > sims[4, 9]
    assert use_encoder.encode([]).shape == (0, 512)


def test_the_multilingual_encoder_reads_at_most_max_length_tokens():
    short = load_use_encoder(max_length=8)
    head = "黄金戒指 女款"
    long = head + " 附赠精美礼盒" * 50
    assert not np.allclose(short.encode([head])[0], load_use_encoder().encode([long])[0], atol=1e-3)
    # Beyond 8 tokens nothing more is read: two texts sharing their first tokens embed alike.
    a, b = short.encode([head + " 附赠精美礼盒" * 10, head + " 附赠精美礼盒" * 10 + " 另有说明"])
    assert np.allclose(a, b, atol=1e-6)


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


def test_evaluate_applies_the_rule_to_its_data(tmp_path, monkeypatch, capsys):
    from coldrec.cli import main

    path = tmp_path / "zh.csv"
    pd.concat([CATALOG] * 1).to_csv(path, index=False)
    monkeypatch.delenv("COLDREC_MODEL", raising=False)
    monkeypatch.delenv("COLDREC_ENCODER", raising=False)
    out = tmp_path / "result.json"
    code = main(["evaluate", str(path), "--text-col", "title", "--label-col", "category", "--min-per-class", "4",
                 "--shots", "0,1", "--seeds", "1", "--test-size", "6", "--methods", "coldrec", "--json", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    assert doc["model"] == MULTILINGUAL_MODEL_NAME and language.RULE in doc["model_rule"]
    assert doc["results"][0]["accuracy"] >= 0.5  # zero-shot on 6 Chinese titles, 3 categories


def test_evaluate_keeps_minilm_for_english_data(monkeypatch, tiny_encoder):
    import coldrec.encoder as encoder_module
    from coldrec.cli import _encoder_for

    asked: list[object] = []
    monkeypatch.setattr(encoder_module, "load_encoder", lambda model, device=None: asked.append(model) or tiny_encoder)
    _, rule = _encoder_for(["Stainless steel pan", "Leather boots"], Settings(model=None))
    assert asked == [None] and "0.00" in rule


def test_the_estimator_without_an_encoder_applies_the_rule_to_its_texts():
    from coldrec.estimator import ColdStartClassifier

    model = ColdStartClassifier().fit(CATALOG["title"].tolist(), CATALOG["category"].tolist(),
                                      categories=sorted(CATALOG["category"].unique()))
    assert model.encoder_.name == MULTILINGUAL_MODEL_NAME and model.encoder is None
    assert model.predict(["vivo X100 手机 5G"])[0] == "手机"


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
