"""The bundled multilingual encoder behind the encoder interface, and the language rule outside a
workspace (evaluate, the estimator; the workspace's choice is in test_models.py). Uses the real bundled USE model (numpy, loads in
about a second); MiniLM is replaced by the tiny test model where a test would load it."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from coldrec import language
from coldrec.config import MULTILINGUAL_MODEL_NAME, Settings
from coldrec.encoder import load_encoder, load_use_encoder

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
