"""A Chinese catalogue end to end through the dashboard (issue 20): import a GB18030 catalog on
Categories & model, the language rule switches to the bundled multilingual encoder (shown in the
sidebar and on the page), upload UTF-16 new arrivals and predict, Label next, and Explore's
emerging clusters named in Chinese. Uses the real bundled models (no COLDREC_MODEL)."""

from __future__ import annotations

import re

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from coldrec import language, ui
from coldrec.config import MULTILINGUAL_MODEL_NAME

from tests.conftest import PROJECT
from tests.test_multilingual import CATALOG

NEW = pd.DataFrame(
    [
        ("n1", "vivo X100 手机 5G 蔡司影像"),
        ("n2", "荣耀 Magic6 手机 5G 全网通"),
        ("n3", "红米 Note13 手机 5G 大电量"),
        ("n4", "黄金项链 女 足金 锁骨链"),
        ("n5", "纯银戒指 女 简约 开口"),
        ("n6", "足金耳环 女 古法 黄金"),
        ("n7", "机械手表 男 自动 防水"),
        ("n8", "石英手表 女 时尚 皮带"),
        ("n9", "运动手表 男 电子 防水"),
    ],
    columns=["sku", "商品名称"],
)


@pytest.fixture
def fresh_dashboard(monkeypatch, tmp_path):
    import streamlit as st

    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "zh.duckdb"))
    monkeypatch.delenv("COLDREC_MODEL", raising=False)
    monkeypatch.delenv("COLDREC_ENCODER", raising=False)
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    st.cache_resource.clear()
    yield tmp_path
    st.cache_resource.clear()


def _text(at: AppTest) -> str:
    parts = [e.value for kind in ("caption", "markdown", "title", "subheader", "info", "success", "warning")
             for e in at.get(kind) if isinstance(getattr(e, "value", None), str)]
    return re.sub(r"\\(.)", r"\1", "\n".join(parts))


def test_a_chinese_catalogue_end_to_end(fresh_dashboard):
    at = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=240)
    at.run()
    at = at.switch_page("pages/categories.py").run()
    assert not at.exception, at.exception
    # Import: the catalog as Chinese Excel saves CSV (GB18030), category names in Chinese.
    uploader = next(f for f in at.file_uploader if f.key == "categories-start-catalog-file")
    uploader.set_value(("商品目录.csv", CATALOG.to_csv(index=False).encode("gb18030"), "text/csv")).run()
    at = next(b for b in at.button if b.key == "categories-start-catalog").click().run()
    assert not at.exception, at.exception
    ws = ui._open_workspace()
    assert sorted(ws.store.category_names()) == sorted(CATALOG["category"].unique())
    assert ws.store.items().set_index("item_id").loc["z1", "title"] == CATALOG["title"][0]
    assert ws.encoder.name == MULTILINGUAL_MODEL_NAME and ws.models.encoder_choice()["source"] == "auto"
    shown = _text(at)
    home = AppTest.from_file(str(PROJECT / "app.py"), default_timeout=240).run()  # a new session's sidebar
    sidebar = re.sub(r"\\(.)", r"\1", "\n".join(c.value for c in home.sidebar.caption))
    assert "Chosen by: the language rule" in sidebar and language.RULE in sidebar
    assert MULTILINGUAL_MODEL_NAME in sidebar
    assert "Model chosen by the language rule" in shown  # Categories & model
    assert "cannot be fine-tuned" in shown  # said where fine-tuning is offered
    radio = next(r for r in at.radio if r.key == "model-choice")
    assert radio.value == "auto"

    # Upload: new arrivals in UTF-16 with a Chinese title column, predicted in Chinese categories.
    at = at.switch_page("pages/upload.py").run()
    at.file_uploader[0].set_value(("新品.csv", NEW.to_csv(index=False).encode("utf-16"), "text/csv")).run()
    assert not at.exception, at.exception
    at = next(b for b in at.button if b.label == "Predict").click().run()
    assert not at.exception, at.exception
    table = at.dataframe[-1].value
    assert table["item_id"].tolist() == NEW["sku"].tolist()
    assert set(table["top1"]) <= set(CATALOG["category"])
    truth = {"n1": "手机", "n2": "手机", "n3": "手机", "n4": "珠宝", "n5": "珠宝", "n6": "珠宝",
             "n7": "钟表", "n8": "钟表", "n9": "钟表"}
    right = sum(t == truth[i] for i, t in zip(table["item_id"], table["top1"]))
    assert right >= 7, table[["item_id", "top1"]]

    # Label next: a Chinese item with Chinese suggestions.
    at = at.switch_page("pages/queue.py").run()
    assert not at.exception, at.exception
    text = _text(at)
    assert any(title in text for title in NEW["商品名称"]), text[:2000]

    # Explore: clusters of the unlabelled uploads named by Chinese words.
    at = at.switch_page("pages/explore.py").run()
    assert not at.exception, at.exception
    names = next(d.value for d in at.dataframe if "name" in d.value.columns and "example_titles" in d.value.columns)
    assert len(names) >= 1
    for name in names["name"]:
        assert language.has_cjk(name), names
    assert any(word in " ".join(names["name"]) for word in ("手机", "手表", "黄金", "足金", "防水"))
