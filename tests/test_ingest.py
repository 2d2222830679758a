"""Tests for coldrec.ingest: every accepted format, column mapping, rejections and text cleaning."""

from __future__ import annotations

import json
import math
import unicodedata

import pandas as pd
import pytest

from coldrec.ingest import (
    IngestError,
    Limits,
    clean_text,
    guess_mapping,
    item_text,
    load_items,
    parse_pasted,
    prepare_items,
    read_table,
)

# The same three products, written in every format.
PRODUCTS = [
    {"id": "A1", "title": "Red ceramic mug", "description": "300 ml, dishwasher safe", "price": "12.50"},
    {"id": "A2", "title": "Café au lait bowl", "description": "Stoneware bowl; \"large\"", "price": "7.99"},
    {"id": "A3", "title": "不锈钢炒锅 ステンレス", "description": "Stainless steel wok 32 cm 🍳", "price": "29"},
]
IDS = [p["id"] for p in PRODUCTS]
TITLES = [p["title"] for p in PRODUCTS]
DESCRIPTIONS = [p["description"] for p in PRODUCTS]
PRICES = [12.5, 7.99, 29.0]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(PRODUCTS)


def _assert_products(items: pd.DataFrame, ids=IDS, prices=PRICES) -> None:
    assert items["item_id"].tolist() == ids
    assert items["title"].tolist() == TITLES
    assert items["description"].tolist() == DESCRIPTIONS
    assert items["price"].tolist() == pytest.approx(prices)
    assert list(items.columns[:3]) == ["item_id", "title", "description"]


def _write(tmp_path, fmt: str):
    frame = _frame()
    if fmt == "csv":
        path = tmp_path / "products.csv"
        frame.to_csv(path, index=False)
    elif fmt == "tsv":
        path = tmp_path / "products.tsv"
        frame.to_csv(path, index=False, sep="\t")
    elif fmt == "xlsx":
        path = tmp_path / "products.xlsx"
        frame.to_excel(path, index=False, engine="openpyxl")
    elif fmt == "json_list":
        path = tmp_path / "products.json"
        path.write_text(json.dumps(PRODUCTS, ensure_ascii=False), encoding="utf-8")
    elif fmt == "json_object":
        path = tmp_path / "products.json"
        path.write_text(json.dumps({"source": "shop", "products": PRODUCTS}, indent=2), encoding="utf-8")
    elif fmt == "jsonl":
        path = tmp_path / "products.jsonl"
        path.write_text("\n".join(json.dumps(p, ensure_ascii=False) for p in PRODUCTS) + "\n", encoding="utf-8")
    elif fmt == "parquet":
        path = tmp_path / "products.parquet"
        frame.to_parquet(path, index=False)
    else:  # pragma: no cover
        raise AssertionError(fmt)
    return path


FORMATS = ["csv", "tsv", "xlsx", "json_list", "json_object", "jsonl", "parquet"]


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_the_same_products_from_a_path(tmp_path, fmt):
    items = load_items(_write(tmp_path, fmt))
    _assert_products(items)


@pytest.mark.parametrize("fmt", FORMATS)
def test_each_format_reads_the_same_products_from_bytes(tmp_path, fmt):
    path = _write(tmp_path, fmt)
    items = load_items(path.read_bytes(), filename=path.name)
    _assert_products(items)


def test_json_numbers_are_accepted_for_ids_and_prices(tmp_path):
    rows = [{"id": i + 1, "title": t, "price": p} for i, (t, p) in enumerate(zip(TITLES, PRICES))]
    items = load_items(json.dumps(rows).encode(), "numbers.json")
    assert items["item_id"].tolist() == ["1", "2", "3"]
    assert items["price"].tolist() == pytest.approx(PRICES)


def test_csv_keeps_leading_zeros_in_ids():
    items = load_items(b"sku,title\n007,Mug\n0100,Bowl\n", "zeros.csv")
    assert items["item_id"].tolist() == ["007", "0100"]


def test_semicolon_csv_is_detected():
    items = load_items("title;description\nMug;Red, 300 ml\nBowl;Blue\n".encode(), "semi.csv")
    assert items["title"].tolist() == ["Mug", "Bowl"]
    assert items["description"].tolist() == ["Red, 300 ml", "Blue"]


def test_utf8_bom_is_not_part_of_the_first_header():
    data = "\ufefftitle,id\nMug,X1\n".encode("utf-8")
    frame = read_table(data, "bom.csv")
    assert list(frame.columns) == ["title", "id"]
    assert load_items(data, "bom.csv")["item_id"].tolist() == ["X1"]


def test_read_table_returns_strings_without_na_conversion():
    frame = read_table(b"title,description,id\nNA,,null\n", "na.csv")
    assert frame.iloc[0].tolist() == ["NA", "", "null"]


def test_parse_pasted_one_product_per_line_with_optional_tab_description():
    text = "\n".join(f"{t}\t{d}" for t, d in zip(TITLES, DESCRIPTIONS)) + "\n\n   \n"
    frame = parse_pasted(text)
    assert frame["title"].tolist() == TITLES
    items = prepare_items(frame, "pasted text")
    assert items["title"].tolist() == TITLES
    assert items["description"].tolist() == DESCRIPTIONS
    assert_generated_ids(items, "NEW", 3)
    assert items["price"].isna().all()


def test_parse_pasted_title_only_lines_and_crlf():
    frame = parse_pasted("Red mug\r\nBlue bowl\tStoneware\r\n")
    assert frame["title"].tolist() == ["Red mug", "Blue bowl"]
    assert frame["description"].tolist() == ["", "Stoneware"]


@pytest.mark.parametrize("text", ["", "   ", "\n\n \t \n"])
def test_parse_pasted_rejects_text_without_products(text):
    with pytest.raises(IngestError, match="pasted text: no products"):
        parse_pasted(text)


# --------------------------------------------------------------------------- column mapping


def test_guess_mapping_uses_synonyms_case_and_spacing_insensitively():
    columns = ["Product Name", "SKU", "Desc", "Retail-Price", "Manufacturer", "Department", "Colour"]
    assert guess_mapping(columns) == {
        "item_id": "SKU",
        "title": "Product Name",
        "description": "Desc",
        "category": "Department",
        "brand": "Manufacturer",
        "price": "Retail-Price",
    }


def test_guess_mapping_prefers_the_first_synonym_and_uses_a_column_once():
    mapping = guess_mapping(["sku", "id", "name", "title"])
    assert mapping["item_id"] == "id"
    assert mapping["title"] == "title"
    assert len(set(mapping.values())) == len(mapping)


def test_synonym_headers_are_loaded():
    data = "Product Name,SKU,Desc,Brand\nRed mug,S-1,Ceramic,Acme\nKettle,S-2,Steel,Bolt\n".encode()
    items = load_items(data, "synonyms.csv")
    assert items["item_id"].tolist() == ["S-1", "S-2"]
    assert items["title"].tolist() == ["Red mug", "Kettle"]
    assert items["description"].tolist() == ["Ceramic", "Steel"]
    assert items["brand"].tolist() == ["Acme", "Bolt"]
    assert "category" not in items.columns


def test_category_column_is_kept_when_mapped():
    items = load_items(b"title,category\nMug,Kitchen\n", "cat.csv")
    assert items["category"].tolist() == ["Kitchen"]


def test_explicit_mapping_overrides_guess_and_maps_unknown_columns():
    frame = pd.DataFrame(
        {
            "title": ["short a", "short b"],
            "Marketing copy": ["Long title A", "Long title B"],
            "Notes": ["note a", "note b"],
            "code": ["C1", "C2"],
            "price": ["1", "2"],
        }
    )
    items = prepare_items(
        frame, "f.csv", mapping={"title": "Marketing copy", "description": "Notes", "item_id": "code", "price": None}
    )
    assert items["title"].tolist() == ["Long title A", "Long title B"]
    assert items["description"].tolist() == ["note a", "note b"]
    assert items["item_id"].tolist() == ["C1", "C2"]
    assert items["price"].isna().all()  # None unmaps the guessed price column


def test_mapping_that_names_a_missing_column_is_rejected_naming_it():
    with pytest.raises(IngestError) as err:
        load_items(b"title\nMug\n", "shop.csv", mapping={"description": "Long Text"})
    message = str(err.value)
    assert "shop.csv" in message
    assert "'Long Text'" in message
    assert "description" in message


# --------------------------------------------------------------------------- rejections


@pytest.mark.parametrize("data", [b"", b"   \n\t\r\n  "], ids=["zero-bytes", "whitespace"])
def test_empty_file_is_rejected(data, tmp_path):
    with pytest.raises(IngestError, match=r"^empty\.csv: the file is empty$"):
        read_table(data, "empty.csv")
    path = tmp_path / "empty.csv"
    path.write_bytes(data)
    with pytest.raises(IngestError, match=r"^empty\.csv: the file is empty$"):
        load_items(path)


@pytest.mark.parametrize(
    "name,writer",
    [
        ("head.csv", lambda p: p.write_bytes(b"title,description\n")),
        ("head.tsv", lambda p: p.write_bytes(b"title\tdescription\n")),
        ("head.xlsx", lambda p: pd.DataFrame(columns=["title", "description"]).to_excel(p, index=False)),
        ("head.json", lambda p: p.write_text("[]")),
        ("head2.json", lambda p: p.write_text('{"products": []}')),
        ("head.parquet", lambda p: pd.DataFrame({"title": pd.Series([], dtype=str)}).to_parquet(p)),
    ],
)
def test_header_only_file_is_rejected(tmp_path, name, writer):
    path = tmp_path / name
    writer(path)
    with pytest.raises(IngestError) as err:
        load_items(path)
    assert str(err.value) == f"{name}: the file has no rows"


def test_latin1_file_is_rejected_naming_the_line():
    data = b"title,description\nMug,red\ncaf\xe9,au lait\n"
    with pytest.raises(IngestError) as err:
        load_items(data, "latin.csv")
    message = str(err.value)
    assert message.startswith("latin.csv: not valid UTF-8")
    assert "line 3" in message
    assert "UTF-8" in message


def test_no_text_column_lists_the_columns_present():
    with pytest.raises(IngestError) as err:
        load_items(b"code,colour,weight\nX,red,1\n", "notext.csv")
    message = str(err.value)
    assert message.startswith("notext.csv: no text column found")
    assert "'code', 'colour', 'weight'" in message


def test_duplicate_ids_are_named_with_their_rows():
    data = b"id,title\nA1,Mug\nB2,Bowl\nA1,Cup\nC3,Pan\nB2,Pot\n"
    with pytest.raises(IngestError) as err:
        load_items(data, "dups.csv")
    message = str(err.value)
    assert message.startswith("dups.csv: duplicate ids in column 'id'")
    assert "'A1' in rows 2, 4" in message  # as a spreadsheet numbers them: the header is row 1
    assert "'B2' in rows 3, 6" in message and message.endswith("(row 1 is the header)")
    assert "C3" not in message


def test_ids_differing_only_in_whitespace_are_duplicates():
    with pytest.raises(IngestError, match="'A1' in rows 2, 3"):
        load_items(b"id,title\nA1,Mug\n  A1 ,Cup\n", "ws.csv")


def test_rows_without_text_are_named():
    data = b"id,title,description\n1,Mug,red\n2,,\n3,Bowl,\n4,  ,\t\n"
    with pytest.raises(IngestError) as err:
        load_items(data, "blank.csv")
    message = str(err.value)
    assert message.startswith("blank.csv: 2 row(s) have no text")
    assert "title / description" in message
    assert "row(s) 3, 5 (row 1 is the header)" in message


def test_many_rows_without_text_are_summarised():
    frame = pd.DataFrame({"title": ["x"] + [""] * 12})
    with pytest.raises(IngestError) as err:
        prepare_items(frame, "many.csv")
    assert "12 row(s)" in str(err.value)
    assert "row(s) 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 … (2 more) (row 1 is the header)" in str(err.value)


def test_byte_limit_is_enforced_for_bytes_and_paths(tmp_path):
    data = b"id,title\n1,Mug\n2,Bowl\n"
    limits = Limits(max_bytes=len(data) - 1)
    with pytest.raises(IngestError, match=r"^big\.csv: .* over the .* limit"):
        read_table(data, "big.csv", limits)
    path = tmp_path / "big.csv"
    path.write_bytes(data)
    with pytest.raises(IngestError, match=r"^big\.csv: .* over the .* limit"):
        load_items(path, limits=limits)
    assert len(read_table(data, "ok.csv", Limits(max_bytes=len(data)))) == 2


def test_row_limit_is_enforced():
    data = b"id,title\n1,Mug\n2,Bowl\n3,Cup\n"
    with pytest.raises(IngestError) as err:
        load_items(data, "rows.csv", limits=Limits(max_rows=2))
    assert str(err.value) == "rows.csv: over the 2-row limit (reading stopped at row 3)"
    assert len(load_items(data, "rows.csv", limits=Limits(max_rows=3))) == 3


@pytest.mark.parametrize("name", ["catalog.pdf", "catalog.docx", "catalog"])
def test_unsupported_suffix_is_rejected(name):
    with pytest.raises(IngestError) as err:
        read_table(b"title\nMug\n", name)
    message = str(err.value)
    assert message.startswith(f"{name}: unsupported file type")
    assert ".csv" in message and ".xlsx" in message


def test_missing_path_is_rejected(tmp_path):
    with pytest.raises(IngestError, match="nothere.csv: no such file"):
        read_table(tmp_path / "nothere.csv")


def test_invalid_json_names_line_and_column():
    data = b'[\n  {"title": "Mug"},\n  {"title": Bowl}\n]'
    with pytest.raises(IngestError) as err:
        load_items(data, "bad.json")
    message = str(err.value)
    assert message.startswith("bad.json: invalid JSON at line 3, column 13")


@pytest.mark.parametrize(
    "payload,needle",
    [
        ('{"a": [{"title": "x"}], "b": [{"title": "y"}]}', "one list"),
        ('{"title": "x"}', "one list"),
        ('["just", "strings"]', "list of objects"),
        ('"text"', "list of objects"),
    ],
)
def test_json_of_the_wrong_shape_is_rejected(payload, needle):
    with pytest.raises(IngestError, match=rf"^shape\.json: expected .*{needle}"):
        read_table(payload.encode(), "shape.json")


def test_unparseable_jsonl_and_excel_are_rejected_naming_the_file():
    with pytest.raises(IngestError, match=r"^bad\.jsonl: invalid JSON on line 2, column 2"):
        read_table(b'{"title": "a"}\n{oops\n', "bad.jsonl")
    with pytest.raises(IngestError, match=r"^bad\.xlsx: could not be read as EXCEL"):
        read_table(b"this is not a workbook", "bad.xlsx")


def test_some_ids_blank_is_rejected_naming_rows():
    with pytest.raises(IngestError) as err:
        load_items(b"id,title\nA1,Mug\n,Bowl\nA3,Cup\n ,Pan\n", "partial.csv")
    message = str(err.value)
    assert message.startswith("partial.csv: column 'id' is empty in row(s) 3, 5 (row 1 is the header)")


def test_all_ids_blank_falls_back_to_generated_ids():
    items = load_items(b"id,title\n,Mug\n,Bowl\n", "noids.csv")
    assert_generated_ids(items, "NEW", 2)


# --------------------------------------------------------------------------- text cleaning


def test_control_characters_are_stripped():
    cleaned = clean_text("Red\x00 mug\x07 with \x1b[31mlid\u200b \x7f\ufeff")
    assert cleaned == "Red mug with [31mlid"
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in cleaned)


def test_unicode_text_is_kept_and_nfc_normalised():
    decomposed = "Cafe\u0301 か\u3099 不锈钢炒锅 ステンレス 👩\u200d💻 ❤\ufe0f Ünïcödé"
    cleaned = clean_text(decomposed)
    assert cleaned == unicodedata.normalize("NFC", decomposed)
    assert "Café" in cleaned and "\u00e9" in cleaned
    assert "が" in cleaned
    assert "不锈钢炒锅 ステンレス" in cleaned
    assert "👩\u200d💻" in cleaned  # the zero-width joiner of an emoji sequence survives
    assert "❤\ufe0f" in cleaned


def test_whitespace_is_collapsed_and_trimmed():
    assert clean_text("  Red \n\t mug\r\n  large\u00a0 ") == "Red mug large"


@pytest.mark.parametrize("value", [None, float("nan"), pd.NA])
def test_clean_text_of_missing_values_is_empty(value):
    assert clean_text(value) == ""


def test_clean_text_limits_length_and_stringifies():
    assert clean_text("abcdef", limit=3) == "abc"
    assert clean_text(12.5) == "12.5"


def test_html_is_kept_as_plain_text():
    data = "title,description\n<script>alert(1)</script>,<b>bold</b> &amp; <i>x</i>\n".encode()
    items = load_items(data, "html.csv")
    assert items["title"].tolist() == ["<script>alert(1)</script>"]
    assert items["description"].tolist() == ["<b>bold</b> &amp; <i>x</i>"]


def test_prepare_items_cleans_every_text_column():
    frame = pd.DataFrame(
        {"id": [" A\x001 "], "title": ["Mug\x07  red"], "description": ["e\u0301\n\ttext"], "brand": ["\u200bAcme"]}
    )
    items = prepare_items(frame)
    assert items.iloc[0][["item_id", "title", "description", "brand"]].tolist() == ["A 1", "Mug red", "\u00e9 text", "Acme"]


def test_title_is_capped():
    items = prepare_items(pd.DataFrame({"title": ["x" * 5000]}))
    assert len(items["title"].iloc[0]) == 1_000


# --------------------------------------------------------------------------- ids and titles


def test_ids_are_generated_without_an_id_column():
    items = prepare_items(pd.DataFrame({"title": ["a", "b", "c"]}), id_prefix="BATCH7")
    assert_generated_ids(items, "BATCH7", 3)


def test_description_only_file_gets_titles_from_descriptions(tmp_path):
    long = "Stainless steel wok with a wooden handle " * 5
    rows = [{"description": "Red ceramic mug"}, {"description": long}]
    path = tmp_path / "desc.json"
    path.write_text(json.dumps(rows))
    items = load_items(path)
    assert items["title"].tolist() == ["Red ceramic mug", long.strip()[:120]]
    assert items["description"].tolist() == ["Red ceramic mug", long.strip()]
    assert_generated_ids(items, "NEW", 2)


def test_description_only_tsv_gets_titles():
    items = load_items(b"Desc\nRed ceramic mug\nBlue kettle\n", "desc.tsv")
    assert items["title"].tolist() == ["Red ceramic mug", "Blue kettle"]


def test_missing_title_in_some_rows_falls_back_to_description():
    items = prepare_items(pd.DataFrame({"title": ["Mug", ""], "description": ["red", "Blue bowl"]}))
    assert items["title"].tolist() == ["Mug", "Blue bowl"]


# --------------------------------------------------------------------------- prices


def _prices(values):
    return prepare_items(pd.DataFrame({"title": [f"t{i}" for i in range(len(values))], "price": values}))["price"]


def test_price_parsing_accepts_plain_and_decimal_comma_and_currency():
    prices = _prices(["12.50", "€ 7,99", "$5", "  3 EUR ", "-2.5", "0"])
    assert prices.tolist() == pytest.approx([12.5, 7.99, 5.0, 3.0, -2.5, 0.0])
    assert prices.dtype.kind == "f"


def test_price_junk_and_blanks_become_nan():
    prices = _prices(["junk", "", "n/a", "1.2.3", None])
    assert prices.isna().all()


def test_numeric_prices_pass_through():
    assert _prices([12.5, 3, float("nan")]).tolist()[:2] == [12.5, 3.0]
    assert math.isnan(_prices([12.5, 3, float("nan")]).iloc[2])


def test_no_price_column_gives_nan():
    assert prepare_items(pd.DataFrame({"title": ["a"]}))["price"].isna().all()


def test_price_with_thousands_separator():
    assert _prices(["€1,299.00", "1.299,00 €"]).tolist() == [1299.0, 1299.0]


# --------------------------------------------------------------------------- item_text


@pytest.mark.parametrize("description", [None, float("nan"), pd.NA, "", "   "])
def test_item_text_with_missing_description_is_the_title(description):
    assert item_text("Red mug", description) == "Red mug"


def test_item_text_joins_title_and_description_and_caps_length():
    assert item_text("Red mug", " 300 ml ") == "Red mug. 300 ml"
    assert item_text("Red mug", "Red mug") == "Red mug"
    assert item_text("Red mug", "x" * 100, max_chars=20) == "Red mug. " + "x" * 11


# --------------------------------------------------------------------------- known bugs


@pytest.mark.parametrize(
    "data,expected",
    [
        (b"description\nRed ceramic mug\nBlue kettle\n", ["Red ceramic mug", "Blue kettle"]),
        (b"title\nmug\nkettle\n", ["mug", "kettle"]),
        (b"Product Name\nRed mug\nBlue steel kettle\n", ["Red mug", "Blue steel kettle"]),
    ],
    ids=["description", "title", "product-name"],
)
def test_one_column_csv_is_read(data, expected):
    items = load_items(data, "one.csv")
    assert items["title"].tolist() == expected


def test_utf16_tsv_with_bom_is_read():
    text = "title\tdescription\n" + "".join(f"{t}\t{d}\n" for t, d in zip(TITLES, DESCRIPTIONS))
    items = load_items(text.encode("utf-16"), "excel.tsv")
    assert items["title"].tolist() == TITLES


def test_zero_width_space_inside_a_word_is_removed():
    assert clean_text("Smart\u200bphone") == "Smartphone"


def test_item_text_caps_a_long_title_without_description():
    assert len(item_text("x" * 3000, None, max_chars=2000)) == 2000


def test_item_text_with_missing_title_is_the_description():
    assert item_text(float("nan"), "Blue kettle") == "Blue kettle"


def assert_generated_ids(items, prefix, count):
    """Generated ids: prefix + hash of the text, unique, and the same for the same text."""
    ids = items["item_id"].tolist()
    assert len(ids) == count and len(set(ids)) == count
    assert all(i.startswith(prefix + "-") and len(i) == len(prefix) + 13 for i in ids)
    again = prepare_items(items.drop(columns="item_id"), id_prefix=prefix)
    assert again["item_id"].tolist() == ids


def test_generated_ids_do_not_collide_across_batches_and_repeats_collapse():
    first = parse_pasted("steel pan\nwool socks\nsteel pan\n")
    second = parse_pasted("leather boot\n")
    a, b = prepare_items(first), prepare_items(second)
    assert a["title"].tolist() == ["steel pan", "wool socks"]
    assert not set(a["item_id"]) & set(b["item_id"])


def test_row_numbers_in_messages_count_blank_lines_as_in_the_file():
    data = b"title,description,brand\na,x,\n\n,,Acme\nb,y,\n"
    with pytest.raises(IngestError, match=r"row\(s\) 4 \(row 1 is the header\)"):
        load_items(data, "gaps.csv")


def test_rows_are_numbered_as_the_user_finds_them_spreadsheet_rows_or_records():
    # The same bad second record: row 3 of a CSV or Excel sheet (header = row 1), record 2 of a JSON file.
    with pytest.raises(IngestError, match=r"^t\.csv: 1 row\(s\) have no text .*row\(s\) 3 \(row 1 is the header\)$"):
        load_items(b"id,title\nA,mug\nB,\n", "t.csv")
    with pytest.raises(IngestError, match=r"row\(s\) 2 \(counting records from 1\)$"):
        load_items(b'[{"id": "A", "title": "mug"}, {"id": "B", "title": ""}]', "t.json")


# -- found in review: each once failed or lost data --------------------------------------------
def test_old_excel_files_get_a_save_as_xlsx_message():
    with pytest.raises(IngestError, match="save it as .xlsx"):
        load_items(b"\xd0\xcf\x11\xe0 not really", "products.xls")
