"""The fitted predictor's state, saved beside the item index so that a restart does not refit.

At a million items the first fit after a start took about three minutes (the graph from the
saved neighbours, a full propagation, the label-free beta, every item's nearest prompt and
label; BENCHMARKS.md, "Scale"). :func:`save` writes what that fit learned
(:meth:`ColdStartClassifier.fitted_arrays`) to one file, ``predictor.npz`` in the index's folder;
:func:`load` gives it back only when it was fitted on exactly what the workspace holds now, else
``None`` and the workspace fits again. What binds it (:class:`StateKey`): the database (the
index's binding), the model's name and dimension, every fitted row's item id, text hash and
liveness, the label event it was fitted at and the labelled rows and classes themselves, the
categories (names, descriptions, paths), the estimator's parameters and the constants of the
graph, its text view and the prior. The text view's fitted model (:mod:`coldrec.text_features`)
is saved with the rest: an upload after a restart extends the graph with the same model. A file that is missing, half-written, altered or for anything else is ignored
with the reason in the log, never trusted.

The file is written to a temporary name and renamed over the old one (an atomic step on POSIX),
so a crash leaves the previous file or the new one, never a mix. It is a zip of ``.npy`` arrays
(``numpy.savez``, stored, not compressed), whose CRC-32 per array catches damaged bytes; the key
and a digest of the arrays' shapes are in a JSON member read first. A restart maps the arrays
from the file (copy-on-write) instead of reading them: at a million items they are 0.9 GB, and
reading them out of the zip took 2.6 s of a restart (checking every CRC takes 0.2 s).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import zipfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from .estimator import MIN_LABELS_TO_CALIBRATE, PRIOR_SCALE, PROMPT_WEIGHT, ColdStartClassifier
from .graph import ALPHA, FEATURE_WEIGHT, GRAPH_CANDIDATES, GRAPH_K, GRAPH_POWER, TOLERANCE
from . import text_features
from .neighbours import VectorIndex

log = logging.getLogger("coldrec")

FILE_NAME = "predictor.npz"
#: Bumped whenever what is saved or how it is read changes: a file of another format is refitted.
FORMAT = 2  # 2: the graph's text view (character n-gram topics) and its fitted model
_META = "meta"
_save_lock = threading.Lock()  # the refit thread and a click may both save: one writer at a time


@dataclass(frozen=True)
class StateKey:
    """What a saved state must have been fitted on to be used (every field must be equal)."""

    binding: str  # the database the item index belongs to
    model: str
    dim: int
    items: str  # digest of every fitted row's id, text hash and liveness (:func:`items_digest`)
    rows: int
    label_version: int
    categories: str  # digest of the categories (names, descriptions, paths) and the model name
    estimator: str  # the estimator's parameters and the constants of the graph and prior

    @classmethod
    def of(
        cls, binding: str, model: str, dim: int, index: VectorIndex, rows: int, label_version: int, categories: object,
        transductive: bool = True, alpha: float = ALPHA, char_topics: bool = True,
    ) -> "StateKey":
        """The key of a fit of the first ``rows`` rows of ``index``."""
        topics = (bool(char_topics), FEATURE_WEIGHT, text_features.MAX_FIT_TEXTS, text_features.MAX_NGRAMS,
                  text_features.MAX_DIMS, text_features.NGRAM_RANGE, text_features.MIN_DF)
        estimator = repr((bool(transductive), float(alpha), GRAPH_K, GRAPH_POWER, TOLERANCE, PRIOR_SCALE, PROMPT_WEIGHT,
                          MIN_LABELS_TO_CALIBRATE, topics, GRAPH_CANDIDATES))
        return cls(binding, model, int(dim), items_digest(index, rows), int(rows), int(label_version),
                   _digest(categories), _digest(estimator))


@dataclass(frozen=True)
class Restored:
    """A loaded state: the model and what the workspace kept beside it when it was saved."""

    model: ColdStartClassifier
    #: Labels beta was (or is being) fitted for, as the workspace keeps it.
    calibrated_labels: int
    #: Items when the graph's centre was computed (the workspace recentres when they grow by a fifth).
    centre_items: int
    #: Work the background refit had still to do: the full propagation, beta.
    pending: tuple[bool, bool]


def items_digest(index: VectorIndex, rows: int) -> str:
    """A digest of the first ``rows`` rows of ``index``: id, text hash, and whether it is live (a
    retired row keeps its place; its item was re-embedded or removed)."""
    digest = hashlib.blake2b(digest_size=16)
    digest.update(str(rows).encode())
    digest.update("\x1f".join(index.ids[:rows]).encode("utf-8", "surrogatepass"))
    digest.update(b"\x1e")
    digest.update("\x1f".join(index.hashes[:rows]).encode("utf-8", "surrogatepass"))
    digest.update(np.ascontiguousarray(index.alive[:rows], dtype=bool).tobytes())
    return digest.hexdigest()


def _digest(value: object) -> str:
    return hashlib.sha256(repr(value).encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _shapes(arrays: dict[str, np.ndarray]) -> str:
    return _digest(sorted((name, str(a.dtype), tuple(a.shape)) for name, a in arrays.items()))


def save(
    folder: Path, key: StateKey, model: ColdStartClassifier, calibrated_labels: int, centre_items: int,
    pending: tuple[bool, bool],
) -> bool:
    """Write ``model``'s fitted state to ``folder/predictor.npz`` under ``key`` (temporary file,
    then rename). Returns whether it was written: a read-only or full disk is logged, not raised
    (the workspace still works; the next start fits again)."""
    arrays = model.fitted_arrays()
    meta = {"format": FORMAT, "key": asdict(key), "calibrated_labels": int(calibrated_labels),
            "centre_items": int(centre_items), "pending": [bool(p) for p in pending], "shapes": _shapes(arrays)}
    target = Path(folder) / FILE_NAME
    tmp = target.with_name(f"{FILE_NAME}.{os.getpid()}.{threading.get_ident()}.tmp")
    try:
        with _save_lock:
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(tmp, "wb") as fh:
                np.savez(fh, **{_META: np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)}, **arrays)
                fh.flush()
                os.fsync(fh.fileno())  # on disk before the rename makes it the one a restart reads
            os.replace(tmp, target)
        return True
    except OSError as exc:
        log.warning("%s: the fitted predictor state was not saved (%s); the next start fits again", target, exc)
        tmp.unlink(missing_ok=True)
        return False


def load(
    folder: Path, key: StateKey, index: VectorIndex, labelled_rows: np.ndarray, labelled_classes: np.ndarray,
    encoder: object | None = None, transductive: bool = True, alpha: float = ALPHA,
) -> Restored | None:
    """The state saved in ``folder`` if it was fitted on exactly ``key`` and these labelled rows
    and classes (positions in ``index``), else ``None`` with the reason logged."""
    target = Path(folder) / FILE_NAME
    restored, why = _load(target, key, index, labelled_rows, labelled_classes, encoder, transductive, alpha)
    if restored is None and why != "none saved":
        log.info("%s: the saved predictor state was not used (%s); fitting again", target, why)
    return restored


def _load(
    target: Path, key: StateKey, index: VectorIndex, labelled_rows: np.ndarray, labelled_classes: np.ndarray,
    encoder: object | None, transductive: bool, alpha: float,
) -> tuple[Restored | None, str]:
    if not target.exists():
        return None, "none saved"
    try:
        arrays = _mapped_members(target)
        meta = json.loads(bytes(arrays.pop(_META)).decode("utf-8"))
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            return None, "it was saved in another format"
        if meta.get("key") != asdict(key):
            stored = meta.get("key") if isinstance(meta.get("key"), dict) else {}
            differs = [name for name, value in asdict(key).items() if stored.get(name) != value]
            return None, "it was fitted on other " + ", ".join(differs or ["inputs"])
    except (OSError, ValueError, EOFError, KeyError, struct.error, zipfile.BadZipFile, UnicodeDecodeError) as exc:
        return None, f"the file cannot be read ({type(exc).__name__}: {str(exc)[:120]})"
    if meta.get("shapes") != _shapes(arrays):
        return None, "its arrays do not match its record"
    if not (np.array_equal(arrays.get("labelled_rows"), labelled_rows)
            and np.array_equal(arrays.get("labelled_classes"), labelled_classes)):
        return None, "it was fitted on other labels"
    why = _check(arrays, key.rows, key.dim)
    if why:
        return None, why
    try:
        model = ColdStartClassifier.from_fitted_arrays(arrays, index, encoder=encoder, transductive=transductive,
                                                       alpha=alpha)
        pending = tuple(bool(p) for p in meta["pending"])
        restored = Restored(model, int(meta["calibrated_labels"]), int(meta["centre_items"]), (pending[0], pending[1]))
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        return None, f"its arrays are inconsistent ({type(exc).__name__}: {str(exc)[:120]})"
    return restored, ""


def _mapped_members(target: Path) -> dict[str, np.ndarray]:
    """Every ``.npy`` member of the (uncompressed) zip ``target``, mapped copy-on-write from the
    file rather than read, each checked against the CRC-32 the zip records for it. Raises
    ``ValueError`` for a member that is compressed, holds objects or fails its CRC."""
    out: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(target) as archive, open(target, "rb") as fh:
        for info in archive.infolist():
            if info.compress_type != zipfile.ZIP_STORED:
                raise ValueError(f"{info.filename} is compressed")
            fh.seek(info.header_offset)
            local = fh.read(30)  # the local header: its name and extra field come before the data
            if local[:4] != b"PK\x03\x04":
                raise ValueError(f"{info.filename} has no local header")
            name_length, extra_length = struct.unpack("<HH", local[26:30])
            start = info.header_offset + 30 + name_length + extra_length
            fh.seek(start)
            version = np.lib.format.read_magic(fh)
            shape, fortran, dtype = (np.lib.format.read_array_header_1_0(fh) if version == (1, 0)
                                     else np.lib.format.read_array_header_2_0(fh))
            if dtype.hasobject:
                raise ValueError(f"{info.filename} holds objects")
            header_length = fh.tell() - start
            if header_length + int(np.prod(shape)) * dtype.itemsize != info.file_size:
                raise ValueError(f"{info.filename} has the wrong size")
            fh.seek(start)
            crc = zlib.crc32(fh.read(header_length))
            if int(np.prod(shape)) == 0:
                array = np.zeros(shape, dtype=dtype)
            else:
                array = np.memmap(target, dtype=dtype, mode="c", offset=start + header_length, shape=shape,
                                  order="F" if fortran else "C")
                crc = zlib.crc32(array.reshape(-1, order="F" if fortran else "C").view(np.uint8), crc)  # in file order
            if crc != info.CRC:
                raise ValueError(f"{info.filename} is damaged (its CRC-32 does not match)")
            out[info.filename.removesuffix(".npy")] = array
    return out


def _check(arrays: dict[str, np.ndarray], rows: int, dim: int) -> str:
    """Why the arrays cannot be a fit of ``rows`` items of dimension ``dim`` ("" when they can)."""
    needed = ("classes", "prompt_vectors", "prior", "state", "logits", "centre", "scalars", "graph_data",
              "graph_indices", "graph_indptr")
    missing = [name for name in needed if name not in arrays]
    if missing:
        return "it lacks " + ", ".join(missing)
    classes = len(arrays["classes"])
    for name in ("prior", "state", "logits"):
        if arrays[name].shape != (rows, classes) or not np.isfinite(arrays[name]).all():
            return f"its {name} is not {rows:,} rows of {classes} finite numbers"
    if arrays["prompt_vectors"].shape != (classes, dim) or arrays["centre"].shape != (dim,):
        return "its prompts or centre have another dimension"
    for name in ("graph", "weights"):
        if f"{name}_data" not in arrays:
            continue
        indptr, indices = arrays[f"{name}_indptr"], arrays[f"{name}_indices"]
        if len(indptr) != rows + 1 or indptr[0] != 0 or indptr[-1] != len(indices) \
                or len(indices) != len(arrays[f"{name}_data"]) or (len(indices) and (indices.min() < 0 or indices.max() >= rows)) or np.any(np.diff(indptr) < 0):
            return f"its {name} is not a graph over {rows:,} items"
    if "topics_ngrams" in arrays:
        ngrams, dims = len(arrays["topics_ngrams"]), len(arrays.get("topics_mean", ()))
        if arrays.get("topics_components", np.zeros(0)).shape != (dims, ngrams) or arrays.get("topics_idf", np.zeros(0)).shape != (ngrams,):
            return "its text view's arrays do not fit together"
    labelled, of = arrays.get("labelled_rows", np.zeros(0, np.int64)), arrays.get("labelled_classes", np.zeros(0, np.int64))
    if len(labelled) != len(of) or (len(labelled) and (labelled.min() < 0 or labelled.max() >= rows
                                                       or of.min() < 0 or of.max() >= classes)):
        return "its labelled rows are out of range"
    return ""


__all__ = ["FILE_NAME", "FORMAT", "Restored", "StateKey", "items_digest", "load", "save"]
