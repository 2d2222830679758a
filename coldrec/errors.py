"""The errors a user should read. Everything else is a bug and keeps its traceback in the log.

Pages and the CLI catch :class:`ColdrecError` alone and show its message; the subclasses say
which part refused.
"""

from __future__ import annotations


class ColdrecError(Exception):
    """Base of every error whose message is written for the user (it names file, row, column)."""


class ConfigError(ColdrecError):
    """A ``COLDREC_*`` setting or command-line option is invalid."""


class IngestError(ColdrecError):
    """A file or pasted text was rejected; the message names the file, row and column."""


class DataImportError(ColdrecError):
    """A categories, taxonomy, labels or purchases file was rejected (nothing was written)."""


class StoreError(ColdrecError):
    """A store operation was refused; the message says why."""


class StoreLockedError(StoreError):
    """Another process holds the database file."""


class DiskFullError(StoreError):
    """A write failed because the disk (or the user's quota) is full; what was saved before is intact."""


def is_disk_full(exc: BaseException) -> bool:
    """Whether ``exc`` (an OSError, a DuckDB error, ...) says the device has no space left."""
    import errno

    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(exc).lower()
    return "no space left on device" in text or "disk quota exceeded" in text or "disk is full" in text


def disk_full_message(path: object) -> str:
    return (
        f"disk full: {path} could not be written (no space left on its device); nothing saved before was lost. "
        "Free some space and try again"
    )


class ModelError(ColdrecError):
    """The configured model could not be loaded or used (the message names it)."""


class QueryError(ColdrecError):
    """An analyst's SQL query was refused or did not finish."""


class ExportError(ColdrecError):
    """An output file could not be written (the message names it)."""


class NotReadyError(ColdrecError):
    """The workspace lacks something this step needs (e.g. no categories yet); the message says what to do."""


class PermissionDenied(ColdrecError):
    """The signed-in person's role does not allow this action (:mod:`coldrec.access`); nothing was written."""


class LabelConflict(ColdrecError):
    """Someone else labelled the item after this person's card was drawn; nothing was written.

    ``theirs`` holds, per item, ``(who, category)`` of the label now in force."""

    def __init__(self, message: str, theirs: dict[str, tuple[str, str | None]]) -> None:
        super().__init__(message)
        self.theirs = theirs


__all__ = [
    "ColdrecError",
    "ConfigError",
    "DataImportError",
    "DiskFullError",
    "ExportError",
    "IngestError",
    "LabelConflict",
    "ModelError",
    "NotReadyError",
    "PermissionDenied",
    "QueryError",
    "StoreError",
    "StoreLockedError",
    "disk_full_message",
    "is_disk_full",
]
