"""The language rule (which bundled encoder reads a catalogue), word features without spaces,
Chinese category prompts, and Chinese uploads in GB18030/GBK and UTF-16 (issue 20)."""

from __future__ import annotations

import unicodedata

import pandas as pd
import pytest

from coldrec import language
from coldrec.classify import category_prompt
from coldrec.config import Settings
from coldrec.errors import ConfigError, IngestError
from coldrec.ingest import clean_text, load_items

from tests.conftest import SHARED

ENGLISH = ["Stainless steel frying pan 28 cm", "Men's leather boots, brown", "Organic green tea, 100 bags"]
CHINESE = ["钨金戒指 男士戒指 永不磨损", "赢：有钱人和你想的不一样", "帆布挂钟 花样年华 静音"]
CHINESE_WITH_BRANDS = [
    "ARMANI 阿玛尼 时尚方形男女情侣表AR0460/0461 女款AR0461",
    "Apple iPhone 15 Pro Max 256GB 原色钛金属 5G手机",
    "GOYA戈雅GY1124帆布挂钟-花样年华",
    "Samsung 三星 Galaxy S24 Ultra 12GB+256GB 钛灰",
]
GERMAN = ["Edelstahl Bratpfanne für Induktion, 28 cm", "Herren Lederstiefel, braun, Größe 44", "Grüner Bio-Tee, 100 Beutel"]
JAPANESE = ["ステンレス フライパン 28cm IH対応", "メンズ 革靴 ブラウン"]
RUSSIAN = ["Сковорода из нержавеющей стали 28 см", "Мужские кожаные ботинки"]


@pytest.mark.parametrize(
    "texts, choice",
    [
        (ENGLISH, language.MINILM),
        (CHINESE, language.MULTILINGUAL),
        (CHINESE_WITH_BRANDS, language.MULTILINGUAL),
        (GERMAN, language.MINILM),  # Latin script: the rule does not tell German from English
        (JAPANESE, language.MULTILINGUAL),
        (RUSSIAN, language.MULTILINGUAL),
        ([], language.MINILM),
        (["12345", "--- ***"], language.MINILM),  # no letters at all
    ],
)
def test_the_rule_picks_the_encoder_by_script(texts, choice):
    assert language.choose_encoder(texts) == choice


def test_mixed_shops_get_both_models_between_the_named_thresholds():
    # An English shop with one Chinese title in 31 stays on MiniLM; a mix gets both; a Chinese
    # shop with a few English titles (a Latin-only title is counted as Latin) gets the multilingual one.
    few = ENGLISH * 10 + CHINESE[:1]
    assert language.script_mix(few).non_latin_title_share < language.MIXED_FROM
    assert language.choose_encoder(few) == language.MINILM
    assert language.choose_encoder(ENGLISH + CHINESE) == language.BOTH
    assert language.choose_encoder(ENGLISH * 3 + CHINESE) == language.BOTH
    assert language.choose_encoder(CHINESE * 10 + CHINESE_WITH_BRANDS * 10 + ENGLISH[:1]) == language.MULTILINGUAL
    mix = language.script_mix(ENGLISH + CHINESE)
    assert mix.non_latin_title_share == 0.5
    assert language.RULE in mix.reason and f"{language.MIXED_TO:.2f}" in mix.reason


def test_a_title_is_non_latin_from_the_named_share_of_its_letters():
    # Each Han character weighs 3 letters: a brand-heavy Chinese title still counts as Chinese.
    assert language.script_mix(["Samsung 三星 Galaxy S24 Ultra 12GB+256GB 钛灰"]).non_latin_titles == 1
    assert language.script_mix(["Samsung Galaxy S24 Ultra Phantom Black 钛"]).non_latin_titles == 0


def test_letters_are_counted_by_script():
    mix = language.script_mix(["ab 中文 é ß Жж 123 !"])
    assert (mix.latin, mix.cjk, mix.other) == (4, 2, 2)
    assert mix.non_latin_share == pytest.approx((3 * 2 + 2) / (3 * 2 + 2 + 4))


def test_words_splits_chinese_into_character_bigrams_and_keeps_latin_words():
    assert language.words("ARMANI 阿玛尼 情侣表AR0461") == ["armani", "阿玛", "玛尼", "情侣", "侣表", "ar0461"]
    assert language.words("单 字") == ["单", "字"]
    # English text gets exactly what scikit-learn's default pattern gives.
    import re

    for text in ENGLISH + GERMAN:
        assert language.words(text) == re.findall(language.WORD_PATTERN, text.lower())


def test_tfidf_with_the_tokenizer_matches_scikit_learn_on_english():
    from sklearn.feature_extraction.text import TfidfVectorizer

    plain = TfidfVectorizer(sublinear_tf=True).fit(ENGLISH + GERMAN)
    ours = TfidfVectorizer(sublinear_tf=True, tokenizer=language.WordTokenizer(), token_pattern=None).fit(ENGLISH + GERMAN)
    assert list(plain.get_feature_names_out()) == list(ours.get_feature_names_out())


def test_cluster_keywords_are_chinese_words():
    import numpy as np

    from coldrec.analytics import _class_tfidf_keywords

    titles = ["黄金戒指 女款", "黄金戒指 男款", "足金戒指", "石英手表 男士", "石英手表 防水", "机械手表"]
    keywords = _class_tfidf_keywords(titles, np.array([0, 0, 0, 1, 1, 1]), 2, 3)
    assert "戒指" in keywords[0] and "手表" in keywords[1]


def test_chinese_category_names_get_a_chinese_prompt_and_english_ones_do_not_change():
    assert category_prompt("戒指、指环", None, "珠宝 > 时尚饰品 > 戒指、指环") == "这是一件戒指、指环商品（珠宝，时尚饰品）。"
    assert category_prompt("手机") == "这是一件手机商品。"
    assert category_prompt("Cookware", "pots", "Home > Cookware") == "This is a Cookware product (Home). pots"


def test_the_encoder_setting_is_validated(monkeypatch):
    monkeypatch.setenv("COLDREC_ENCODER", "Multilingual")
    assert Settings.from_env().encoder == "multilingual"
    monkeypatch.setenv("COLDREC_ENCODER", "both")
    assert Settings.from_env().encoder == "both"
    monkeypatch.setenv("COLDREC_ENCODER", "bert")
    with pytest.raises(ConfigError, match="COLDREC_ENCODER"):
        Settings.from_env()


# -- Chinese uploads: GB18030/GBK and UTF-16 ------------------------------------------------------
HAND_TITLES = CHINESE + CHINESE_WITH_BRANDS + ["儿童羽绒服 男童 加厚 冬装", "电脑、软件、办公 › 网线"]


def _jd_titles() -> list[str]:
    path = SHARED / "jd_products_zh" / "products_zh.csv"
    if not path.is_file():
        return []
    return pd.read_csv(path)["title"].astype(str).tolist()


@pytest.mark.parametrize("encoding", ["gb18030", "gbk", "utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_chinese_files_are_read_with_every_character_intact(encoding):
    titles = HAND_TITLES + _jd_titles()
    if encoding == "gbk":  # GBK has no code for a few characters: keep the titles it can write
        titles = [t for t in titles if _encodable(t, "gbk")]
    frame = pd.DataFrame({"id": [f"z{i}" for i in range(len(titles))], "title": titles, "category": "珠宝 > 戒指"})
    items = load_items(frame.to_csv(index=False).encode(encoding), "商品.csv")
    expected = [unicodedata.normalize("NFC", clean_text(t)) for t in titles]
    assert [t.encode("utf-8") for t in items["title"]] == [t.encode("utf-8") for t in expected]
    assert set(items["category"]) == {"珠宝 > 戒指"}


def _encodable(text: str, encoding: str) -> bool:
    try:
        text.encode(encoding)
        return True
    except UnicodeEncodeError:
        return False


def test_the_jd_file_is_exercised_when_present():
    if not _jd_titles():
        pytest.skip("../shared/datasets/jd_products_zh is not beside this checkout")
    assert len(_jd_titles()) == 7040


@pytest.mark.parametrize(
    "data",
    [
        b"title,description\nMug,red\ncaf\xe9,au lait\n",
        "title\nCaf\xe9s and cr\xe8me br\xfbl\xe9e\n".encode("latin-1"),
        "title\nStra\xdfe M\xfcller Gr\xf6\xdfe\n".encode("cp1252"),
    ],
)
def test_a_file_in_no_known_encoding_is_refused_naming_the_encodings_tried(data):
    with pytest.raises(IngestError) as err:
        load_items(data, "shop.csv")
    message = str(err.value)
    assert message.startswith("shop.csv: not valid UTF-8")
    assert "UTF-16" in message and "GB18030/GBK" in message


def test_chinese_column_names_are_mapped():
    from coldrec.ingest import guess_mapping

    assert guess_mapping(["商品编号", "商品名称", "商品描述", "类目", "品牌", "价格"]) == {
        "item_id": "商品编号", "title": "商品名称", "description": "商品描述", "category": "类目", "brand": "品牌",
        "price": "价格"}


@pytest.mark.parametrize("encoding", ["utf-8", "gb18030", "utf-16"])
def test_chinese_taxonomy_paths_import_and_export_losslessly(encoding):
    from coldrec.export import to_csv_bytes
    from coldrec.ingest import read_table
    from coldrec.taxonomy import read_taxonomy, taxonomy_categories

    paths = ["珠宝 > 时尚饰品 > 戒指、指环", "钟表 > 手表 > 情侣表", "钟表 > 钟 > 挂钟"]
    read = read_taxonomy(pd.DataFrame({"path": paths}).to_csv(index=False).encode(encoding), "类目.csv")
    assert read == paths
    assert read_taxonomy("\n".join(paths).encode(encoding), "类目.txt") == paths
    categories = taxonomy_categories(read, include=[], max_depth=3)
    assert categories["path"].tolist() == paths and categories["name"].tolist() == ["戒指、指环", "情侣表", "挂钟"]
    exported = to_csv_bytes(categories[["name", "path"]])
    assert read_table(exported, "export.csv")["path"].tolist() == paths
