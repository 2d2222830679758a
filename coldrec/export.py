"""Exports that are safe to open in a spreadsheet.

A cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return is run as a formula
by Excel and LibreOffice (CSV injection); such cells get a leading apostrophe.
"""

from __future__ import annotations

import io

import pandas as pd

_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def spreadsheet_safe(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of ``frame`` whose text cells cannot be evaluated as formulas."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(
                lambda v: "'" + v if isinstance(v, str) and v.startswith(_FORMULA_START) else v
            )
    out.columns = [("'" + c if isinstance(c, str) and c.startswith(_FORMULA_START) else c) for c in out.columns]
    return out


def from_spreadsheet_safe(value: object) -> object:
    """Undo :func:`spreadsheet_safe` on one cell read back from an export (for lossless round trips)."""
    if isinstance(value, str) and value.startswith("'") and value[1:2] and value[1:2] in "".join(_FORMULA_START):
        return value[1:]
    return value


def to_csv_bytes(frame: pd.DataFrame) -> bytes:
    """UTF-8 CSV (with BOM, so Excel reads accents and CJK correctly), formula-safe."""
    return spreadsheet_safe(frame).to_csv(index=False).encode("utf-8-sig")


def to_excel_bytes(frame: pd.DataFrame, sheet: str = "predictions") -> bytes:
    """An .xlsx workbook of ``frame``, formula-safe."""
    buffer = io.BytesIO()
    with pd.ExcelWriter(buffer, engine="openpyxl") as writer:
        spreadsheet_safe(frame).to_excel(writer, index=False, sheet_name=sheet)
    return buffer.getvalue()


def write_table(frame: pd.DataFrame, path: str) -> None:
    """Write ``frame`` as CSV, JSON (records) or Excel, chosen by the file suffix."""
    lower = path.lower()
    if lower.endswith(".json"):
        frame.to_json(path, orient="records", force_ascii=False, indent=1)
    elif lower.endswith((".xlsx", ".xlsm")):
        with open(path, "wb") as fh:
            fh.write(to_excel_bytes(frame))
    else:
        with open(path, "wb") as fh:
            fh.write(to_csv_bytes(frame))
