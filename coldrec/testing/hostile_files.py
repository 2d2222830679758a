"""Hostile upload files from the attack runs (issues 12 and 25), built in memory, deterministic.

Shared by the hostile-input tests and ``benchmarks/bench_hostile.py``. Each builder returns
``(filename, bytes)``; sizes are those of the attack unless a test asks for fewer rows.
``round2_cases`` is round 2's generated fuzz corpus (workbooks and JSON Lines, fixed seed).
"""

from __future__ import annotations

import io
import json
import random
import zipfile
from collections.abc import Iterator

_CONTENT_TYPES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
    '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
    '<Default Extension="xml" ContentType="application/xml"/>'
    '<Override PartName="/xl/workbook.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
    '<Override PartName="/xl/worksheets/sheet1.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
    "</Types>"
)
_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'officeDocument" Target="xl/workbook.xml"/></Relationships>'
)
_WORKBOOK = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
    'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
    '<sheets><sheet name="Sheet1" sheetId="1" r:id="rId1"/></sheets></workbook>'
)
_WORKBOOK_RELS = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
    '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/'
    'worksheet" Target="worksheets/sheet1.xml"/></Relationships>'
)


_SHARED_TYPE = (
    '<Override PartName="/xl/sharedStrings.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
)
_STYLES_TYPE = (
    '<Override PartName="/xl/styles.xml" '
    'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
)


def _xlsx(sheet_rows, dimension: str | None = None, shared: str | None = None, styles: str | None = None,
          sheet_prolog: str = "") -> bytes:
    """A minimal workbook whose first sheet is written row by row (inline strings), optionally with
    a shared-strings part (its whole XML), a styles part and text before ``<worksheet>`` (a DTD)."""
    buffer = io.BytesIO()

    def member(name: str) -> zipfile.ZipInfo:  # a fixed date: the same rows give the same bytes
        info = zipfile.ZipInfo(name, date_time=(2026, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        types = _CONTENT_TYPES
        extra = (_SHARED_TYPE if shared is not None else "") + (_STYLES_TYPE if styles is not None else "")
        archive.writestr(member("[Content_Types].xml"), types.replace("</Types>", extra + "</Types>"))
        if shared is not None:
            archive.writestr(member("xl/sharedStrings.xml"), shared)
        if styles is not None:
            archive.writestr(member("xl/styles.xml"), styles)
        archive.writestr(member("_rels/.rels"), _RELS)
        archive.writestr(member("xl/workbook.xml"), _WORKBOOK)
        archive.writestr(member("xl/_rels/workbook.xml.rels"), _WORKBOOK_RELS)
        with archive.open(member("xl/worksheets/sheet1.xml"), "w") as sheet:
            sheet.write(b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + sheet_prolog.encode() +
                        b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">')
            if dimension:
                sheet.write(f'<dimension ref="{dimension}"/>'.encode())
            sheet.write(b"<sheetData>")
            for row in sheet_rows:
                sheet.write(row.encode())
            sheet.write(b"</sheetData></worksheet>")
    return buffer.getvalue()


def _cell(ref: str, text: str) -> str:
    return f'<c r="{ref}" t="inlineStr"><is><t>{text}</t></is></c>'


def xlsx_table(rows: list[list[str]]) -> bytes:
    """A small workbook of text rows (the first is the header), byte-for-byte reproducible."""
    from xml.sax.saxutils import escape

    def ref(column: int, row: int) -> str:
        return f"{chr(ord('A') + column)}{row}"

    return _xlsx(
        f'<row r="{r}">' + "".join(_cell(ref(c, r), escape(v)) for c, v in enumerate(cells)) + "</row>"
        for r, cells in enumerate(rows, start=1)
    )


def xlsx_far_cell() -> tuple[str, bytes]:
    """One cell, at the sheet's last row and column (XFD1048576)."""
    return "far_cell.xlsx", _xlsx(['<row r="1048576">' + _cell("XFD1048576", "x") + "</row>"], "XFD1048576")


def xlsx_far_cell_no_dimension() -> tuple[str, bytes]:
    """The same, without a <dimension> tag (the reader cannot trust the sheet's claim)."""
    rows = ['<row r="1">' + _cell("A1", "title") + "</row>", '<row r="1048576">' + _cell("XFD1048576", "x") + "</row>"]
    return "far_cell_nodim.xlsx", _xlsx(rows)


def xlsx_zip_bomb(rows: int = 4_000_000) -> tuple[str, bytes]:
    """A workbook of ``rows`` identical tiny rows (no cell references): under 1 MB, about 200:1."""
    return "bomb.xlsx", _xlsx(_many_rows("<row>", rows))


def _many_rows(row_tag: str, rows: int) -> Iterator[str]:
    """A header row, then ``rows`` one-cell rows opened by ``row_tag``, 10,000 per chunk."""
    yield '<row r="1">' + _cell("A1", "title") + "</row>"
    chunk = (row_tag + '<c t="inlineStr"><is><t>x</t></is></c></row>') * 10_000
    for _ in range(rows // 10_000):
        yield chunk


def parquet_dictionary_bomb(rows: int = 150_000, chars: int = 20_000) -> tuple[str, bytes]:
    """``rows`` copies of one long string: a few hundred bytes on disk, gigabytes as Python strings."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    value = "x" * chars
    table = pa.table({"title": pa.DictionaryArray.from_arrays(pa.array([0] * rows, pa.int32()), pa.array([value]))})
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd", use_dictionary=True)
    return "dictionary.parquet", buffer.getvalue()


def parquet_column(kind: str) -> tuple[str, bytes]:
    """A Parquet file with a title column and one ``binary``, ``nested`` or ``bad_utf8`` column."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    titles = pa.array(["Red mug", "Blue bowl"])
    if kind == "binary":
        extra = pa.array([b"\xff\xfe\x00", b"\x80"], pa.binary())
    elif kind == "nested":
        extra = pa.array([[1, 2], [3]], pa.list_(pa.int64()))
    else:  # a string column holding bytes that are not UTF-8
        extra = pa.array([b"ok", b"caf\xe9"], pa.binary()).view(pa.string())
    buffer = io.BytesIO()
    pq.write_table(pa.table({"title": titles, "extra": extra}), buffer)
    return f"{kind}.parquet", buffer.getvalue()


def json_distinct_keys(records: int = 20_000) -> tuple[str, bytes]:
    """Records that each use a key no other record uses: a frame of records x records cells."""
    payload = [{"title": f"item {i}", f"k{i}": "v"} for i in range(records)]
    return "keys.json", json.dumps(payload).encode()


def jsonl_distinct_keys(records: int = 20_000) -> tuple[str, bytes]:
    lines = (json.dumps({"title": f"item {i}", f"k{i}": "v"}) for i in range(records))
    return "keys.jsonl", "\n".join(lines).encode()


def csv_wide(columns: int = 100_000) -> tuple[str, bytes]:
    header = ",".join(["title"] + [f"c{i}" for i in range(columns - 1)])
    row = ",".join(["mug"] + ["1"] * (columns - 1))
    return "wide.csv", f"{header}\n{row}\n".encode()


def csv_long_row(fields: int = 300_000) -> tuple[str, bytes]:
    return "long_row.csv", ("id,title\n" + ",".join(["x"] * fields) + "\n").encode()


def csv_extra_comma() -> tuple[str, bytes]:
    """The first data row has an unquoted comma in its title: pandas would shift every column."""
    return "extra_comma.csv", b"id,title,price\nA1,Mug, red,12\nA2,Bowl,8\n"


def json_lone_surrogate() -> tuple[str, bytes]:
    return "surrogate.json", b'[{"id": "A1", "title": "mug \\ud83d"}]'


def taxonomy_deep(paths: int = 3_000, depth: int = 302) -> tuple[str, bytes]:
    lines = (" > ".join(f"n{p}x{d}" for d in range(depth)) for p in range(paths))
    return "deep.txt", "\n".join(lines).encode()


# -- round 2 (issue 25) ------------------------------------------------------------------------
_SST = '<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" count="{n}" uniqueCount="{n}">{items}</sst>'


def _shared(strings: list[str], prolog: str = "") -> str:
    from xml.sax.saxutils import escape

    items = "".join(f"<si><t>{escape(t)}</t></si>" for t in strings)
    return '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + prolog + _SST.format(n=len(strings), items=items)


def xlsx_shared_amplification(rows: int = 200_000, chars: int = 90_000) -> tuple[str, bytes]:
    """One long shared string used by every cell: a few KB on disk, rows x chars characters read."""
    def gen():
        yield '<row r="1">' + _cell("A1", "title") + "</row>"
        for r in range(2, rows + 2):
            yield f'<row r="{r}"><c r="A{r}" t="s"><v>0</v></c></row>'

    return "shared_amplification.xlsx", _xlsx(gen(), shared=_shared(["x" * chars]))


def xlsx_entity_bomb(levels: int = 9) -> tuple[str, bytes]:
    """A billion-laughs DTD in sharedStrings.xml (a few hundred bytes; 10**levels characters expanded)."""
    entities = '<!ENTITY a0 "xxxxxxxxxx">' + "".join(
        f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, levels + 1)
    )
    prolog = f"<!DOCTYPE sst [{entities}]>"
    sst = ('<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' + prolog +
           f'<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><si><t>&a{levels};</t></si></sst>')
    rows = ['<row r="1">' + _cell("A1", "title") + "</row>", '<row r="2"><c r="A2" t="s"><v>0</v></c></row>']
    return "entity_bomb.xlsx", _xlsx(rows, shared=sst)


def xlsx_sheet_entity() -> tuple[str, bytes]:
    """An internal entity declared in the sheet itself (expanded in a cell)."""
    prolog = '<!DOCTYPE worksheet [<!ENTITY e "' + "y" * 1000 + '">]>'
    rows = ['<row r="1">' + _cell("A1", "title") + "</row>", '<row r="2">' + _cell("A2", "&e;&e;&e;") + "</row>"]
    return "sheet_entity.xlsx", _xlsx(rows, sheet_prolog=prolog)


def xlsx_unclosed_text(megabytes: int = 30) -> tuple[str, bytes]:
    """A text node that never ends (no '<' or '>' after it): the pre-scan must stay linear."""
    rows = ['<row r="1">' + _cell("A1", "title") + "</row>",
            '<row r="2"><c r="A2" t="inlineStr"><is><t>' + "x" * (megabytes << 20)]
    return "unclosed_text.xlsx", _xlsx(rows)


def xlsx_tab_rows(rows: int = 4_000_000) -> tuple[str, bytes]:
    """Row tags written ``<row\t>`` (valid XML): they count as rows like ``<row>``."""
    return "tab_rows.xlsx", _xlsx(_many_rows("<row\t>", rows))


def xlsx_shared_index(index: int) -> tuple[str, bytes]:
    rows = ['<row r="1">' + _cell("A1", "title") + "</row>",
            f'<row r="2"><c r="A2" t="s"><v>{index}</v></c></row>']
    return f"shared_index_{index}.xlsx", _xlsx(rows, shared=_shared(["first", "last"]))


_STYLES = (
    '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
    '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
    '<numFmts count="1"><numFmt numFmtId="164" formatCode="00000"/></numFmts>'
    '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
    '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
    '<borders count="1"><border><left/><right/><top/><bottom/><diagonal/></border></borders>'
    '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
    '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
    '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
    "</styleSheet>"
)


def xlsx_zero_padded_ids() -> tuple[str, bytes]:
    """Numeric ids shown as ``00042`` (number format ``00000``), as Excel users keep postcodes and SKUs."""
    rows = ['<row r="1">' + _cell("A1", "id") + _cell("B1", "title") + "</row>",
            '<row r="2"><c r="A2" s="1"><v>42</v></c>' + _cell("B2", "Red mug") + "</row>",
            '<row r="3"><c r="A3" s="1"><v>123456</v></c>' + _cell("B3", "Blue bowl") + "</row>",
            '<row r="4"><c r="A4"><v>7</v></c>' + _cell("B4", "Plain") + "</row>"]
    return "zero_padded.xlsx", _xlsx(rows, styles=_STYLES)


def xlsx_value_past_header(column: str = "C") -> tuple[str, bytes]:
    """A value two (or more) columns past the header's last column."""
    rows = ['<row r="1">' + _cell("A1", "title") + "</row>",
            '<row r="2">' + _cell("A2", "Red mug") + "</row>",
            '<row r="3">' + _cell("A3", "Blue bowl") + _cell(f"{column}3", "stray") + "</row>"]
    return "past_header.xlsx", _xlsx(rows)


def paste_many_lines(lines: int = 3_000_000) -> str:
    return "mug\n" * lines


def csv_purchases(rows: int = 3_000_000) -> tuple[str, bytes]:
    """A ~35 MB purchases file of short rows (what the Audience page's upload reads)."""
    body = "".join(f"u{i % 5000},P{i % 900},{i % 7}\n" for i in range(rows))
    return "purchases.csv", ("user_id,item_id,quantity\n" + body).encode()


def csv_labels(rows: int = 2_000_000) -> tuple[str, bytes]:
    body = "".join(f"C{i},Cookware\n" for i in range(rows))
    return "labels.csv", ("item_id,category\n" + body).encode()


#: Round 2's fuzz corpus (issue 25): generated workbooks and JSON Lines with odd line separators.
ROUND2_SEED = 20261206


def _random_workbook(rng: random.Random) -> bytes:
    from xml.sax.saxutils import escape

    strings = [rng.choice(["mug", "x" * rng.randrange(1, 5000), "é", "", "=1+1"]) for _ in range(rng.randrange(1, 5))]
    tags = ["row", "row\t", "row\n", "x:row"]
    rows = ['<row r="1">' + _cell("A1", "title") + _cell("B1", "id") + "</row>"]
    for r in range(2, rng.randrange(3, 12)):
        cells = []
        for column in rng.sample("ABCDEZ", rng.randrange(0, 4)):
            kind = rng.randrange(4)
            if kind == 0:
                cells.append(f'<c r="{column}{r}" t="s"><v>{rng.randrange(-2, len(strings) + 2)}</v></c>')
            elif kind == 1:
                cells.append(f'<c r="{column}{r}"><v>{rng.choice(["1", "1e308", "-0", "nan", "12.5"])}</v></c>')
            elif kind == 2:
                cells.append(_cell(f"{column}{r}", escape(rng.choice(["a\u2028b", "\x85", "'=x", "ok"]))))
            else:
                cells.append(f'<c r="{column}{r}" t="{rng.choice(["b", "e", "str", "d"])}"><v>1</v></c>')
        tag = rng.choice(tags)
        rows.append(f'<{tag} r="{rng.choice([r, r, r, r - 1, 10**7])}">' + "".join(cells) + f"</{tag.strip()}>")
    prolog = rng.choice(["", "", '<!DOCTYPE x [<!ENTITY e "y">]>'])
    return _xlsx(rows, shared=_shared(strings), styles=_STYLES, sheet_prolog=prolog)


def round2_cases() -> list[tuple[str, bytes]]:
    """30 generated workbooks and 20 JSON Lines files, byte-for-byte the same on every call."""
    rng = random.Random(ROUND2_SEED)
    cases = [(f"round2_{i}.xlsx", _random_workbook(rng)) for i in range(30)]
    breaks = ["\n", "\r\n", "\r", "\u2028", "\u2029", "\x85", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e"]
    for i in range(20):
        records = [{"id": f"A{j}", "title": rng.choice(breaks).join(["Red", "mug"])} for j in range(rng.randrange(1, 5))]
        lines = [json.dumps(r, ensure_ascii=rng.random() < 0.5) for r in records]
        cases.append((f"round2_{i}.jsonl", rng.choice(["\n", "\r\n", "\r"]).join(lines).encode()))
    return cases


#: Product uploads that must be refused with an IngestError (or read cleanly), fast and small.
UPLOADS = {
    "xlsx_far_cell": xlsx_far_cell,
    "xlsx_far_cell_no_dimension": xlsx_far_cell_no_dimension,
    "xlsx_zip_bomb": xlsx_zip_bomb,
    "parquet_dictionary_bomb": parquet_dictionary_bomb,
    "parquet_binary": lambda: parquet_column("binary"),
    "parquet_nested": lambda: parquet_column("nested"),
    "parquet_bad_utf8": lambda: parquet_column("bad_utf8"),
    "json_distinct_keys": json_distinct_keys,
    "jsonl_distinct_keys": jsonl_distinct_keys,
    "csv_wide": csv_wide,
    "csv_long_row": csv_long_row,
    "csv_extra_comma": csv_extra_comma,
    "json_lone_surrogate": json_lone_surrogate,
    # round 2 (issue 25)
    "xlsx_shared_amplification": xlsx_shared_amplification,
    "xlsx_entity_bomb": xlsx_entity_bomb,
    "xlsx_sheet_entity": xlsx_sheet_entity,
    "xlsx_unclosed_text": xlsx_unclosed_text,
    "xlsx_tab_rows": xlsx_tab_rows,
    "xlsx_shared_index_minus_one": lambda: xlsx_shared_index(-1),
    "xlsx_value_past_header": xlsx_value_past_header,
}
