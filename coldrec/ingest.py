"""Reading product files and pasted text into a clean frame of items.

Accepts CSV, TSV, Excel, JSON, JSON Lines and Parquet. Columns are mapped by name
(with synonyms) or explicitly. Every rejection is an :class:`IngestError` whose message
names the file and, where it applies, the row and column.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .errors import IngestError

#: Canonical column -> accepted header names (compared lower-cased, with spaces/dashes as "_").
COLUMN_SYNONYMS: dict[str, tuple[str, ...]] = {
    "item_id": ("item_id", "id", "sku", "product_id", "uniq_id", "item", "asin", "article", "article_number"),
    "title": ("title", "name", "product_name", "product_title", "product", "item_name"),
    "description": ("description", "desc", "product_description", "details", "body", "text", "summary"),
    "category": ("category", "label", "class", "product_category", "categories", "department"),
    "brand": ("brand", "manufacturer", "maker", "vendor"),
    "price": ("price", "retail_price", "cost", "amount", "unit_price"),
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
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u2028\u2029]")
#: Invisible characters that sit inside words: removed, not turned into spaces.
_INVISIBLE = re.compile(r"[\u200b\u2060\ufeff]")
_SPACES = re.compile(r"\s+")
MAX_TITLE_CHARS = 1_000
MAX_TEXT_CHARS = 20_000




@dataclass(frozen=True)
class Limits:
    """Upload limits: absurd sizes are refused before parsing."""

    max_bytes: int = 50 * 1024 * 1024
    max_rows: int = 200_000


#: The operator's own files (catalogs, evaluation data, purchase histories) are not uploads.
OPERATOR_FILES = Limits(max_bytes=10**11, max_rows=10**9)


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
    return re.sub(r"[\s\-./]+", "_", str(name).strip().lower())


def detect_format(filename: str) -> str:
    """Format name from a file name's suffix; raises :class:`IngestError` for unknown ones."""
    suffix = Path(filename).suffix.lower()
    if suffix == ".xls":
        raise IngestError(f"{filename}: old Excel .xls files are not supported; save it as .xlsx and upload again")
    if suffix not in SUFFIXES:
        known = ", ".join(sorted(SUFFIXES))
        raise IngestError(f"{filename}: unsupported file type {suffix or '(none)'!r}; use one of {known}")
    return SUFFIXES[suffix]


def _decode(data: bytes, filename: str) -> str:
    if data[:2] in (b"\xff\xfe", b"\xfe\xff"):  # UTF-16 with a byte-order mark (Excel "Unicode Text")
        try:
            return data.decode("utf-16")
        except UnicodeDecodeError as exc:
            raise IngestError(f"{filename}: damaged UTF-16 text at byte {exc.start}; save the file as UTF-8") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise IngestError(
            f"{filename}: not valid UTF-8 text (byte {exc.start}, line {line}); "
            "save the file as UTF-8 (Excel: 'CSV UTF-8') and upload it again"
        ) from exc


def _sniff_separator(text: str) -> str:
    """Comma unless the header line clearly uses semicolons, tabs or pipes."""
    header = text.split("\n", 1)[0]
    counts = {sep: header.count(sep) for sep in (",", ";", "\t", "|")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] > 0 else ","


def parse_price(value: object) -> float:
    """A price from text such as ``12.50``, ``€ 7,99``, ``1,299.00`` or ``1.299,00 €``; NaN if unreadable."""
    text = re.sub(r"[^\d.,\-]", "", str(value or ""))
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


def read_table(data: bytes | str | Path, filename: str | None = None, limits: Limits = Limits()) -> pd.DataFrame:
    """Read an uploaded file (its bytes, or a path) into a frame of strings, unvalidated.

    ``filename`` picks the format by suffix (defaults to the path's name).
    """
    if isinstance(data, (str, Path)):
        path = Path(data)
        filename = filename or path.name
        if not path.is_file():
            raise IngestError(f"{filename}: no such file")
        if path.stat().st_size > limits.max_bytes:
            raise IngestError(
                f"{filename}: {path.stat().st_size / 1e6:.1f} MB is over the {limits.max_bytes / 1e6:.0f} MB limit"
            )
        data = path.read_bytes()
    filename = filename or "upload"
    if len(data) > limits.max_bytes:
        raise IngestError(f"{filename}: {len(data) / 1e6:.1f} MB is over the {limits.max_bytes / 1e6:.0f} MB limit")
    if not data.replace(b"\xef\xbb\xbf", b"").strip():
        raise IngestError(f"{filename}: the file is empty")
    fmt = detect_format(filename)
    try:
        if fmt in ("csv", "tsv"):
            text = _decode(data, filename)
            sep = "\t" if fmt == "tsv" else _sniff_separator(text)
            frame = pd.read_csv(io.StringIO(text), sep=sep, dtype=str, keep_default_na=False, skip_blank_lines=False)
            # Blank lines are kept while parsing so row numbers in messages match the file.
            frame = frame[~(frame == "").all(axis=1)] if len(frame.columns) else frame
        elif fmt == "excel":
            frame = pd.read_excel(io.BytesIO(data), dtype=str, keep_default_na=False)
        elif fmt == "json":
            frame = _read_json(_decode(data, filename), filename)
        elif fmt == "jsonl":
            frame = pd.read_json(io.StringIO(_decode(data, filename)), lines=True, dtype=False)
        else:
            frame = pd.read_parquet(io.BytesIO(data))
    except IngestError:
        raise
    except Exception as exc:  # parsers raise many types; the user needs the reason, not the type
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IngestError(f"{filename}: could not be read as {fmt.upper()}: {reason}") from exc
    if frame.empty or len(frame.columns) == 0:
        raise IngestError(f"{filename}: the file has no rows")
    if len(frame) > limits.max_rows:
        raise IngestError(f"{filename}: {len(frame):,} rows is over the {limits.max_rows:,}-row limit")
    frame.columns = [str(c) for c in frame.columns]
    return frame


def _read_json(text: str, filename: str) -> pd.DataFrame:
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise IngestError(f"{filename}: invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from exc
    if isinstance(payload, dict):
        # {"items": [...]} or {"products": [...]}: take the one list of records.
        lists = [v for v in payload.values() if isinstance(v, list)]
        if len(lists) != 1:
            raise IngestError(f"{filename}: expected a list of products (or an object holding one list)")
        payload = lists[0]
    if not isinstance(payload, list) or not all(isinstance(r, dict) for r in payload):
        raise IngestError(f"{filename}: expected a list of objects, one per product")
    return pd.DataFrame.from_records(payload)


def parse_pasted(text: str) -> pd.DataFrame:
    """Pasted text, one product per line (``title`` or ``title<TAB>description``)."""
    rows = []
    for line in text.splitlines():
        if not line.strip():
            continue
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
    Row numbers in messages count data rows from 1, as in the file.
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
        return format_rows([numbers[p] for p in positions])

    out = pd.DataFrame(index=range(n))
    for canonical in ("title", "description", "brand", "category"):
        source = mapping.get(canonical)
        values = frame[source].tolist() if source else [""] * n
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
            f"row(s) {rows_at(empty)} (rows counted from 1 after the header)"
        )
    if "item_id" in mapping:
        ids = [clean_text(v, 200) for v in frame[mapping["item_id"]].tolist()]
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
            f"{v!r} in rows {rows_at(out.index[out['item_id'] == v].tolist())}" for v in repeated[:5]
        )
        more = f" (and {len(repeated) - 5} more)" if len(repeated) > 5 else ""
        raise IngestError(f"{filename}: duplicate ids in column {mapping.get('item_id', 'item_id')!r}: {detail}{more}")
    if "price" in mapping:
        out["price"] = [parse_price(v) for v in frame[mapping["price"]].tolist()]
    else:
        out["price"] = float("nan")
    if "category" not in mapping:
        out = out.drop(columns="category")
    return out


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
