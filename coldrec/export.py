"""Exports that are safe to open in a spreadsheet.

A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is run as a formula
by Excel and LibreOffice (CSV injection); such cells get a leading apostrophe, and so do cells
that already start with one, so that :func:`from_spreadsheet_safe` restores every cell exactly.
"""

from __future__ import annotations

import io
import re

import pandas as pd

from .errors import ExportError

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: The escape mark itself: a cell that starts with it is escaped too, so reading back is unambiguous
#: (``=x`` exports as ``'=x``, ``'=x`` as ``''=x``).
_MARK = "'"
#: Characters an .xlsx file cannot hold (openpyxl refuses them): control characters but tab, LF, CR.
_XLSX_ILLEGAL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")


def _escape(value: object) -> object:
    return _MARK + value if isinstance(value, str) and value.startswith((*_FORMULA_START, _MARK)) else value


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot be evaluated as formulas (see :func:`from_spreadsheet_safe`)."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(_escape)
    out.columns = [_escape(c) for c in out.columns]
    return out


def from_spreadsheet_safe(value: object) -> object:
    """Undo :func:`spreadsheet_safe` on one cell read back from a CSV or Excel export (for lossless
    round trips): the apostrophe goes where the export put one, before a formula start or another
    apostrophe; other text is kept as it is. JSON exports are not escaped: do not apply it to them."""
    from .ingest import unescape_cell

    return unescape_cell(value)


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV (with BOM, so Excel reads accents and CJK correctly), formula-safe."""
    return spreadsheet_safe(frame).to_csv(index=False).encode("utf-8-sig")


def to_excel_bytes(frame: pd.DataFrame, sheet: str = "predictions") -> bytes:
    """An .xlsx workbook of ``frame``, formula-safe."""
    buffer = io.BytesIO()
    safe = spreadsheet_safe(frame)
    for column in safe.columns:  # control characters (say in an old category name) would abort the file
        if safe[column].dtype == object or pd.api.types.is_string_dtype(safe[column]):
            safe[column] = safe[column].map(lambda v: _XLSX_ILLEGAL.sub("", v) if isinstance(v, str) else v)
    safe.columns = [_XLSX_ILLEGAL.sub("", c) if isinstance(c, str) else c for c in safe.columns]
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        safe.to_excel(writer, index=False, sheet_name=sheet)
    return buffer.getvalue()


def write_table(frame: pd.DataFrame, path: str) -> None:
    """Write ``frame`` as CSV, JSON (records) or Excel, chosen by the file suffix.

    Raises :class:`~coldrec.errors.ExportError` naming the file when it cannot be written.
    """
    lower = path.lower()
    try:
        if lower.endswith(".json"):
            frame.to_json(path, orient="records", force_ascii=False, indent=1)
        elif lower.endswith((".xlsx", ".xlsm")):
            with open(path, "wb") as fh:
                fh.write(to_excel_bytes(frame))
        else:
            with open(path, "wb") as fh:
                fh.write(to_csv_bytes(frame))
    except OSError as exc:
        raise ExportError(f"cannot write {path}: {exc.strerror or exc}") from exc
