"""Which encoder a workspace serves, and loading it only when a text must be embedded.

A *setting* names a model: ``None`` (the bundled all-MiniLM-L6-v2), a Hugging Face id, a model
folder, or a fine-tuned version folder (with ``card.json``, written by :mod:`coldrec.finetune`).
:func:`load_model` turns any setting into an encoder; :func:`active_setting` says which one a
workspace serves (its active version, else the configured model); :func:`open_encoder` returns
it *lazily*: most commands read vectors from the embedding cache (keyed by the encoder's name)
and never need the model, and importing torch and loading weights cost seconds
(a second ``predict`` of titles already embedded spent 5.0 of its 6.1 s there). The name and
dimension a setting loads as are recorded in the database the first time it loads.

This module sits above :mod:`coldrec.encoder` and below :mod:`coldrec.finetune`: encoder no longer
imports finetune to load a version (the import circle encoder → finetune → encoder).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .encoder import Encoder, ModelLoadError, ProgressFn, TextEncoder, load_encoder
from .errors import ModelError, StoreError

#: The file that makes a folder a fine-tuned version.
CARD = "card.json"
#: Store meta key: {setting key: {"name", "dim"}} for every setting this database has loaded.
IDENTITY_KEY = "encoder_identity"


def models_dir(db_path: str | Path) -> Path:
    """Where versions live: ``models/`` beside the database (``data/models`` by default)."""
    return Path(db_path).resolve().parent / "models"


def is_version(setting: str | Path | None) -> bool:
    """Whether ``setting`` is a fine-tuned version folder."""
    return setting is not None and (Path(setting).expanduser() / CARD).is_file()


def read_card(folder: str | Path) -> dict[str, object]:
    """The card of a version folder (raises :class:`ModelError` if it is not one)."""
    try:
        return json.loads((Path(folder) / CARD).read_text())
    except (OSError, ValueError) as exc:
        raise ModelError(f"{folder} is not a coldrec model version (no readable {CARD})") from exc


def list_versions(directory: Path) -> list[dict[str, object]]:
    """Cards of every version under ``directory``, newest first (each with its ``name``)."""
    if not directory.is_dir():
        return []
    cards = []
    for folder in sorted(directory.iterdir(), reverse=True):
        if folder.is_dir() and (folder / CARD).is_file() and not folder.name.endswith(".tmp"):
            cards.append({**read_card(folder), "name": folder.name})
    return cards


def load_version(folder: str | Path, device: str | None = None) -> Encoder:
    """Load a saved version as an encoder whose cache name is ``<base name>+<version>``."""
    import copy

    folder = Path(folder).resolve()
    card = read_card(folder)
    if card.get("weights") == "adapter":
        from peft import PeftModel

        base = load_encoder(card.get("base_source"), device=device)  # type: ignore[arg-type]
        net = PeftModel.from_pretrained(copy.deepcopy(base._model).float(), str(folder)).merge_and_unload()
        dtype = next(base._model.parameters()).dtype  # type: ignore[attr-defined]
        base._model = net.to(dtype).eval()
        encoder = base
    else:
        encoder = load_encoder(str(folder), device=device)
        encoder.pooling = str(card.get("pooling") or encoder.pooling)
        encoder.max_length = int(card.get("max_length") or encoder.max_length)  # type: ignore[arg-type]
    encoder.name = f"{card['base_model']}+{folder.name}"
    return encoder


def load_model(setting: str | None = None, device: str | None = None, **options: object) -> TextEncoder:
    """Load any setting now: a version folder as that version, anything else with :func:`load_encoder`."""
    if is_version(setting):
        return load_version(setting, device)  # type: ignore[arg-type]
    return load_encoder(setting, device, **options)  # type: ignore[arg-type]


def active_setting(store, settings, model: str | None = None) -> str | None:  # noqa: ANN001 - Store, Settings
    """What a workspace serves: the active version (store meta ``model_version``) if it was trained
    from the base model and is still on disk, else the base model. ``model``: the base model
    (default ``settings.model``; a workspace passes the one its language rule chose)."""
    base = settings.model if model is None else model
    name = store.get_meta("model_version")
    if name:
        folder = models_dir(settings.db_path) / name
        if is_version(folder) and read_card(folder).get("base_source") == base:
            return str(folder)
    return base


def active_encoder(store, settings, model: str | None = None) -> TextEncoder:  # noqa: ANN001 - Store, Settings
    """The encoder :func:`active_setting` names, loaded now."""
    return load_model(active_setting(store, settings, model), settings.device)


def open_encoder(store, settings, model: str | None = None) -> TextEncoder:  # noqa: ANN001 - Store, Settings
    """The workspace's encoder, loaded on first use when this database has loaded the same setting
    before (its name and dimension are recorded); loaded now, and recorded, otherwise."""
    setting = active_setting(store, settings, model)
    key = _setting_key(setting)
    known = _identities(store).get(key)
    if known is not None and "backend" in known:
        return LazyEncoder(lambda: load_model(setting, settings.device), str(known["name"]), int(known["dim"]),
                           str(known["backend"]))
    encoder = load_model(setting, settings.device)
    _record(store, key, encoder)
    return encoder


def concrete(encoder: TextEncoder) -> TextEncoder:
    """The loaded encoder behind a :class:`LazyEncoder` (loading it), or ``encoder`` itself."""
    return encoder.loaded() if isinstance(encoder, LazyEncoder) else encoder


class LazyEncoder:
    """An encoder whose name and dimension are known and whose weights load on first use.

    ``encode`` (and any other attribute: ``device``, ``backend``...) loads the model once,
    thread-safely; what loads must have the recorded name and dimension.
    """

    def __init__(self, load: Callable[[], TextEncoder], name: str, dim: int, backend: str = "torch") -> None:
        self._load = load
        self.name = name
        self.dim = dim
        #: Which kind of model loads (``torch``, ``onnx-int8``, ``numpy``, ``pair``): the language rule
        #: asks for it on every ``predict``, and must not load the model to learn it.
        self.backend = backend
        self._encoder: TextEncoder | None = None
        self._loading = threading.Lock()

    def loaded(self) -> TextEncoder:
        """The real encoder (loaded on the first call)."""
        with self._loading:
            if self._encoder is None:
                encoder = self._load()
                if (encoder.name, encoder.dim, getattr(encoder, "backend", "torch")) != (self.name, self.dim, self.backend):
                    raise ModelLoadError(
                        f"the model loaded as {encoder.name} ({encoder.dim} dims), but this database recorded "
                        f"{self.name} ({self.dim} dims): the model folder changed; restart to use it"
                    )
                self._encoder = encoder
            return self._encoder

    def is_loaded(self) -> bool:
        """Whether the weights have been loaded yet."""
        return self._encoder is not None

    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        """Embed ``texts`` (loads the model first if needed)."""
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.loaded().encode(texts, progress=progress)

    def __getattr__(self, attr: str) -> object:  # only for attributes not set in __init__
        if attr.startswith("__") or attr in {"_load", "_encoder", "_loading", "backend"}:
            raise AttributeError(attr)
        return getattr(self.loaded(), attr)


def _setting_key(setting: str | None) -> str:
    """What identifies a setting's name and dimension: the setting, the backend and, for a folder,
    its config file's size and time (a folder replaced by another model loads again)."""
    parts: list[object] = [setting, os.environ.get("COLDREC_BACKEND") or "torch"]
    if setting is not None:
        config = Path(setting).expanduser() / "config.json"
        try:
            stat = config.stat()
            parts += [str(config.resolve()), stat.st_size, stat.st_mtime_ns]
        except OSError:
            pass
    return json.dumps(parts)


def _identities(store) -> dict[str, dict[str, object]]:  # noqa: ANN001 - Store
    try:
        value = json.loads(store.get_meta(IDENTITY_KEY) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _record(store, key: str, encoder: TextEncoder) -> None:  # noqa: ANN001 - Store
    known = _identities(store)
    identity = {"name": encoder.name, "dim": encoder.dim, "backend": getattr(encoder, "backend", "torch")}
    if known.get(key) == identity:
        return
    known[key] = identity
    try:
        store.set_meta(IDENTITY_KEY, json.dumps(known), bump=False)  # a record, not a setting
    except StoreError:  # a read-only database: it loads eagerly again next time
        pass


__all__ = [
    "CARD", "LazyEncoder", "active_encoder", "active_setting", "concrete", "is_version", "list_versions",
    "load_model", "load_version", "models_dir", "open_encoder", "read_card",
]
