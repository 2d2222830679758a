"""Reading product files and pasted text into a clean frame of items.

Accepts CSV, TSV, Excel, JSON, JSON Lines and Parquet. Columns are mapped by name
(with synonyms) or explicitly. Every rejection is an :class:`IngestError` whose message
names the file and, where it applies, the row and column.
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import hashlib
import io
import json
import math
import re
import unicodedata
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import IngestError

#: Canonical column -> accepted header names (compared lower-cased, with spaces/dashes as "_").
COLUMN_SYNONYMS: dict[str, tuple[str, ...]] = {
    "item_id": ("item_id", "id", "sku", "product_id", "uniq_id", "item", "asin", "article", "article_number",
                "商品编号", "商品id", "编号", "货号"),
    "title": ("title", "name", "product_name", "product_title", "product", "item_name",
              "商品名称", "商品标题", "标题", "名称", "品名", "商品名"),
    "description": ("description", "desc", "product_description", "details", "body", "text", "summary",
                    "商品描述", "描述", "详情", "商品详情"),
    "category": ("category", "label", "class", "product_category", "categories", "department",
                 "类目", "类别", "分类", "商品分类", "商品类目"),
    "brand": ("brand", "manufacturer", "maker", "vendor", "品牌"),
    "price": ("price", "retail_price", "cost", "amount", "unit_price", "价格", "售价", "单价"),
}
TEXT_COLUMNS = ("title", "description")
SUFFIXES = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".tab": "tsv",
    ".xlsx": "excel",
    ".xlsm": "excel",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
    ".pq": "parquet",
}
#: Control characters, line/paragraph separators and lone surrogates (from JSON escapes or pasted
#: text; they cannot be encoded as UTF-8).
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
#: Invisible characters that sit inside words: removed, not turned into spaces.
_INVISIBLE = re.compile(r"[\u200b\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
MAX_TITLE_CHARS = 1_000
MAX_TEXT_CHARS = 20_000
#: Longest item id kept; a longer one is refused (naming the row), never cut.
MAX_ID_CHARS = 200
#: The only line breaks of pasted text and JSON Lines; U+2028, U+0085, VT, FF and FS-RS stay inside a line.
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
#: A spreadsheet export's escape mark (``'``) followed by what it escapes (see :mod:`coldrec.export`).
_ESCAPED = ("'=", "'+", "'-", "'@", "'\t", "'\r", "''")




@dataclass(frozen=True)
class Limits:
    """Upload limits, checked before a file is materialised (memory is bounded by these, not by
    what a file claims about itself)."""

    max_bytes: int = 50 * 1024 * 1024
    max_rows: int = 200_000
    #: coldrec reads six columns; a thousand is far past any product sheet.
    max_columns: int = 1_000
    #: Five times the longest description kept (:data:`MAX_TEXT_CHARS`): longer is not a product text.
    max_field_chars: int = 100_000

    @property
    def max_decoded_bytes(self) -> int:
        """Text a compressed file may decode to (Parquet values, an .xlsx shared-strings table, both
        held in memory): four times the upload limit. Real catalogs decode to 1.3-2.9 times their
        Parquet size (BENCHMARKS.md, "Hostile inputs")."""
        return 4 * self.max_bytes

    @property
    def max_text_chars(self) -> int:
        """Characters all the cells read may hold together (as many as :attr:`max_decoded_bytes`):
        an .xlsx shared string or a Parquet dictionary value counts once per cell that uses it."""
        return self.max_decoded_bytes

    @property
    def max_expanded_bytes(self) -> int:
        """What an .xlsx workbook may unzip to in all (its sheets are streamed, so this bounds time,
        not memory): ten times the upload limit; real catalogs expand 5.6-6.5 times."""
        return 10 * self.max_bytes


#: The operator's own files (catalogs, evaluation data, purchase histories) are not uploads.
OPERATOR_FILES = Limits(max_bytes=10**11, max_rows=10**9, max_columns=100_000, max_field_chars=10**8)
#: A labels file uploaded on the Label page: one row per item (id, category and a few more columns).
LABEL_UPLOADS = Limits(max_bytes=50 * 1024 * 1024, max_rows=1_000_000, max_columns=50, max_field_chars=MAX_TEXT_CHARS)
#: Purchases uploaded on the Audience page: short ids, a date and numbers (larger histories: the CLI).
PURCHASE_UPLOADS = Limits(max_bytes=50 * 1024 * 1024, max_rows=1_000_000, max_columns=50, max_field_chars=1_000)


def clean_text(value: object, limit: int = MAX_TEXT_CHARS) -> str:
    """Text with control characters removed, whitespace collapsed, Unicode (NFC) kept intact."""
    if value is None or (isinstance(value, float) and pd.isna(value)) or value is pd.NA:
        return ""
    text = unicodedata.normalize("NFC", str(value))
    text = _CONTROL.sub(" ", _INVISIBLE.sub("", text))
    return _SPACES.sub(" ", text).strip()[:limit]


def item_text(title: object, description: object = None, max_chars: int = 2_000) -> str:
    """The text that is embedded for an item: title, then its description (missing values are empty)."""
    title = title.strip() if isinstance(title, str) else ""
    description = description.strip() if isinstance(description, str) else ""
    if not description or description == title:
        return title[:max_chars]
    if not title:
        return description[:max_chars]
    return f"{title}. {description}"[:max_chars]


def _normalise_header(name: object) -> str:
    return re.sub(r"[\s\-./]+", "_", _INVISIBLE.sub("", str(name)).strip().lower())


def detect_format(filename: str) -> str:
    """Format name from a file name's suffix; raises :class:`IngestError` for unknown ones."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".xls":
        raise IngestError(f"{filename}: old Excel .xls files are not supported; save it as .xlsx and upload again")
    if suffix not in SUFFIXES:
        known = ", ".join(sorted(SUFFIXES))
        raise IngestError(f"{filename}: unsupported file type {suffix or '(none)'!r}; use one of {known}")
    return SUFFIXES[suffix]


#: A GB18030 reading is taken only when at least this share of its non-ASCII characters are in
#: GB2312 (the 7,445 common characters every Chinese text is mostly made of): a Latin-1 file
#: ("caf\xe9s") also decodes as GB18030, but into rare characters.
_GB2312_SHARE = 0.8


def _decode(data: bytes, filename: str) -> str:
    """The text of an upload: UTF-8 (with or without BOM), UTF-16 (with a BOM, or without one when
    the NUL bytes show it), or GB18030/GBK (how Chinese Excel saves CSV); refused naming them."""
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with a byte-order mark (Excel "Unicode Text")
        try:
            return data.decode("utf-16").lstrip("\ufeff")
        except UnicodeDecodeError as exc:
            raise IngestError(f"{filename}: damaged UTF-16 text at byte {exc.start}; save the file as UTF-8") from exc
    utf16 = _utf16_without_bom(data)
    if utf16 is not None:
        try:
            return data.decode(utf16)
        except UnicodeDecodeError:
            pass  # NULs for another reason: the UTF-8 message below says where
    try:
        # Every leading byte-order mark goes (a file saved twice by a BOM-adding tool has two).
        return data.decode("utf-8-sig").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        error = exc
    chinese = _gb18030(data)
    if chinese is not None:
        return chinese
    line = data[: error.start].count(b"\n") + 1
    raise IngestError(
        f"{filename}: not valid UTF-8 text (byte {error.start}, line {line}), nor UTF-16 or GB18030/GBK; "
        "save the file as UTF-8 (Excel: 'CSV UTF-8') and upload it again"
    ) from error


def _utf16_without_bom(data: bytes) -> str | None:
    """``utf-16-le`` or ``utf-16-be`` when the first 4 KB have NUL bytes on one side of most pairs."""
    head = data[:4096]
    if b"\x00" not in head or len(head) < 4:
        return None
    pairs = len(head) // 2
    odd, even = head[1::2].count(0), head[0::2].count(0)
    # ASCII characters put a NUL on one side; a few CJK characters (U+4E00...) on the other.
    if odd >= 0.2 * pairs and odd > 4 * even:
        return "utf-16-le"
    if even >= 0.2 * pairs and even > 4 * odd:
        return "utf-16-be"
    return None


def _gb18030(data: bytes) -> str | None:
    """The text read as GB18030 (a superset of GBK and GB2312), if that is what it plausibly is."""
    try:
        text = data.decode("gb18030")
    except UnicodeDecodeError:
        return None
    wide = [c for c in text if ord(c) > 0x7F]
    if not wide:
        return None
    common = 0
    for char in wide:
        try:
            char.encode("gb2312")
            common += 1
        except UnicodeEncodeError:
            pass
    return text if common >= _GB2312_SHARE * len(wide) else None


def _sniff_separator(text: str) -> str:
    """Comma unless the header line clearly uses semicolons, tabs or pipes."""
    header = text.split("\n", 1)[0]
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def parse_price(value: object) -> float:
    """A price from text such as ``12.50``, ``€ 7,99``, ``1,299.00``, ``1.299,00 €`` or ``1E3``; NaN if
    unreadable (a price is never made of some of the characters only: ``1e+20`` is 1e20, not 120)."""
    raw = str(value if value is not None else "").strip()
    scientific = re.fullmatch(r"[^\d.,+\-]*([+-]?(?:\d+\.?\d*|\.\d+)[eE][+-]?\d+)[^\d.,+\-]*", raw)
    if scientific:
        number = float(scientific.group(1))
        return number if math.isfinite(number) else float("nan")
    if re.search(r"\d[eE][+-]?\d", raw):  # an exponent in a text that is not one number
        return float("nan")
    text = re.sub(r"[^\d.,\-]", "", raw)
    if not re.search(r"\d", text):
        return float("nan")
    if "," in text and "." in text:
        # The later separator is the decimal point; the other groups thousands.
        thousands = "," if text.rfind(",") < text.rfind(".") else "."
        text = text.replace(thousands, "").replace(",", ".")
    elif "," in text:
        text = text.replace(",", "") if re.fullmatch(r"-?\d{1,3}(,\d{3})+", text) else text.replace(",", ".")
    try:
        return float(text)
    except ValueError:
        return float("nan")


def read_file(path: str | Path, filename: str | None = None, max_bytes: int | None = None) -> bytes:
    """The bytes of a regular file, or an :class:`IngestError` saying why not: no such file, a name
    too long, a folder, a device or pipe (``/dev/zero``, a FIFO: never read, they could be endless),
    over ``max_bytes``, unreadable."""
    import errno
    import stat as stat_module

    path = Path(path)
    filename = filename or path.name
    try:
        info = path.stat()
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise IngestError(f"{filename}: the file name is too long for this system") from None
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            raise IngestError(f"{filename}: no such file") from None
        raise IngestError(f"{filename}: cannot be read: {exc.strerror or exc}") from None
    except ValueError:  # a NUL byte in the name
        raise IngestError(f"{filename}: no such file (the name holds a NUL character)") from None
    if stat_module.S_ISDIR(info.st_mode):
        raise IngestError(f"{filename}: is a folder, not a file")
    if not stat_module.S_ISREG(info.st_mode):
        raise IngestError(f"{filename}: not a regular file (a device, a pipe or a socket); save the data to a file")
    if max_bytes is not None and info.st_size > max_bytes:
        raise IngestError(f"{filename}: {info.st_size / 1e6:.1f} MB is over the {max_bytes / 1e6:.0f} MB limit")
    try:
        with open(path, "rb") as handle:  # noqa: PTH123 - the user's own path, checked above
            return handle.read()  # its size was checked just above
    except OSError as exc:
        raise IngestError(f"{filename}: cannot be read: {exc.strerror or exc}") from exc


def read_table(data: bytes | str | Path, filename: str | None = None, limits: Limits = Limits()) -> pd.DataFrame:
    """Read an uploaded file (its bytes, or a path) into a frame of strings, unvalidated.

    ``filename`` picks the format by suffix (defaults to the path's name). Every cell is text
    (missing values are empty); the index counts data rows from 0 as in the file (blank rows keep
    their number), so ``index + 1`` is the row number users see. Sizes, row and column counts,
    field lengths and (for Excel and Parquet) decompressed sizes are checked while reading, before
    anything is materialised; rows whose field count differs from the header's are refused.
    """
    if isinstance(data, (str, Path)):
        filename = filename or Path(data).name
        data = read_file(data, filename, limits.max_bytes)
    filename = filename or "upload"
    if len(data) > limits.max_bytes:
        raise IngestError(f"{filename}: {len(data) / 1e6:.1f} MB is over the {limits.max_bytes / 1e6:.0f} MB limit")
    if not data.replace(b"\xef\xbb\xbf", b"").strip():
        raise IngestError(f"{filename}: the file is empty")
    fmt = detect_format(filename)
    reader = _Reader(filename, limits)
    try:
        if fmt in ("csv", "tsv"):
            text = _decode(data, filename)
            reader.csv(text, "\t" if fmt == "tsv" else _sniff_separator(text))
        elif fmt == "excel":
            reader.excel(data)
        elif fmt == "json":
            reader.records(_json_records(_decode(data, filename), filename))
        elif fmt == "jsonl":
            reader.records(_jsonl_records(_decode(data, filename), filename))
        else:
            reader.parquet(data)
    except IngestError:
        raise
    except MemoryError:  # the limits should make this impossible; say so rather than crash the page
        raise IngestError(f"{filename}: too large to read within the memory limits") from None
    except Exception as exc:  # parsers raise many types; the user needs the reason, not the type
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IngestError(f"{filename}: could not be read as {fmt.upper()}: {reason}") from exc
    return reader.frame()


class _Reader:
    """Collects a header and rows of text cells, refusing what breaks a limit as soon as it is seen."""

    def __init__(self, filename: str, limits: Limits) -> None:
        self.filename, self.limits = filename, limits
        self.header: list[str] = []
        self.rows: list[list[str]] = []
        self.numbers: list[int] = []  # data row number (from 1) of each kept row
        self.chars = 0  # characters in the kept rows
        self.max_rows, self.max_field_chars = limits.max_rows, limits.max_field_chars
        self.max_text_chars = limits.max_text_chars

    # -- checks ---------------------------------------------------------------------------------
    def set_header(self, names: list[object]) -> None:
        self.check_columns(len(names))
        self.header = _unique_headers(names)

    def check_columns(self, n: int, where: str = "") -> None:
        if n > self.limits.max_columns:
            raise IngestError(
                f"{self.filename}: {where}{n:,} columns, over the {self.limits.max_columns:,}-column limit"
            )

    def check_row_count(self, number: int) -> None:
        if number > self.limits.max_rows:
            raise IngestError(
                f"{self.filename}: over the {self.limits.max_rows:,}-row limit (reading stopped at row {number:,})"
            )

    def check_fields(self, cells: list[str], number: int) -> None:
        limit = self.limits.max_field_chars
        for position, cell in enumerate(cells):
            if len(cell) > limit:
                column = self.header[position] if position < len(self.header) else f"#{position + 1}"
                raise IngestError(
                    f"{self.filename}: row {row_numbers([number], self.filename)}, column {column!r}: {len(cell):,} characters is over the "
                    f"{limit:,}-character limit for one field"
                )

    def add(self, cells: list[str], number: int) -> None:
        """Keep one data row (blank rows are skipped but keep their number)."""
        if number > self.max_rows:
            self.check_row_count(number)
        # What the rows hold, counted as they are read: one shared string (or dictionary value)
        # used by every cell costs its length once per cell when the cells are cleaned.
        size = sum(map(len, cells))
        if not size:
            return
        if size > self.max_field_chars:  # only then can one field be over the limit
            self.check_fields(cells, number)
        self.chars += size
        if self.chars > self.max_text_chars:
            raise IngestError(
                f"{self.filename}: the cells hold more than {self.limits.max_text_chars / 1e6:,.0f} million characters "
                f"of text in all, over the limit (at row {number:,}); upload fewer rows or shorter texts"
            )
        self.rows.append(cells)
        self.numbers.append(number)

    def frame(self) -> pd.DataFrame:
        if not self.header or not self.rows:
            raise IngestError(f"{self.filename}: the file has no rows")
        frame = pd.DataFrame(self.rows, columns=self.header, index=[n - 1 for n in self.numbers], dtype=object)
        return frame

    # -- formats --------------------------------------------------------------------------------
    def csv(self, text: str, sep: str) -> None:
        # Without a quote every line break ends a row: more lines than the limit is known at C speed,
        # before a million rows are parsed for nothing.
        lines = text.count("\n")
        if lines - 1 > self.limits.max_rows and '"' not in text:
            self.check_row_count(self.limits.max_rows + 1)  # what reading would stop at
        csv.field_size_limit(max(csv.field_size_limit(), min(self.limits.max_field_chars + 1, 2**31 - 1)))
        rows = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
        try:
            header = next(rows, None)
        except csv.Error as exc:
            raise IngestError(f"{self.filename}: header: {exc}") from exc
        if not header or not any(h.strip() for h in header):
            raise IngestError(f"{self.filename}: the file has no header row")
        self.set_header(header)
        width = len(self.header)
        wrong: list[tuple[int, int]] = []
        number = 0
        while True:
            try:
                cells = next(rows, None)
            except csv.Error as exc:
                raise IngestError(f"{self.filename}: row {row_numbers([number + 1], self.filename)}: {exc}") from exc
            if cells is None:
                break
            number += 1
            if not cells:  # a blank line
                self.check_row_count(number)
                continue
            if len(cells) != width:
                if len(cells) == 1 and not cells[0].strip():
                    continue
                self.check_row_count(number)
                wrong.append((number, len(cells)))
                if len(wrong) > 10:
                    break
                continue
            self.add(cells, number)
        if wrong:
            detail = ", ".join(f"row {shown_row(n, self.filename)} has {k}" for n, k in wrong[:10])
            more = " (and more)" if len(wrong) > 10 else ""
            raise IngestError(
                f"{self.filename}: the header has {width} fields but {detail}{more} "
                f"{row_note(self.filename)}; quote values that contain {_sep_name(sep)}"
            )

    def excel(self, data: bytes) -> None:
        from openpyxl.reader.excel import ExcelReader
        from openpyxl.styles.stylesheet import apply_stylesheet
        from openpyxl.worksheet._reader import WorkSheetParser

        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            members = archive.infolist()
            expanded = sum(m.file_size for m in members)
            shared = sum(m.file_size for m in members if m.filename.lower().endswith("sharedstrings.xml"))
            cap, text_cap = self.limits.max_expanded_bytes, self.limits.max_decoded_bytes
            if expanded > cap or shared > text_cap:
                raise IngestError(
                    f"{self.filename}: the workbook expands to {expanded / 1e6:,.0f} MB ({shared / 1e6:,.0f} MB of "
                    f"shared text), over the {cap / 1e6:,.0f} MB ({text_cap / 1e6:,.0f} MB) limit; save the sheet "
                    "as CSV and upload that"
                )
            # Every part is read once at C speed before openpyxl sees it: a DTD (entity expansion) or a
            # text encoding that would hide one is refused; each sheet's claims (its <dimension>) and
            # its row tags are counted (opening the workbook makes openpyxl parse sheets without one).
            for member in members:
                sheet = re.fullmatch(r"xl/worksheets/[^/]+\.xml", member.filename, re.IGNORECASE) is not None
                # A cell's text is at most max_field_chars characters, ten bytes each at most (&#x10FFFF;).
                dense = sheet or member.filename.lower().endswith("sharedstrings.xml")
                max_run = 10 * self.limits.max_field_chars + 16 if dense else None
                with archive.open(member) as xml:
                    claimed, row_tags = _scan_part(xml, member.filename, self.filename, sheet, max_run,
                                                   self.limits.max_rows)
                if not sheet:
                    continue
                if claimed is not None:
                    claimed_cols, claimed_rows = claimed
                    self.check_columns(claimed_cols, "a sheet's used range spans ")
                    if claimed_rows - 1 > self.limits.max_rows:
                        raise IngestError(
                            f"{self.filename}: a sheet's used range spans {claimed_rows:,} rows, over the "
                            f"{self.limits.max_rows:,}-row limit; delete the empty rows below the data or save it as CSV"
                        )
                if row_tags - 1 > self.limits.max_rows:
                    raise IngestError(
                        f"{self.filename}: a sheet has {row_tags:,} rows, over the {self.limits.max_rows:,}-row limit"
                    )
        # openpyxl's reader, step by step: load_workbook would parse every sheet without a <dimension>
        # in full just to size it, even the sheets that are not read.
        reader = ExcelReader(io.BytesIO(data), read_only=True, data_only=True)
        try:
            reader.read_manifest()
            reader.read_strings()
            reader.read_workbook()
            apply_stylesheet(reader.archive, reader.wb)
            book = reader.wb
            target = next(
                (rel.target for _, rel in reader.parser.find_sheets()
                 if rel.target in reader.valid_files and "chartsheet" not in rel.Type),
                None,
            )
            if target is None:
                raise IngestError(f"{self.filename}: the workbook has no sheet")
            # The sheet's rows straight from openpyxl's parser: iter_rows would drop a value two columns
            # past its window and a row whose number repeats, and read shared string -1 as the last one.
            strings = _SharedStrings(reader.shared_strings)
            with reader.archive.open(target) as source:
                parser = WorkSheetParser(
                    source, strings, data_only=True, epoch=book.epoch,
                    date_formats=book._date_formats, timedelta_formats=book._timedelta_formats,
                )
                self._excel_rows(book, parser)
        finally:
            reader.archive.close()

    def _excel_rows(self, book: object, parser: object) -> None:
        from openpyxl.utils.cell import get_column_letter

        formats = _ZeroPadding(book)
        rows = parser.parse()  # type: ignore[attr-defined]
        previous = 0
        n = 0
        while True:
            try:
                step = next(rows, None)
            except IngestError as exc:
                where = f"sheet row {parser.row_counter}, column {get_column_letter(max(parser.col_counter, 1))}"  # type: ignore[attr-defined]
                raise IngestError(f"{self.filename}: {where}: {exc}") from None
            if step is None:
                break
            index, cells = step
            if index <= previous:
                where = "appears twice" if index == previous else f"comes after row {previous:,}"
                raise IngestError(
                    f"{self.filename}: sheet row {index:,} {where}; the sheet is damaged "
                    "(open and save it in Excel, or save it as CSV)"
                )
            previous = index
            number = index - 1  # data rows count from 1 after the header (sheet row 1)
            if number:
                self.check_row_count(number)
            if number and not n:  # no header row: the first row of the sheet is empty
                raise IngestError(f"{self.filename}: the first row (the header) is empty")
            values: dict[int, object] = {}
            last = 0
            for cell in cells:
                column, value = cell["column"], cell["value"]
                if column <= last:
                    raise IngestError(
                        f"{self.filename}: sheet row {index:,} has two values for column {get_column_letter(column)}; "
                        "the sheet is damaged (open and save it in Excel, or save it as CSV)"
                    )
                last = column
                if value is None or value == "":
                    continue
                if column > (n or self.limits.max_columns):
                    if not n:
                        self.check_columns(column, "the header spans ")
                    raise IngestError(
                        f"{self.filename}: row {row_numbers([number], self.filename)}, column {get_column_letter(column)} has a value, but that "
                        "column has no header; give every column a header or delete the stray value"
                    )
                values[column] = formats.apply(value, cell["style_id"])
            if not number:  # the header
                if not values:
                    raise IngestError(f"{self.filename}: the first row (the header) is empty")
                width = max(values)
                self.set_header([_cell_text(values.get(c)) for c in range(1, width + 1)])
                n = len(self.header)
                continue
            if not values:  # a blank row: it keeps its number only
                continue
            self.add([_cell_text(values.get(c)) for c in range(1, n + 1)], number)
        if not n:
            raise IngestError(f"{self.filename}: the first row (the header) is empty")

    def parquet(self, data: bytes) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        source = pq.ParquetFile(io.BytesIO(data))
        meta = source.metadata
        self.check_columns(meta.num_columns)
        self.check_row_count(meta.num_rows)
        schema = source.schema_arrow
        for field_ in schema:
            if not _is_scalar_type(field_.type):
                raise IngestError(
                    f"{self.filename}: column {field_.name!r} holds {field_.type} values; coldrec reads text, "
                    "numbers, booleans and dates only (drop or convert that column)"
                )
        self.set_header(list(schema.names))
        decoded = 0
        number = 0
        cap = self.limits.max_decoded_bytes
        # Small batches: one batch of the longest allowed fields stays around 100 MB.
        for batch in source.iter_batches(batch_size=1_024):
            # string_view columns (Arrow's newer text layout) are read as plain text.
            batch = pa.RecordBatch.from_arrays([_plain_text(c) for c in batch.columns], names=batch.schema.names)
            lengths = [_text_lengths(column) for column in batch.columns]
            decoded += sum(int(pc.sum(n).as_py() or 0) for n in lengths if n is not None) + batch.nbytes
            if decoded > cap:
                raise IngestError(
                    f"{self.filename}: the data expands to more than {cap / 1e6:,.0f} MB, over the limit "
                    f"(at row {number + 1:,}); upload fewer rows or shorter texts"
                )
            for position, n in enumerate(lengths):
                # Bytes bound characters from above (UTF-8 uses 1-4 bytes a character): only a field
                # whose bytes pass the limit is counted in characters, the limit being one of characters.
                longest = None if n is None else pc.max(n).as_py()
                if longest is not None and longest > self.limits.max_field_chars:
                    chars = _text_chars(batch.columns[position])
                    most = pc.max(chars).as_py()
                    if most is not None and most > self.limits.max_field_chars:
                        row = number + 1 + pc.index(chars, most).as_py()
                        raise IngestError(
                            f"{self.filename}: row {row_numbers([row], self.filename)}, column {self.header[position]!r}: {most:,} characters "
                            f"is over the {self.limits.max_field_chars:,}-character limit for one field"
                        )
            columns = []
            for position, column in enumerate(batch.columns):
                try:
                    columns.append([_cell_text(v) for v in column.to_pylist()])
                except UnicodeDecodeError as exc:
                    raise IngestError(
                        f"{self.filename}: column {self.header[position]!r} (rows {number + 1:,}-{number + len(batch):,}) "
                        "holds text that is not valid UTF-8"
                    ) from exc
            for cells in zip(*columns):
                number += 1
                self.add(list(cells), number)

    def records(self, records: "Iterator[dict]") -> None:
        keys: dict[str, None] = {}
        raw: list[tuple[int, dict]] = []
        for number, record in enumerate(records, start=1):
            self.check_row_count(number)
            for key in record:
                if key not in keys:
                    keys[str(key)] = None
                    self.check_columns(len(keys), "the records use ")
            raw.append((number, record))
        self.set_header(list(keys))
        names = list(keys)
        for number, record in raw:
            self.add([_cell_text(record.get(k), fix_surrogates=True) for k in names], number)


_DIMENSION = re.compile(rb"<(?:\w+:)?dimension\s+ref=\"(?:[A-Z]+\d+:)?([A-Z]+)(\d+)\"")
#: A document type declaration (the only place entities are defined): never in a real workbook.
_DTD = re.compile(rb"<!(?:DOCTYPE|ENTITY)")
_XML_ENCODING = re.compile(rb"\s*<\?xml[^>]{0,200}?encoding\s*=\s*[\"']([^\"']{1,40})")
_ASCII_ENCODINGS = {"utf-8", "utf8", "us-ascii", "ascii", "iso-8859-1", "latin-1", "latin1", "windows-1252", "cp1252"}
#: Longer than any match of the DTD pattern.
_TAG_SPAN = 16


def _scan_part(
    xml: "io.BufferedIOBase", name: str, filename: str, sheet: bool, max_run: int | None = None,
    max_rows: int | None = None,
) -> tuple[tuple[int, int] | None, int]:
    """Read one part of a workbook in linear time: refuse a DTD or an encoding that could hide one,
    and (when ``max_run`` is given) a run of ``max_run`` bytes without a ``<``, i.e. a text or a tag
    longer than any cell may hold; for a sheet, the (columns, rows) its ``<dimension>`` claims, if
    any, and how many row tags it has."""
    from openpyxl.utils.cell import column_index_from_string

    claimed = None
    rows = 0
    tail = b""
    first = True
    since = 0  # bytes since the last '<'
    while chunk := xml.read(1 << 20):
        if max_run is not None:
            since = _check_runs(chunk, since, max_run, name, filename)
        block = tail + chunk
        if first:
            first = False
            head = block[:4]
            if head[:2] in (b"\xff\xfe", b"\xfe\xff") or head[:2] in (b"<\x00", b"\x00<") or head == b"\x00\x00\xfe\xff":
                raise IngestError(f"{filename}: the part {name} is not UTF-8 XML; save the workbook again in Excel")
            declared = _XML_ENCODING.match(block[:300])
            if declared and declared.group(1).decode("ascii", "replace").lower() not in _ASCII_ENCODINGS:
                raise IngestError(
                    f"{filename}: the part {name} is written in {declared.group(1).decode('ascii', 'replace')!r}, "
                    "not UTF-8; save the workbook again in Excel"
                )
            if sheet:
                match = _DIMENSION.search(block[:65_536])
                if match:
                    claimed = (column_index_from_string(match.group(1).decode()), int(match.group(2)))
        if _DTD.search(block):
            raise IngestError(
                f"{filename}: the part {name} declares a document type (XML entities); a workbook saved by a "
                "spreadsheet never does, so it is not read"
            )
        if sheet:
            # Every tag whose name starts with "row", with or without a prefix (<row>, <row\t>, <x:row/>),
            # counted at C speed; a match that began in the tail's last 3 bytes is counted now.
            start = max(len(tail) - 3, 0)
            rows += block.count(b"<row", start) + block.count(b":row", start)
            if max_rows is not None and rows - 1 > max_rows:  # no need to unzip the rest
                raise IngestError(
                    f"{filename}: a sheet has more than {max_rows + 1:,} rows, over the {max_rows:,}-row limit"
                )
        tail = block[-_TAG_SPAN:]
    return claimed, rows


def _check_runs(chunk: bytes, since: int, max_run: int, name: str, filename: str) -> int:
    """Refuse ``max_run`` bytes without a ``<`` (measured exactly across chunks, and by windows of
    ``max_run`` bytes within one, so a few find() calls a chunk); returns the run at the chunk's end."""
    first = chunk.find(b"<")
    run = since + (len(chunk) if first < 0 else first)
    if run < max_run and first >= 0:
        for start in range(first, len(chunk) - max_run + 1, max_run):
            if chunk.find(b"<", start, start + max_run) < 0:
                run = max_run
                break
        else:
            run = len(chunk) - chunk.rfind(b"<") - 1
    if run >= max_run:
        raise IngestError(
            f"{filename}: the part {name} holds {max_run / 1e6:,.1f} MB or more without a tag, more text than a cell "
            "may hold; the file is damaged or not a spreadsheet's"
        )
    return run


class _SharedStrings:
    """A workbook's shared strings, refusing an index outside the table (openpyxl reads -1 as the last)."""

    def __init__(self, strings: list[str]) -> None:
        self.strings = strings

    def __getitem__(self, index: int) -> str:
        if not 0 <= index < len(self.strings):
            raise IngestError(
                f"the cell refers to shared string {index:,}, but the workbook has {len(self.strings):,}"
            )
        return self.strings[index]

    def __len__(self) -> int:
        return len(self.strings)


class _ZeroPadding:
    """Numbers shown with leading zeros (a ``00000`` number format, as for ids and postcodes) as text
    with those zeros, as the spreadsheet shows them."""

    def __init__(self, book: object) -> None:
        from openpyxl.styles.numbers import BUILTIN_FORMATS, BUILTIN_FORMATS_MAX_SIZE

        self.widths: dict[int, int] = {}
        styles = getattr(book, "_cell_styles", [])
        custom = getattr(book, "_number_formats", [])
        for style_id, style in enumerate(styles):
            number_format_id = getattr(style, "numFmtId", 0)
            if number_format_id < BUILTIN_FORMATS_MAX_SIZE:
                text = BUILTIN_FORMATS.get(number_format_id, "General")
            elif number_format_id - BUILTIN_FORMATS_MAX_SIZE < len(custom):
                text = custom[number_format_id - BUILTIN_FORMATS_MAX_SIZE]
            else:
                continue
            if re.fullmatch(r"0{2,}", str(text)):
                self.widths[style_id] = len(text)

    def apply(self, value: object, style_id: object) -> object:
        width = self.widths.get(style_id) if isinstance(style_id, int) else None  # type: ignore[arg-type]
        if width is None or isinstance(value, bool) or not isinstance(value, (int, float)):
            return value
        if isinstance(value, float) and not (math.isfinite(value) and value.is_integer()):
            return value
        number = int(value)
        return ("-" if number < 0 else "") + str(abs(number)).zfill(width)


def _sep_name(sep: str) -> str:
    return {",": "commas", ";": "semicolons", "\t": "tabs", "|": "pipes"}.get(sep, repr(sep))


def _unique_headers(names: list[object]) -> list[str]:
    """Header texts, blanks named ``Unnamed: i`` and repeats numbered ``name.1`` (as pandas does)."""
    out: list[str] = []
    seen: set[str] = set()
    for position, name in enumerate(names):
        text = _cell_text(name, fix_surrogates=True).strip() or f"Unnamed: {position}"
        candidate, count = text, 0
        while candidate in seen:
            count += 1
            candidate = f"{text}.{count}"
        seen.add(candidate)
        out.append(candidate)
    return out


def _text_lengths(column: object) -> object:
    """Byte length of each text value of an Arrow column (``None`` for other types), without
    decoding a dictionary: a dictionary's values are measured once and looked up per row."""
    import pyarrow as pa
    import pyarrow.compute as pc

    kind = column.type  # type: ignore[attr-defined]
    if pa.types.is_dictionary(kind):
        if not (pa.types.is_string(kind.value_type) or pa.types.is_large_string(kind.value_type)):
            return None
        return pc.take(pc.binary_length(column.dictionary), column.indices)  # type: ignore[attr-defined]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.binary_length(column)
    return None


def _plain_text(column: object) -> object:
    """A ``string_view`` column as ``large_string`` (the compute kernels and this reader know that)."""
    import pyarrow as pa

    kind = column.type  # type: ignore[attr-defined]
    if pa.types.is_string_view(kind):
        return column.cast(pa.large_string())  # type: ignore[attr-defined]
    if pa.types.is_dictionary(kind) and pa.types.is_string_view(kind.value_type):
        return column.cast(pa.large_string())  # type: ignore[attr-defined]
    return column


def _text_chars(column: object) -> object:
    """Characters in each text value of an Arrow column (dictionaries measured once)."""
    import pyarrow.compute as pc
    import pyarrow as pa

    if pa.types.is_dictionary(column.type):  # type: ignore[attr-defined]
        return pc.take(pc.utf8_length(column.dictionary), column.indices)  # type: ignore[attr-defined]
    return pc.utf8_length(column)


def _is_scalar_type(kind: object) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(kind):
        return _is_scalar_type(kind.value_type)
    return (
        pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_string_view(kind)
        or pa.types.is_integer(kind)
        or pa.types.is_floating(kind) or pa.types.is_boolean(kind) or pa.types.is_decimal(kind)
        or pa.types.is_temporal(kind) or pa.types.is_null(kind)
    )


def _cell_text(value: object, fix_surrogates: bool = False) -> str:
    """One cell as text: empty for missing values, ``12`` for a whole float, JSON for nested values."""
    if value is None:
        return ""
    if isinstance(value, str):
        text = value
    elif isinstance(value, bool):
        return str(value)
    elif isinstance(value, float):
        if math.isnan(value):
            return ""
        return str(int(value)) if value.is_integer() and abs(value) < 1e16 else repr(value)
    elif isinstance(value, (int, decimal.Decimal, dt.date, dt.time, dt.timedelta)):
        return str(value)
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    if fix_surrogates and _SURROGATE.search(text):
        text = text.encode("utf-8", "replace").decode("utf-8")
    return text


def _json_records(text: str, filename: str) -> list[dict]:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{filename}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    except RecursionError as exc:
        raise IngestError(f"{filename}: the JSON is nested too deeply") from exc
    if isinstance(payload, dict):
        # {"items": [...]} or {"products": [...]}: take the one list of records.
        lists = [v for v in payload.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise IngestError(f"{filename}: expected a list of products (or an object holding one list)")
        payload = lists[0]
    if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
        raise IngestError(f"{filename}: expected a list of objects, one per product")
    return payload


def split_lines(text: str) -> "Iterator[str]":
    """Lines split at LF, CRLF or CR only (``str.splitlines`` also splits at U+2028, U+0085, VT, FF and
    FS-RS, which are valid inside a JSON string or a product's text)."""
    start = 0
    for match in _LINE_BREAK.finditer(text):
        yield text[start : match.start()]
        start = match.end()
    if start < len(text):
        yield text[start:]


def _jsonl_records(text: str, filename: str) -> "Iterator[dict]":
    for line_number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise IngestError(f"{filename}: invalid JSON on line {line_number}, column {exc.colno}: {exc.msg}") from exc
        except RecursionError as exc:
            raise IngestError(f"{filename}: line {line_number}: the JSON is nested too deeply") from exc
        if not isinstance(record, dict):
            raise IngestError(f"{filename}: line {line_number}: expected one JSON object per line")
        yield record


def parse_pasted(text: str, limits: Limits = Limits()) -> pd.DataFrame:
    """Pasted text, one product per line (``title`` or ``title<TAB>description``), within ``limits``
    (characters, non-blank lines, characters a line). Only LF, CRLF and CR end a line."""
    if len(text) > limits.max_bytes:
        raise IngestError(
            f"pasted text: {len(text):,} characters is over the {limits.max_bytes:,}-character limit; upload a file"
        )
    if _SURROGATE.search(text):  # e.g. half an emoji: it cannot be stored or shown
        text = text.encode("utf-8", "replace").decode("utf-8")
    rows = []
    for number, line in enumerate(split_lines(text), start=1):
        if not line.strip():
            continue
        if len(rows) >= limits.max_rows:
            raise IngestError(f"pasted text: more than {limits.max_rows:,} products (at line {number:,}); upload a file")
        if len(line) > limits.max_field_chars:
            raise IngestError(
                f"pasted text: line {number:,} has {len(line):,} characters, over the "
                f"{limits.max_field_chars:,}-character limit for one product"
            )
        title, _, description = line.partition("\t")
        rows.append({"title": title, "description": description})
    if not rows:
        raise IngestError("pasted text: no products (write one product per line)")
    return pd.DataFrame(rows)


def guess_mapping(columns: list[str]) -> dict[str, str]:
    """Canonical column -> source column, by name and synonyms (first synonym wins)."""
    normalised = {_normalise_header(c): c for c in columns}
    mapping: dict[str, str] = {}
    used: set[str] = set()
    for canonical, names in COLUMN_SYNONYMS.items():
        for name in names:
            source = normalised.get(name)
            if source is not None and source not in used:
                mapping[canonical] = source
                used.add(source)
                break
    return mapping


def prepare_items(
    frame: pd.DataFrame,
    filename: str = "upload",
    mapping: Mapping[str, str | None] | None = None,
    id_prefix: str = "NEW",
) -> pd.DataFrame:
    """Validate and normalise a raw frame into items.

    Returns columns item_id, title, description, brand, price and, when mapped, category.
    ``mapping`` overrides the guessed canonical -> source column mapping (``None`` unmaps).
    Without an id column, each row gets ``{id_prefix}-<hash of its text>`` (so the same
    product pasted twice is one item, and batches never collide) and repeated rows collapse.
    Rows with neither title nor description are rejected, as are duplicate ids (all named).
    Row numbers in messages are the file's own (:func:`shown_row`: a spreadsheet's row, the header
    being row 1), each message saying so.
    """
    mapping = {**guess_mapping(list(frame.columns)), **(mapping or {})}
    mapping = {k: v for k, v in mapping.items() if v}
    for canonical, source in mapping.items():
        if source not in frame.columns:
            raise IngestError(f"{filename}: column {source!r} (for {canonical}) is not in the file")
    if not any(c in mapping for c in TEXT_COLUMNS):
        cols = ", ".join(repr(c) for c in list(frame.columns)[:12])
        raise IngestError(
            f"{filename}: no text column found; name a column 'title' or 'description' "
            f"(or map one explicitly). Columns in the file: {cols}"
        )
    n = len(frame)
    numbers = [int(i) + 1 for i in frame.index] if pd.api.types.is_integer_dtype(frame.index) else list(range(1, n + 1))

    def rows_at(positions: list[int]) -> str:
        return row_numbers([numbers[p] for p in positions], filename)

    # A spreadsheet coldrec exported escaped cells starting with = + - @ ' (formula injection): undo
    # that, so re-uploading the export gives back the same ids and titles.
    unescape = is_spreadsheet(filename)

    def column(source: str) -> list[object]:
        values = frame[source].tolist()
        return [unescape_cell(v) for v in values] if unescape else values

    out = pd.DataFrame(index=range(n))
    for canonical in ("title", "description", "brand", "category"):
        source = mapping.get(canonical)
        values = column(source) if source else [""] * n
        limit = MAX_TITLE_CHARS if canonical == "title" else MAX_TEXT_CHARS
        out[canonical] = [clean_text(v, limit) for v in values]
    # A file with only descriptions still needs a title to show: use the description's start.
    no_title = out["title"] == ""
    out.loc[no_title, "title"] = out.loc[no_title, "description"].str.slice(0, 120)
    empty = out.index[out["title"] == ""].tolist()
    if empty:
        text_cols = " / ".join(mapping[c] for c in TEXT_COLUMNS if c in mapping)
        raise IngestError(
            f"{filename}: {len(empty)} row(s) have no text in column {text_cols}: "
            f"row(s) {rows_at(empty)}"
        )
    if "item_id" in mapping:
        ids = [clean_text(v, 10 * MAX_ID_CHARS) for v in column(mapping["item_id"])]
        long_ids = [i for i, v in enumerate(ids) if len(v) > MAX_ID_CHARS]
        if long_ids:
            raise IngestError(
                f"{filename}: column {mapping['item_id']!r} holds ids longer than {MAX_ID_CHARS} characters in "
                f"row(s) {rows_at(long_ids)}; shorten them (a longer id would be cut and could merge two items)"
            )
        blank = [i for i, v in enumerate(ids) if not v]
        if blank and len(blank) < n:
            raise IngestError(
                f"{filename}: column {mapping['item_id']!r} is empty in row(s) {rows_at(blank)}; "
                "give every row an id or leave the column out"
            )
        if blank:
            ids = _content_ids(out, id_prefix)
    else:
        ids = _content_ids(out, id_prefix)
    out.insert(0, "item_id", ids)
    if "item_id" not in mapping or all(not clean_text(v) for v in frame[mapping["item_id"]].tolist()):
        out = out.drop_duplicates("item_id").reset_index(drop=True)
    dup = out["item_id"][out["item_id"].duplicated(keep=False)]
    if not dup.empty:
        repeated = list(dict.fromkeys(dup.tolist()))
        detail = "; ".join(
            f"{v!r} in rows {format_rows([shown_row(numbers[p], filename) for p in out.index[out['item_id'] == v]])}"
            for v in repeated[:5]
        )
        more = f" (and {len(repeated) - 5} more)" if len(repeated) > 5 else ""
        raise IngestError(f"{filename}: duplicate ids in column {mapping.get('item_id', 'item_id')!r}: {detail}{more} "
                          + row_note(filename))
    if "price" in mapping:
        out["price"] = [parse_price(v) for v in frame[mapping["price"]].tolist()]
    else:
        out["price"] = float("nan")
    if "category" not in mapping:
        out = out.drop(columns="category")
    return out


def unescape_cell(value: object) -> object:
    """Undo :func:`coldrec.export.spreadsheet_safe` on one cell: the escape mark goes only where the
    export put one (before ``= + - @ '``, tab or CR), so other text starting with ``'`` stays as it is."""
    if isinstance(value, str) and value.startswith(_ESCAPED):
        return value[1:]
    return value


def is_spreadsheet(filename: str) -> bool:
    """Whether a file of this name is read as CSV, TSV or Excel (where exports escape cells)."""
    return SUFFIXES.get(Path(filename).suffix.lower()) in ("csv", "tsv", "excel")


def shown_row(data_row: int, filename: str) -> int:
    """The number a message gives a data row (1 = the first row after the header) of ``filename``:
    in a CSV, TSV or Excel file the spreadsheet's own row number (the header is row 1, so the first
    data row is row 2: what a user looks up in Excel or LibreOffice); else (JSON, Parquet, pasted
    text) the record's number from 1."""
    return data_row + 1 if is_spreadsheet(filename) else data_row


def row_note(filename: str) -> str:
    """What the row numbers in a message about ``filename`` count (see :func:`shown_row`)."""
    return "(row 1 is the header)" if is_spreadsheet(filename) else "(counting records from 1)"


def row_numbers(data_rows: Sequence[int], filename: str) -> str:
    """Data rows of ``filename`` for a message: their :func:`shown_row` numbers and :func:`row_note`."""
    return f"{format_rows([shown_row(int(r), filename) for r in data_rows])} {row_note(filename)}"


def format_rows(numbers: list[int], shown: int = 10) -> str:
    """Row numbers for a message: the first ``shown``, then how many more."""
    rows = ", ".join(str(i) for i in numbers[:shown])
    return rows + (f" … ({len(numbers) - shown} more)" if len(numbers) > shown else "")


def _content_ids(items: pd.DataFrame, prefix: str) -> list[str]:
    return [
        prefix + "-" + hashlib.sha256((t + "\n" + d).encode()).hexdigest()[:12]
        for t, d in zip(items["title"], items["description"])
    ]


def load_items(
    data: bytes | str | Path,
    filename: str | None = None,
    mapping: Mapping[str, str | None] | None = None,
    limits: Limits = Limits(),
    id_prefix: str = "NEW",
) -> pd.DataFrame:
    """Read and validate a product file in one step (:func:`read_table` + :func:`prepare_items`)."""
    name = filename or (Path(data).name if isinstance(data, (str, Path)) else "upload")
    return prepare_items(read_table(data, name, limits), name, mapping, id_prefix)
