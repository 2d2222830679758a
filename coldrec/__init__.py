"""coldrec: categorise cold-start products, find similar catalog items, learn from labels.

The library works without Streamlit; the dashboard (``app.py``) and the CLI
(``python -m coldrec``) are thin layers over it.
"""

from .classify import CategoryModel, Prediction, category_prompt, fit_classifier, predictions_frame
from .config import Settings, bundled_model_path
from .errors import ColdrecError, ConfigError, DataImportError, ModelError, NotReadyError, QueryError
from .encoder import Encoder, ModelLoadError, embed_texts, load_encoder, pick_device, text_hash
from .finetune import improve_model, list_versions, load_version, switch_version
from .jobs import JobRunner
from .export import spreadsheet_safe, to_csv_bytes, to_excel_bytes
from .ingest import IngestError, Limits, clean_text, guess_mapping, item_text, load_items, parse_pasted, prepare_items, read_table
from .neighbours import NeighbourIndex, top_k_cosine
from .store import Store, StoreError, StoreLockedError
from .workspace import PredictionBatch, Workspace

__version__ = "0.1.0"

__all__ = [
    "CategoryModel",
    "ColdrecError",
    "ConfigError",
    "DataImportError",
    "ModelError",
    "NotReadyError",
    "QueryError",
    "Encoder",
    "IngestError",
    "JobRunner",
    "Limits",
    "ModelLoadError",
    "NeighbourIndex",
    "Prediction",
    "PredictionBatch",
    "Settings",
    "Store",
    "StoreError",
    "StoreLockedError",
    "Workspace",
    "bundled_model_path",
    "category_prompt",
    "clean_text",
    "embed_texts",
    "fit_classifier",
    "guess_mapping",
    "improve_model",
    "item_text",
    "load_encoder",
    "list_versions",
    "load_items",
    "load_version",
    "parse_pasted",
    "pick_device",
    "predictions_frame",
    "prepare_items",
    "read_table",
    "spreadsheet_safe",
    "switch_version",
    "text_hash",
    "to_csv_bytes",
    "to_excel_bytes",
    "top_k_cosine",
]
