"""coldrec: categorise cold-start products, find similar catalog items, learn from labels.

The library works without Streamlit; the dashboard (``app.py``) and the CLI
(``python -m coldrec``) are thin layers over it.
"""

from .audience import AudienceModel, build_audience, evaluate_audience, load_interactions, reasons_frame, segment_table
from .batch_embed import embed_catalog, load_vectors
from .classify import Prediction, category_prompt, predictions_frame
from .config import Settings, bundled_model_path
from .errors import ColdrecError, ConfigError, DataImportError, ExportError, ModelError, NotReadyError, QueryError
from .encoder import Encoder, ModelLoadError, embed_texts, load_encoder, pick_device, text_hash
from .finetune import improve_model, switch_version
from .versions import list_versions, load_model, load_version
from .jobs import JobRunner
from .export import spreadsheet_safe, to_csv_bytes, to_excel_bytes
from .ingest import IngestError, Limits, clean_text, guess_mapping, item_text, load_items, parse_pasted, prepare_items, read_table
from .estimator import ColdStartClassifier
from .graph import ItemGraph, build_graph, propagate
from .neighbours import NeighbourIndex, VectorIndex, top_k_cosine
from .sqlbox import SQLResult, run_readonly
from .store import Store, StoreError, StoreLockedError, category_name
from .services.predictor import PredictionBatch
from .workspace import Workspace

__version__ = "0.1.0"

__all__ = [
    "AudienceModel",
    "build_audience",
    "evaluate_audience",
    "load_interactions",
    "reasons_frame",
    "segment_table",
    "ColdStartClassifier",
    "ColdrecError",
    "ConfigError",
    "DataImportError",
    "ExportError",
    "ModelError",
    "NotReadyError",
    "QueryError",
    "Encoder",
    "IngestError",
    "JobRunner",
    "Limits",
    "ModelLoadError",
    "ItemGraph",
    "NeighbourIndex",
    "Prediction",
    "PredictionBatch",
    "Settings",
    "SQLResult",
    "Store",
    "StoreError",
    "StoreLockedError",
    "VectorIndex",
    "Workspace",
    "bundled_model_path",
    "category_name",
    "category_prompt",
    "clean_text",
    "embed_catalog",
    "embed_texts",
    "build_graph",
    "guess_mapping",
    "improve_model",
    "item_text",
    "load_encoder",
    "list_versions",
    "load_items",
    "load_model",
    "load_vectors",
    "load_version",
    "parse_pasted",
    "pick_device",
    "predictions_frame",
    "propagate",
    "prepare_items",
    "read_table",
    "run_readonly",
    "spreadsheet_safe",
    "switch_version",
    "text_hash",
    "to_csv_bytes",
    "to_excel_bytes",
    "top_k_cosine",
]
