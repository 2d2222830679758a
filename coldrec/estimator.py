"""The product's one predictor: :class:`ColdStartClassifier` (scikit-learn style).

What it does, in order (each step measured in BENCHMARKS.md, "Predictor"):

1. **Own distribution** ``Y0`` of every item: cosine to each category's vector, softmax at
   :data:`PRIOR_SCALE`. A category's vector is the sum of its labelled examples plus its
   prompt (name, path, description) counted as :data:`PROMPT_WEIGHT` examples, normalised —
   zero-shot with no labels, the class prototype with many. A category with no labels while
   others have some (one just added to the taxonomy) gets a bias on its cosines fitted on the
   workspace's own labels (:func:`fit_name_only_bias`): a one-sentence prompt is further from
   every product than an average of product texts, so without it such a category is never
   predicted.
2. **Propagation** (:mod:`coldrec.graph`): ``Y0`` smoothed over the k-nearest-neighbour graph
   of every item the classifier was given (labelled and unlabelled), labels clamped. Given the
   items' texts, the graph has a second view: a character n-gram LSA fitted on those texts
   (:mod:`coldrec.text_features`), whose cosine is mixed with the embedding's on every edge;
   the neighbours are searched on the mixed similarity up to :data:`~coldrec.neighbours.EXACT_MAX_ITEMS`
   items, above it the index's :data:`~coldrec.graph.GRAPH_CANDIDATES` embedding neighbours are
   re-weighted (BENCHMARKS.md, "Catalogues in other languages").
3. **Calibration**: probabilities are ``softmax(beta * log F)``. Propagation averages an item's
   distribution with its look-alikes', which flattens it, so ``beta`` > 1 sharpens it again.
   Without labels, ``beta`` is set so that the workspace's mean confidence equals that of each
   item's own distribution combined with its look-alikes' vote counted as half an independent
   opinion, ``Y0 * (S @ Y0)^0.5`` (:func:`confidence_matching_beta`). The model's training
   temperature keeps ``Y0`` calibrated (expected calibration error about 0.05 zero-shot on all
   three datasets measured); the look-alikes add evidence, but their texts overlap the item's
   own, so they count half. Measured zero-shot ECE: 0.04-0.09 (BENCHMARKS.md, "Calibration").
   Once there are :data:`MIN_LABELS_TO_CALIBRATE` labels in two categories, ``beta`` is fitted
   by maximum likelihood on out-of-fold predictions of the labelled items (up to 10 folds, each
   hiding about the same share of every category's labels, :func:`calibration_folds`;
   prototypes and propagation redone without them). Held-out folds see fewer labels than the
   final fit, so the fitted value errs slightly low (under-confident), the safe side.

Items not in the graph (a product typed on the Overview page) are predicted from their index
neighbours' propagated distributions blended with their own, as one extra propagation step.

    >>> clf = ColdStartClassifier().fit(texts, labels, categories=names, unlabelled=other_texts)
    >>> clf.predict_proba(new_texts), clf.classes_

It follows scikit-learn's estimator rules: ``__init__`` stores its parameters and nothing else
(``get_params``/``set_params``/``clone`` work; a clone shares the encoder, a loaded model, rather
than copying it), what ``fit`` learns ends in ``_``, and as in
:class:`sklearn.semi_supervised.LabelSpreading`, ``transduction_`` is every fitted item's class
and ``label_distributions_`` its distribution.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa

from sklearn.base import BaseEstimator, ClassifierMixin

from .classify import Prediction, category_prompt
from .errors import NotReadyError
from .graph import (ALPHA, GRAPH_CANDIDATES, GRAPH_K, TOLERANCE, ItemGraph, build_graph, centre_vectors, distributions, empty_graph, extend_graph,
                    mixed_vectors, propagate)
from .neighbours import EXACT_MAX_ITEMS, VectorIndex, top_k_cosine
from .text_features import CharTopics

#: Softmax scale of cosines for an item's own distribution: 20 is the scale (1 / temperature
#: 0.05) sentence-transformers trains its embedding models with, so it matches how far apart
#: the model was taught to put related and unrelated texts.
PRIOR_SCALE = 20.0
#: A category's prompt counts as this many labelled examples (measured; BENCHMARKS.md).
PROMPT_WEIGHT = 2.0
#: Labels needed (in at least two categories) before beta is fitted on them.
MIN_LABELS_TO_CALIBRATE = 10
#: beta when nothing else is known (no items to match confidence on).
DEFAULT_BETA = 1.0
#: Out-of-fold folds for fitting beta (each fold's labels hidden in turn).
CALIBRATION_FOLDS = 10
#: An item is "novel" (like none of the categories) when it is less similar to every labelled
#: example and every category prompt than this share of the labelled items are to theirs.
NOVEL_QUANTILE = 0.05
_BETA_GRID = np.geomspace(0.05, 20.0, 80)
#: Rows per block of a product computed with a ``pause`` (about 0.1 s of OpenBLAS at 384 x 50).
_PAUSE_ROWS = 65_536
#: What a background computation calls between its steps (it may wait there).
Pause = Callable[[], None]


@dataclass
class _Fit:
    """What a fit keeps: the graph items, the propagation state, calibration and novelty cut-offs."""

    vectors: np.ndarray
    ids: list[str]
    index: VectorIndex
    graph: ItemGraph
    labelled_rows: np.ndarray
    labelled_classes: np.ndarray
    prior: np.ndarray
    state: np.ndarray  # the propagation's fixed point (unnormalised)
    logits: np.ndarray  # cosine of every item to every class vector (the prior before its softmax)
    beta: float
    beta_fitted: bool
    novel_label_cut: float | None
    novel_prompt_cut: float
    #: Out-of-fold distributions of the labelled rows (in ``labelled_rows`` order), or ``None``
    #: when not computed for the current labels.
    out_of_fold: np.ndarray | None = None
    #: Each item's best cosine to a prompt and to a labelled item, and the rows and labelled
    #: rows they cover: kept so that after a new label only that label's column is computed.
    nearest: tuple[int, frozenset, np.ndarray, np.ndarray] | None = None
    #: The last :meth:`ColdStartClassifier.fitted_predictions` arrays and what they were
    #: computed from, so after a local label update only the rows that moved are redone.
    predicted: tuple[object, ...] | None = None
    #: Each category's bias on its cosines in the prior (:meth:`ColdStartClassifier._name_only_bias`).
    bias: np.ndarray | None = None
    #: ``prior`` is the one ``state`` was propagated with, and labels given since (a local
    #: update) moved ``logits``/``bias``: the new prior is computed by :meth:`propagated_state`.
    prior_stale: bool = False
    #: Columns of ``logits`` whose class vectors labels moved since (a local update leaves them to
    #: :meth:`propagated_state`: recomputing a column in place meant copying 1M x 50 logits per label).
    stale_columns: frozenset = frozenset()
    #: ``ids`` as an object array (the list it was made from, the array): built once per item list.
    id_array: tuple[list[str], np.ndarray] | None = None
    #: The graph's second view (:mod:`coldrec.text_features`), fitted on the items' texts; ``None``
    #: when the fit was given no texts (or too few to fit it).
    topics: CharTopics | None = None
    #: Each row's text when the fit was given texts (``None`` for a restored fit: its caller
    #: passes them to :meth:`ColdStartClassifier.add_index_rows`).
    texts: Sequence[str] | None = None


class ColdStartClassifier(ClassifierMixin, BaseEstimator):
    """Zero-/few-shot category classifier that learns from every unlabelled item too.

    ``fit(X, y, categories=..., unlabelled=...)``, ``predict_proba(X)``, ``predict(X)``,
    ``classes_``. ``X`` is a list of product texts (embedded with ``encoder``; unless given, the
    bundled model the language rule picks for the first texts embedded: all-MiniLM-L6-v2 for
    English, the multilingual USE for Chinese, see :mod:`coldrec.language`) or an array of unit vectors. ``transductive=False`` turns the
    graph off (the ``coldrec-inductive`` row of ``evaluate``). ``char_topics=False`` builds the
    graph on the embedding alone, without the texts' character n-gram LSA.
    """

    def __init__(self, encoder: object | None = None, transductive: bool = True, alpha: float = ALPHA,
                 char_topics: bool = True) -> None:
        self.encoder = encoder
        self.transductive = transductive
        self.alpha = alpha
        self.char_topics = char_topics

    def __sklearn_clone__(self) -> "ColdStartClassifier":
        """An unfitted copy with the same parameters, sharing the encoder (a loaded model is a
        shared resource: deep-copying it would copy its weights and locks)."""
        return type(self)(**self.get_params(deep=False))

    # -- fitting ----------------------------------------------------------------------------
    def fit(
        self,
        X: Sequence[str] | np.ndarray | None,
        y: Sequence[str] | None = None,
        *,
        categories: Sequence[str],
        descriptions: Mapping[str, str] | None = None,
        paths: Mapping[str, str] | None = None,
        prompt_vectors: np.ndarray | None = None,
        unlabelled: Sequence[str] | np.ndarray | None = None,
        ids: Sequence[str] | None = None,
        unlabelled_ids: Sequence[str] | None = None,
    ) -> "ColdStartClassifier":
        """Fit on labelled items ``X, y`` (labels outside ``categories`` are ignored) and the
        ``unlabelled`` items. ``prompt_vectors`` (one per category) skip embedding the prompts;
        ``ids`` / ``unlabelled_ids`` name the items (for evidence). Returns ``self``."""
        categories = list(categories)
        if not categories:
            raise NotReadyError("there are no categories yet: add or import some first")
        self.classes_ = np.array(categories, dtype=object)
        if prompt_vectors is None:
            descriptions, paths = descriptions or {}, paths or {}
            prompt_vectors = self._embed([category_prompt(c, descriptions.get(c), paths.get(c)) for c in categories])
        self.prompt_vectors_ = np.asarray(prompt_vectors, dtype=np.float32)
        labelled = self._embed(X) if X is not None and len(X) else np.zeros((0, self.prompt_vectors_.shape[1]), np.float32)
        others = self._embed(unlabelled) if unlabelled is not None and len(unlabelled) else np.zeros((0, labelled.shape[1]), np.float32)
        index_of = {c: i for i, c in enumerate(categories)}
        y = list(y) if y is not None else []
        keep = np.array([i for i, label in enumerate(y) if label in index_of], dtype=np.int64)
        label_ids = [str(i) for i in (ids if ids is not None else [f"labelled:{j}" for j in range(len(labelled))])]
        other_ids = [str(i) for i in (unlabelled_ids if unlabelled_ids is not None else [f"item:{j}" for j in range(len(others))])]
        vectors = np.vstack([labelled, others]) if len(others) else labelled
        given = [part for part in (X, unlabelled) if part is not None and len(part)]
        texts = None  # the graph's text view needs every item's text: not when any part came as vectors
        if given and all(_are_texts(part) for part in given):
            texts = [str(t) for part in given for t in part]
        self._fit = self._fit_graph(
            vectors, label_ids + other_ids, keep, np.array([index_of[y[i]] for i in keep], dtype=np.int64), texts=texts,
        )
        return self

    def fit_rows(
        self, vectors: np.ndarray, ids: Sequence[str], labelled_rows: np.ndarray, labelled_classes: np.ndarray,
        categories: Sequence[str], prompt_vectors: np.ndarray, graph: ItemGraph | None = None,
        index: VectorIndex | None = None, calibrate: bool = True, centre: np.ndarray | None = None,
        calibration: Mapping[str, object] | None = None, texts: Sequence[str] | None = None,
    ) -> "ColdStartClassifier":
        """Fit on ``vectors`` of which ``labelled_rows`` have classes ``labelled_classes``
        (positions in ``categories``). What the workspace calls: it passes its stored ``graph``
        and ``index`` when it has them. ``calibrate=False`` starts with the label-free beta
        (fit the labelled one later with :meth:`calibration`: ten propagations over every item).
        ``centre`` centres the graph's cosines (default: the items' mean) and ``calibration``
        (from :meth:`fit_state`) is used instead of fitting beta and the novelty cut-offs: a
        workspace passes both from its stored fit, so a fresh fit equals the one updated in place.
        ``texts``: each row's text ("" for a retired row), for the graph's second view."""
        self.classes_ = np.array(list(categories), dtype=object)
        self.prompt_vectors_ = np.asarray(prompt_vectors, dtype=np.float32)
        self._fit = self._fit_graph(np.asarray(vectors, dtype=np.float32), list(map(str, ids)),
                                    np.asarray(labelled_rows, dtype=np.int64), np.asarray(labelled_classes, dtype=np.int64),
                                    graph=graph, index=index, calibrate=calibrate, centre=centre, calibration=calibration,
                                    texts=texts)
        return self

    def _fit_graph(
        self, vectors: np.ndarray, ids: list[str], rows: np.ndarray, classes: np.ndarray,
        graph: ItemGraph | None = None, index: VectorIndex | None = None, calibrate: bool = True,
        centre: np.ndarray | None = None, calibration: Mapping[str, object] | None = None,
        texts: Sequence[str] | None = None,
    ) -> _Fit:
        if index is None:
            index = VectorIndex.build(ids, vectors)
        topics = self._fit_topics(texts, len(vectors)) if graph is None else None
        if graph is None:
            graph = self._graph(vectors, index, centre, None if topics is None else topics.transform(texts))  # type: ignore[arg-type]
        logits = self._logits(vectors, vectors[rows], classes)
        bias = self._name_only_bias(vectors[rows], classes)
        prior = _softmax(PRIOR_SCALE * (logits + bias))
        state = self._propagate(graph, prior, rows, classes)
        if calibration is not None:
            beta, fitted, oof = float(calibration["beta"]), bool(calibration["beta_fitted"]), None  # type: ignore[arg-type]
            cut = calibration["novel_label_cut"]
            label_cut, prompt_cut = (None if cut is None else float(cut)), float(calibration["novel_prompt_cut"])  # type: ignore[arg-type]
            return _Fit(vectors, ids, index, graph, rows, classes, prior, state, logits, beta, fitted, label_cut, prompt_cut, oof,
                        topics=topics, texts=texts if topics is not None else None)
        if calibrate:
            beta, fitted, oof = self._calibrate(vectors, graph, rows, classes, state, prior)
        else:
            beta, fitted, oof = self._calibrate(vectors, graph, rows[:0], classes[:0], state, prior)
        label_cut, prompt_cut = self._novelty_cuts(vectors, rows)
        return _Fit(vectors, ids, index, graph, rows, classes, prior, state, logits, beta, fitted, label_cut, prompt_cut, oof,
                    bias=bias, topics=topics, texts=texts if topics is not None else None)

    def fit_state(self) -> dict[str, object]:
        """What a fresh fit needs to equal this one besides the items and labels: the graph's
        centre, beta (and whether it was fitted on labels) and the novelty cut-offs (JSON-ready)."""
        fit = self._require_fit()
        return {"centre": [float(v) for v in np.asarray(fit.graph.centre, dtype=np.float32)],
                "beta": float(fit.beta), "beta_fitted": bool(fit.beta_fitted),
                "novel_label_cut": None if fit.novel_label_cut is None else float(fit.novel_label_cut),
                "novel_prompt_cut": float(fit.novel_prompt_cut)}

    def fitted_arrays(self) -> dict[str, np.ndarray]:
        """Everything the fit learned, as plain arrays (no objects: saved and loaded without
        pickle by :mod:`coldrec.predictor_state`); :meth:`from_fitted_arrays` turns them back into
        this model over the same index. The items' vectors and ids are the index's, not copied."""
        fit = self._require_fit()
        out: dict[str, np.ndarray] = {
            "classes": np.array([str(c) for c in self.classes_], dtype=str),
            "prompt_vectors": np.asarray(self.prompt_vectors_, dtype=np.float32),
            "labelled_rows": fit.labelled_rows, "labelled_classes": fit.labelled_classes,
            "prior": fit.prior, "state": fit.state, "logits": fit.logits, "centre": np.asarray(fit.graph.centre, np.float32),
            "scalars": np.array([fit.beta, float(fit.beta_fitted), np.nan if fit.novel_label_cut is None else fit.novel_label_cut,
                                 fit.novel_prompt_cut, float(fit.prior_stale)], dtype=np.float64),
        }
        for name, matrix in (("graph", fit.graph.matrix), ("weights", fit.graph.weights)):
            if matrix is not None:
                matrix = matrix.tocsr()
                out.update({f"{name}_data": matrix.data, f"{name}_indices": matrix.indices, f"{name}_indptr": matrix.indptr})
        if fit.bias is not None:
            out["bias"] = fit.bias
        if fit.topics is not None:
            out.update({f"topics_{name}": array for name, array in fit.topics.arrays().items()})
        if fit.stale_columns:
            out["stale_columns"] = np.array(sorted(fit.stale_columns), dtype=np.int64)
        if fit.out_of_fold is not None:
            out["out_of_fold"] = fit.out_of_fold
        if fit.nearest is not None:  # each item's best cosine to a prompt and a label (minutes of products at 1M)
            done, known, best_prompt, best_label = fit.nearest
            out.update(nearest_done=np.array([done]), nearest_known=np.array(sorted(known), dtype=np.int64),
                       nearest_prompt=best_prompt, nearest_label=best_label)
            cached = fit.predicted  # the calibrated predictions of the current state (seconds at 1M)
            if cached is not None and cached[1] is fit.state and cached[2] is best_prompt and cached[3] is best_label:
                out.update(predicted_inputs=np.array([np.nan if v is None else v for v in cached[0]], dtype=np.float64),
                           predicted_best=cached[4], predicted_confidence=cached[5], predicted_novel=cached[6],
                           predicted_second=cached[7])
        return out

    @classmethod
    def from_fitted_arrays(
        cls, arrays: Mapping[str, np.ndarray], index: VectorIndex, encoder: object | None = None,
        transductive: bool = True, alpha: float = ALPHA, char_topics: bool = True,
    ) -> "ColdStartClassifier":
        """The model :meth:`fitted_arrays` described, over ``index`` (which must hold the same rows,
        first to last: :mod:`coldrec.predictor_state` checks that before calling this)."""
        import scipy.sparse as sp

        model = cls(encoder=encoder, transductive=transductive, alpha=alpha, char_topics=char_topics)
        model.classes_ = np.array([str(c) for c in arrays["classes"]], dtype=object)
        model.prompt_vectors_ = np.asarray(arrays["prompt_vectors"], dtype=np.float32)
        state = np.asarray(arrays["state"], dtype=np.float32)
        n = len(state)

        def matrix(name: str) -> sp.csr_matrix | None:
            if f"{name}_data" not in arrays:
                return None
            return sp.csr_matrix((arrays[f"{name}_data"], arrays[f"{name}_indices"], arrays[f"{name}_indptr"]), shape=(n, n))

        graph = ItemGraph(matrix("graph"), np.asarray(arrays["centre"], dtype=np.float32), matrix("weights"))  # type: ignore[arg-type]
        beta, fitted, label_cut, prompt_cut, stale = (float(v) for v in arrays["scalars"])
        fit = _Fit(index.vectors, list(index.ids), index, graph, np.asarray(arrays["labelled_rows"], np.int64),
                   np.asarray(arrays["labelled_classes"], np.int64), np.asarray(arrays["prior"], np.float32), state,
                   np.asarray(arrays["logits"], np.float32), beta, bool(fitted),
                   None if np.isnan(label_cut) else label_cut, prompt_cut,
                   out_of_fold=arrays["out_of_fold"] if "out_of_fold" in arrays else None,
                   bias=np.asarray(arrays["bias"], np.float32) if "bias" in arrays else None, prior_stale=bool(stale),
                   topics=CharTopics.from_arrays({k[len("topics_"):]: v for k, v in arrays.items() if k.startswith("topics_")})
                   if "topics_ngrams" in arrays else None,
                   stale_columns=frozenset(int(c) for c in arrays.get("stale_columns", ())))
        if "nearest_done" in arrays:
            fit.nearest = (int(arrays["nearest_done"][0]), frozenset(arrays["nearest_known"].tolist()),
                           arrays["nearest_prompt"], arrays["nearest_label"])
            if "predicted_inputs" in arrays:
                b, p, cut, rows = arrays["predicted_inputs"].tolist()
                fit.predicted = ((b, p, None if np.isnan(cut) else cut, int(rows)), state, fit.nearest[2], fit.nearest[3],
                                 arrays["predicted_best"], arrays["predicted_confidence"], arrays["predicted_novel"],
                                 arrays["predicted_second"])
        model._fit = fit
        return model

    def item_graph(
        self, vectors: np.ndarray, index: VectorIndex, texts: Sequence[str] | None = None, centre: np.ndarray | None = None,
    ) -> ItemGraph:
        """The graph :meth:`fit_rows` builds over ``vectors`` (rows of ``index``; ``texts``: each
        row's text, for the text view): built once and passed to many fits (``evaluate``)."""
        topics = self._fit_topics(texts, len(vectors))
        return self._graph(vectors, index, centre, None if topics is None else topics.transform(texts))  # type: ignore[arg-type]

    def _fit_topics(self, texts: Sequence[str] | None, n: int) -> CharTopics | None:
        """The graph's second view fitted on ``texts`` (``None`` without texts, for an inductive fit
        or with ``char_topics=False``)."""
        if texts is None or not self.char_topics or not self.transductive or n < 2:
            return None
        if len(texts) != n:
            raise ValueError(f"{len(texts)} texts for {n} rows")
        return CharTopics.fit([t for t in texts if t])

    def _graph(
        self, vectors: np.ndarray, index: VectorIndex, centre: np.ndarray | None = None, features: np.ndarray | None = None,
    ) -> ItemGraph:
        if not self.transductive or len(vectors) < 2:
            return empty_graph(vectors)
        if features is not None and len(vectors) <= EXACT_MAX_ITEMS:  # exact search on the mixed similarity
            centre = vectors.mean(axis=0) if centre is None else np.asarray(centre, dtype=np.float32)
            live = np.flatnonzero(index.alive[: len(vectors)])  # retired rows take no part, as below
            joined = mixed_vectors(centre_vectors(vectors[live], centre), features[live])
            found, _ = top_k_cosine(joined, joined, GRAPH_K + 1)
            table = np.full((len(vectors), found.shape[1]), -1, dtype=np.int64)
            table[live] = live[found]
            return build_graph(vectors, neighbours=(table, None), centre=centre, features=features)  # type: ignore[arg-type]
        # Retired rows (items re-embedded since) come back without neighbours and take no part.
        return build_graph(vectors, neighbours=index.neighbour_table(GRAPH_CANDIDATES, rows=np.arange(len(vectors))),
                           centre=centre, features=features)

    def _logits(
        self, vectors: np.ndarray, example_vectors: np.ndarray, example_classes: np.ndarray, pause: Pause | None = None,
    ) -> np.ndarray:
        """Cosine of each item to each category's vector (the prior before its softmax). With
        ``pause`` (a background refit), in blocks of rows with ``pause()`` between them: one
        product over a million rows holds OpenBLAS for seconds, and a click's products wait for it."""
        class_vectors = self._class_vectors(example_vectors, example_classes).T
        if pause is None:
            return vectors @ class_vectors
        out = np.empty((len(vectors), class_vectors.shape[1]), dtype=np.float32)
        for start in range(0, len(vectors), _PAUSE_ROWS):
            pause()
            out[start : start + _PAUSE_ROWS] = vectors[start : start + _PAUSE_ROWS] @ class_vectors
        return out

    def _prior(
        self, vectors: np.ndarray, example_vectors: np.ndarray, example_classes: np.ndarray, bias: np.ndarray | None = None,
        pause: Pause | None = None,
    ) -> np.ndarray:
        """Each item's own distribution over the categories (step 1 of the module docstring);
        ``bias``: :meth:`_name_only_bias` of these examples when already known."""
        logits = self._logits(vectors, example_vectors, example_classes, pause)
        if bias is None:
            bias = self._name_only_bias(example_vectors, example_classes)
        return _softmax(PRIOR_SCALE * (logits + bias))

    def _class_sums(self, example_vectors: np.ndarray, example_classes: np.ndarray) -> np.ndarray:
        prompts = self.prompt_vectors_
        assert prompts is not None
        sums = np.zeros_like(prompts)
        np.add.at(sums, example_classes, example_vectors)
        return sums + PROMPT_WEIGHT * prompts

    def _class_vectors(self, example_vectors: np.ndarray, example_classes: np.ndarray) -> np.ndarray:
        raw = self._class_sums(example_vectors, example_classes)
        return (raw / np.maximum(np.linalg.norm(raw, axis=1, keepdims=True), 1e-9)).astype(np.float32)

    def _name_only_bias(self, example_vectors: np.ndarray, example_classes: np.ndarray) -> np.ndarray:
        """Per category, what is added to its cosines before the prior's softmax: for a category
        with no labels (name and description only), the bias fitted on the workspace's own labels
        by :func:`fit_name_only_bias`; 0 for the others (step 1 of the module docstring)."""
        prompts = self.prompt_vectors_
        assert prompts is not None
        bias = np.zeros(len(prompts), dtype=np.float32)
        counts = np.bincount(example_classes, minlength=len(prompts))
        if (counts == 0).any() and (counts > 0).sum() >= 2:
            raw = self._class_sums(example_vectors, example_classes)
            bias[counts == 0] = fit_name_only_bias(example_vectors, example_classes, raw, prompts)
        return bias

    def _propagate(
        self, graph: ItemGraph, prior: np.ndarray, rows: np.ndarray, classes: np.ndarray,
        start: np.ndarray | None = None, changed: np.ndarray | None = None, pause: Pause | None = None,
        **options: float,
    ) -> np.ndarray:
        if not self.transductive:
            state = prior.copy()
            state[rows] = 0.0
            state[rows, classes] = 1.0
            return state
        return propagate(graph, prior, rows, classes, alpha=self.alpha, start=start, changed=changed, pause=pause,
                         **options)[0]

    def _calibrate(
        self, vectors: np.ndarray, graph: ItemGraph, rows: np.ndarray, classes: np.ndarray,
        state: np.ndarray, prior: np.ndarray, pause: Pause | None = None,
    ) -> tuple[float, bool, np.ndarray | None]:
        """beta (step 3 of the module docstring), whether it was fitted on labels, and the
        out-of-fold distributions it was fitted on. ``pause``: called between steps (see :meth:`calibration`)."""
        floor = self._label_free_beta(graph, state, prior, rows) if self.transductive else 1.0
        if len(rows) < MIN_LABELS_TO_CALIBRATE or len(np.unique(classes)) < 2:
            return floor, False, None
        oof = self._out_of_fold(vectors, graph, rows, classes, state, pause)
        held = np.isfinite(oof[:, 0])
        if held.sum() < MIN_LABELS_TO_CALIBRATE or len(np.unique(classes[held])) < 2:
            return floor, False, oof
        return fit_beta(oof[held], classes[held]), True, oof

    @staticmethod
    def _label_free_beta(graph: ItemGraph, state: np.ndarray, prior: np.ndarray, rows: np.ndarray) -> float:
        """beta without labels: match the confidence of ``Y0 * (S @ Y0)^0.5`` over the unlabelled items."""
        unlabelled = np.ones(len(state), dtype=bool)
        unlabelled[rows] = False
        vote = graph.matrix @ prior
        combined = prior * np.sqrt(np.maximum(vote, 0.0))
        combined = distributions(np.where(vote.sum(axis=1, keepdims=True) > 0, combined, prior))
        return confidence_matching_beta(distributions(state[unlabelled]), combined[unlabelled])

    def _out_of_fold(
        self, vectors: np.ndarray, graph: ItemGraph, rows: np.ndarray, classes: np.ndarray, state: np.ndarray | None = None,
        pause: Pause | None = None,
    ) -> np.ndarray:
        """Each labelled row's distribution from a fit without its fold's labels
        (:func:`calibration_folds`; a category's only label is never hidden, its row stays NaN;
        an empty fold costs nothing). Each fold's
        propagation starts from the full solution ``state`` and stops at a looser tolerance:
        beta needs two digits, not four."""
        oof = np.full((len(rows), len(self.classes_)), np.nan, dtype=np.float32)
        folds = calibration_folds(classes)
        for fold in range(CALIBRATION_FOLDS):
            test = folds == fold
            if not test.any():
                continue
            train = ~test
            prior = self._prior(vectors, vectors[rows[train]], classes[train], pause=pause)
            start = None
            if state is not None:
                start = state.copy()
                start[rows[test]] = prior[rows[test]]  # unclamped: start from its own distribution
            fold_state = self._propagate(graph, prior, rows[train], classes[train], start=start, pause=pause,
                                         tolerance=1e-3, max_iterations=30)
            oof[test] = distributions(fold_state[rows[test]])
        return oof

    def out_of_fold_proba(self) -> np.ndarray:
        """Calibrated out-of-fold probabilities of the labelled items (in :attr:`labelled_rows_`
        order): what a held-out check of the current labels sees (target precision, likely mistakes)."""
        fit = self._require_fit()
        if fit.out_of_fold is None or len(fit.out_of_fold) != len(fit.labelled_rows):
            fit.out_of_fold = self._out_of_fold(fit.vectors, fit.graph, fit.labelled_rows, fit.labelled_classes, fit.state)
        oof = fit.out_of_fold.copy()
        lone = ~np.isfinite(oof[:, 0])  # a category's only label: predicted without any label of it
        if lone.any():
            rows, classes = fit.labelled_rows, fit.labelled_classes
            oof[lone] = self._prior(fit.vectors[rows[lone]], fit.vectors[rows[~lone]], classes[~lone])
        return self._calibrated(oof)

    @property
    def labelled_rows_(self) -> np.ndarray:
        """Rows (positions in the fitted items) of the labelled items."""
        return self._require_fit().labelled_rows

    @property
    def categories(self) -> list[str]:
        """The categories as a list (``classes_``)."""
        return [str(c) for c in self.classes_]

    @property
    def prompt_vectors(self) -> np.ndarray:
        """One embedded prompt per category."""
        assert self.prompt_vectors_ is not None
        return self.prompt_vectors_

    def _novelty_cuts(self, vectors: np.ndarray, rows: np.ndarray) -> tuple[float | None, float]:
        """Similarity cut-offs below which an item is like none of the labelled items and prompts."""
        prompts = self.prompt_vectors_
        assert prompts is not None
        reference = vectors[rows] if len(rows) >= MIN_LABELS_TO_CALIBRATE else vectors
        if len(reference) == 0:
            return None, -1.0
        prompt_cut = float(np.quantile((reference @ prompts.T).max(axis=1), NOVEL_QUANTILE))
        if len(rows) < MIN_LABELS_TO_CALIBRATE:
            return None, prompt_cut
        _, sims = top_k_cosine(vectors[rows], vectors[rows], 2)  # the nearest other labelled item
        return float(np.quantile(sims[:, -1], NOVEL_QUANTILE)), prompt_cut

    def snapshot(self) -> "ColdStartClassifier":
        """A copy that can be updated while this one keeps serving predictions (arrays that an
        update changes in place are copied; the graph and index are shared)."""
        import copy
        from dataclasses import replace

        twin = copy.copy(self)
        if getattr(self, "_fit", None) is not None:
            twin._fit = replace(self._fit)  # its arrays are replaced by an update, never written in place
        return twin

    # -- updating after a label -------------------------------------------------------------
    def update_labels(
        self, labelled_rows: np.ndarray, labelled_classes: np.ndarray, recalibrate: bool = False, local: bool = False,
    ) -> int:
        """Refit after labels changed (rows are positions in the fitted items), warm-starting the
        propagation and recomputing only the rows the change reaches. Returns the rows touched
        by the prior change. ``recalibrate`` refits beta too (slower: five propagations).

        ``local`` propagates from the relabelled rows only: their look-alikes follow at once,
        while the small shift a new example gives its category's prototype everywhere waits
        for :meth:`propagated_state` (at a million items that shift reaches most rows and
        takes a minute to propagate)."""
        fit = self._require_fit()
        rows = np.asarray(labelled_rows, dtype=np.int64)
        classes = np.asarray(labelled_classes, dtype=np.int64)
        old = dict(zip(fit.labelled_rows.tolist(), fit.labelled_classes.tolist()))
        new = dict(zip(rows.tolist(), classes.tolist()))
        changed_rows = {r for r in set(old) | set(new) if old.get(r) != new.get(r)}
        changed_classes = {old[r] for r in changed_rows if r in old} | {new[r] for r in changed_rows if r in new}
        prior = fit.prior
        moved = np.array(sorted(changed_rows), dtype=np.int64)
        if changed_classes:
            fit.bias = self._name_only_bias(fit.vectors[rows], classes)
            if local:  # the changed categories' logit columns wait for propagated_state too
                fit.stale_columns = fit.stale_columns | frozenset(changed_classes)
                fit.prior_stale = True
            else:
                fit.logits = self._current_logits(fit, rows, classes, extra=changed_classes)
                fit.stale_columns = frozenset()
                prior = _softmax(PRIOR_SCALE * (fit.logits + fit.bias))
                drift = np.abs(prior - fit.prior).max(axis=1)  # against the prior the state was propagated with
                moved = np.union1d(moved, np.flatnonzero(drift > TOLERANCE))
                fit.prior_stale = False
        # Local: propagate the label change alone, over the prior the state was computed with
        # (kept in fit.prior until propagated_state()): with the new prior every recomputed row
        # would move a little and the frontier would spread over the whole graph. That held for
        # the first label after a refit only: the next one found the new prior in fit.prior (a
        # label while a refit was pending at 1M took 79 s). The new prior's softmax (1.7 s over
        # 1M x 50) is left to the background too.
        state = self._propagate(fit.graph, prior, rows, classes, start=fit.state, changed=moved)
        fit.labelled_rows, fit.labelled_classes, fit.prior, fit.state = rows, classes, prior, state
        fit.out_of_fold = None
        if recalibrate:
            fit.beta, fit.beta_fitted, fit.out_of_fold = self._calibrate(fit.vectors, fit.graph, rows, classes, state, prior)
            fit.novel_label_cut, fit.novel_prompt_cut = self._novelty_cuts(fit.vectors, rows)
        return len(moved)

    def propagated_state(self, pause: Pause | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The propagation's fixed point for the current prior and labels, warm-started from the
        current state and swept over every row (what :meth:`update_labels` with ``local`` left
        out), that prior and its logits; apply them with :meth:`set_state`. ``pause()`` is called between
        sweeps (see :meth:`calibration`)."""
        fit = self._require_fit()
        logits = self._current_logits(fit, fit.labelled_rows, fit.labelled_classes, pause=pause)
        prior = self._current_prior(fit, logits, pause)
        state = self._propagate(fit.graph, prior, fit.labelled_rows, fit.labelled_classes, start=fit.state, pause=pause)
        return state, prior, logits

    def _current_logits(
        self, fit: _Fit, rows: np.ndarray, classes: np.ndarray, extra: Iterable[int] = (), pause: Pause | None = None,
    ) -> np.ndarray:
        """``fit.logits`` with the stale columns (and ``extra``) recomputed for labels ``rows``,
        ``classes``: a new array (``fit.logits`` itself is shared with snapshots)."""
        stale = sorted(fit.stale_columns | frozenset(extra))
        if not stale:
            return fit.logits
        cols = np.array(stale, dtype=np.int64)
        class_vectors = self._class_vectors(fit.vectors[rows], classes)[cols]
        logits = fit.logits.copy()
        for start in range(0, len(logits), _PAUSE_ROWS):  # in blocks: a click may come meanwhile
            if pause is not None:
                pause()
            block = slice(start, start + _PAUSE_ROWS)
            logits[block, cols] = fit.vectors[block] @ class_vectors.T
        return logits

    @staticmethod
    def _current_prior(fit: _Fit, logits: np.ndarray, pause: Pause | None = None) -> np.ndarray:
        """The prior of the current labels (``fit.prior`` unless a local update left it stale)."""
        if not fit.prior_stale:
            return fit.prior
        logits = logits + (fit.bias if fit.bias is not None else 0.0)
        out = np.empty_like(fit.prior)
        for start in range(0, len(out), _PAUSE_ROWS):  # in blocks: a click may come meanwhile
            if pause is not None:
                pause()
            out[start : start + _PAUSE_ROWS] = _softmax(PRIOR_SCALE * logits[start : start + _PAUSE_ROWS])
        return out

    def set_state(self, state: np.ndarray, prior: np.ndarray, logits: np.ndarray | None = None) -> None:
        """Use ``state``, the ``prior`` it was propagated with and the ``logits`` of that prior
        (from :meth:`propagated_state` of a model with the same items and labels)."""
        fit = self._require_fit()
        if state.shape != fit.state.shape or prior.shape != fit.state.shape:
            raise ValueError(f"a state of shape {state.shape} for a fit of shape {fit.state.shape}")
        fit.state, fit.prior, fit.prior_stale = state, prior, False
        if logits is not None:
            fit.logits, fit.stale_columns = logits, frozenset()

    def reuse_predictions(self, other: "ColdStartClassifier") -> None:
        """Start from the prediction arrays ``other`` computed (:meth:`fitted_predictions`): a
        refit finished in the background computes them before it lands, so the first page after
        it redoes no row. Safe for any ``other``: each use checks them against this model's state,
        beta, cut-offs and nearest similarities, and redoes the rows that differ."""
        self._require_fit().predicted = other._require_fit().predicted

    def same_labels(self, other: "ColdStartClassifier") -> bool:
        """Whether ``other`` is fitted on the same items and labels (so its state applies here)."""
        mine, theirs = self._require_fit(), other._require_fit()
        return (mine.state.shape == theirs.state.shape and np.array_equal(mine.labelled_rows, theirs.labelled_rows)
                and np.array_equal(mine.labelled_classes, theirs.labelled_classes))

    def calibration(self, pause: Pause | None = None) -> tuple[float, bool, np.ndarray | None]:
        """beta for the current labels, whether it was fitted on them, and the out-of-fold
        distributions (computed without changing the model: apply with :meth:`set_calibration`).

        ``pause``: called between steps (propagation sweeps, blocks of rows of a product), so
        that a caller computing this in the background can let other work go first there."""
        fit = self._require_fit()
        logits = self._current_logits(fit, fit.labelled_rows, fit.labelled_classes, pause=pause)
        return self._calibrate(fit.vectors, fit.graph, fit.labelled_rows, fit.labelled_classes, fit.state,
                               self._current_prior(fit, logits, pause), pause=pause)

    def set_calibration(self, beta: float, fitted: bool) -> None:
        """Use ``beta`` from now on (and refresh the novelty cut-offs for the current labels)."""
        fit = self._require_fit()
        fit.beta, fit.beta_fitted = float(beta), bool(fitted)
        fit.novel_label_cut, fit.novel_prompt_cut = self._novelty_cuts(fit.vectors, fit.labelled_rows)

    def add_items(self, vectors: np.ndarray, ids: Sequence[str], texts: Sequence[str] | None = None) -> None:
        """Append unlabelled items to the graph (an upload) without rebuilding it; ``texts``:
        theirs, needed when the graph has its second view (the fit was given texts)."""
        fit = self._require_fit()
        n_old = len(fit.index.ids)
        fit.index.update(list(map(str, ids)), np.asarray(vectors, dtype=np.float32))
        row_texts = None
        if texts is not None:
            by_id = dict(zip(map(str, ids), map(str, texts)))
            row_texts = {row: by_id.get(fit.index.ids[row], "") for row in range(n_old, len(fit.index.ids))}
        self.add_index_rows(row_texts)

    def add_index_rows(self, texts: Mapping[int, str] | Sequence[str] | None = None) -> None:
        """Extend the graph with the rows appended to the fitted index since the fit (its new
        items link to their nearest items; warm-started propagation from them). ``texts``: the
        text of each index row (a sequence over every row, or a mapping of rows to texts), needed
        for the new rows when the graph has its second view, and for the rows they link to when
        the fit does not hold its texts (a restored fit)."""
        fit = self._require_fit()
        n_old, index = len(fit.vectors), fit.index
        if len(index.ids) <= n_old:
            return
        all_vectors = index.vectors
        new_rows = np.arange(n_old, len(all_vectors))
        if self.transductive:
            nb, _ = index.neighbour_table(GRAPH_CANDIDATES, rows=new_rows)
            features = None
            if fit.topics is not None:
                text_of = _row_texts(texts, fit.texts)
                # Only the new rows and the rows they link to are read (np.zeros leaves the other
                # pages unwritten: at a million rows the full array would be a gigabyte).
                needed = np.union1d(new_rows, nb[nb >= 0])
                features = np.zeros((len(all_vectors), fit.topics.dims), dtype=np.float32)
                features[needed] = fit.topics.transform([text_of(int(r)) for r in needed])
                if fit.texts is not None:
                    fit.texts = [*fit.texts, *(text_of(int(r)) for r in new_rows)]
            fit.graph = extend_graph(fit.graph, all_vectors, nb, features=features)
        else:
            fit.graph = empty_graph(all_vectors)
        fit.vectors, fit.ids = all_vectors, list(index.ids)
        logits_new = self._logits(all_vectors[n_old:], fit.vectors[fit.labelled_rows], fit.labelled_classes)
        prior_new = _softmax(PRIOR_SCALE * (logits_new + fit.bias))
        fit.logits = np.vstack([fit.logits, logits_new])
        fit.prior = np.vstack([fit.prior, prior_new])
        start = np.vstack([fit.state, prior_new])
        fit.state = self._propagate(fit.graph, fit.prior, fit.labelled_rows, fit.labelled_classes, start=start, changed=new_rows)

    # -- predicting -------------------------------------------------------------------------
    def _require_fit(self) -> _Fit:
        fit = getattr(self, "_fit", None)
        if fit is None:
            raise NotReadyError("the classifier is not fitted yet: call fit() first")
        return fit

    def __sklearn_is_fitted__(self) -> bool:
        return getattr(self, "_fit", None) is not None

    @property
    def label_distributions_(self) -> np.ndarray:
        """Calibrated distributions ``(n_items, n_classes)`` of every fitted item (labelled first,
        then unlabelled; a labelled item is its label)."""
        fit = self._require_fit()
        return self._calibrated(distributions(fit.state))

    @property
    def transduction_(self) -> np.ndarray:
        """The class of every fitted item: its label when labelled, else the most likely one."""
        return self.classes_[self._current_classes()]

    @property
    def beta_(self) -> float:
        """The calibration exponent in use."""
        return self._require_fit().beta

    def _calibrated(self, dist: np.ndarray) -> np.ndarray:
        beta = self._require_fit().beta
        # A zero stays zero (a labelled item is its label, whatever beta is): log 0 = -inf.
        with np.errstate(divide="ignore"):
            return _softmax(beta * np.log(np.asarray(dist, dtype=np.float64)))

    def _rows_and_distributions(
        self, vectors: np.ndarray, ids: Sequence[str] | None = None, look_alikes: bool = True,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Per query: its own graph row (by id; -1 when it is not a fitted item), uncalibrated
        distribution, nearest items and cosines. A fitted item takes its propagated distribution
        and its graph neighbours (no index search); a query whose vector equals a fitted item's
        takes that item's distribution; any other is one propagation step from its index
        neighbours."""
        fit = self._require_fit()
        dist_all = distributions(fit.state)
        n = len(vectors)
        out = np.empty((n, len(self.classes_)), dtype=np.float32)
        own_rows = np.full(n, -1, dtype=np.int64)
        if ids is not None:
            for q, item_id in enumerate(ids):
                row = fit.index.row_of(str(item_id))
                if row is not None and row < len(dist_all):
                    own_rows[q] = row
        known = own_rows >= 0
        nb_rows = np.full((n, GRAPH_K), -1, dtype=np.int64)
        nb_sims = np.full((n, GRAPH_K), -np.inf, dtype=np.float32)
        if known.any():
            out[known] = dist_all[own_rows[known]]
            matrix = fit.graph.matrix
            if look_alikes and matrix.shape[0] > int(own_rows[known].max()):  # only explain() shows them
                for q in np.flatnonzero(known):
                    start, stop = matrix.indptr[own_rows[q]], matrix.indptr[own_rows[q] + 1]
                    cols = matrix.indices[start:stop]
                    order = np.argsort(-matrix.data[start:stop])[:GRAPH_K]
                    nb_rows[q, : len(order)] = cols[order]
                    nb_sims[q, : len(order)] = fit.vectors[cols[order]] @ vectors[q]
        rest = np.flatnonzero(~known)
        if len(rest) == 0:
            return own_rows, out, nb_rows, nb_sims
        rows, sims = fit.index.search_rows(vectors[rest], GRAPH_K)
        nb_rows[rest, : rows.shape[1]] = rows
        nb_sims[rest, : sims.shape[1]] = sims
        same = (sims[:, 0] > 0.99999) & (rows[:, 0] >= 0) if sims.shape[1] else np.zeros(len(rest), bool)
        if same.any():
            out[rest[same]] = dist_all[rows[same, 0]]
        new = rest[~same]
        if len(new):
            prior = self._prior(vectors[new], fit.vectors[fit.labelled_rows], fit.labelled_classes, fit.bias)
            if self.transductive and rows.shape[1]:
                r, w_sims = rows[~same], sims[~same]
                w = np.where(r >= 0, np.maximum(w_sims, 0.0) ** 3, 0.0)
                neighbour_dist = np.einsum("qk,qkc->qc", w, dist_all[np.clip(r, 0, None)])
                total = w.sum(axis=1, keepdims=True)
                out[new] = np.where(
                    total > 0, self.alpha * neighbour_dist / np.maximum(total, 1e-12) + (1 - self.alpha) * prior, prior
                )
            else:
                out[new] = prior
        return own_rows, out, nb_rows, nb_sims

    def predict_proba(self, X: Sequence[str] | np.ndarray, ids: Sequence[str] | None = None) -> np.ndarray:
        """Calibrated probabilities ``(n, len(classes_))``; rows sum to 1. ``ids``: the queries'
        item ids, so a fitted item gets its own propagated distribution."""
        vectors = self._embed(X)
        return self._calibrated(self._rows_and_distributions(vectors, ids, look_alikes=False)[1])

    def predict(self, X: Sequence[str] | np.ndarray) -> np.ndarray:
        """The most likely category per item."""
        return self.classes_[self.predict_proba(X).argmax(axis=1)]

    def explain(
        self, X: Sequence[str] | np.ndarray, unsure_below: float = 0.5, top_k: int = 3, n_evidence: int = 3,
        ids: Sequence[str] | None = None,
    ) -> list[Prediction]:
        """Top categories, unsure and novel flags, nearest labelled examples and the graph's
        look-alikes that agree or disagree, per item. ``ids`` name the queries, so a fitted item
        is not its own evidence or look-alike."""
        fit = self._require_fit()
        vectors = self._embed(X)
        own_rows, dist, nb_rows, nb_sims = self._rows_and_distributions(vectors, ids)
        proba = self._calibrated(dist)
        prompts = self.prompt_vectors_
        assert prompts is not None
        prompt_sim = vectors @ prompts.T
        top_idx = np.argsort(-proba, axis=1)[:, :top_k]
        label_vectors = fit.vectors[fit.labelled_rows]
        ev_idx, ev_sim = top_k_cosine(vectors, label_vectors, n_evidence + 1)
        current = self._current_classes()
        out = []
        for q in range(len(vectors)):
            top = [(str(self.classes_[j]), float(proba[q, j])) for j in top_idx[q]]
            evidence = [
                (fit.ids[fit.labelled_rows[j]], str(self.classes_[fit.labelled_classes[j]]), float(s))
                for j, s in zip(ev_idx[q], ev_sim[q]) if fit.labelled_rows[j] != own_rows[q]
            ][:n_evidence]
            best = top_idx[q, 0]
            lookalikes = [r for r in nb_rows[q] if r >= 0 and r != own_rows[q]]
            agree = sum(current[r] == best for r in lookalikes)
            best_label_sim = float(ev_sim[q, 0]) if ev_sim.shape[1] else -1.0
            novel = float(prompt_sim[q].max()) < fit.novel_prompt_cut and (
                fit.novel_label_cut is None or best_label_sim < fit.novel_label_cut
            )
            out.append(Prediction(
                top=top,
                unsure=top[0][1] < unsure_below or novel,
                evidence=evidence,
                prompt_similarity=float(prompt_sim[q, best]),
                novel=bool(novel),
                lookalikes_agree=int(agree),
                lookalikes_disagree=int(len(lookalikes) - agree),
            ))
        return out

    def fitted_predictions(self, unsure_below: float = 0.5) -> pd.DataFrame:
        """Every live fitted item's prediction at once: item_id, predicted, confidence, unsure,
        novel, equal to :meth:`explain` of those items (without evidence or look-alikes), but
        vectorised: the whole workspace's view after every label (a second at a million items,
        where :meth:`explain` loops in Python)."""
        fit = self._require_fit()
        best, confidence, novel = self._prediction_arrays(fit)
        rows = np.flatnonzero(fit.index.alive[: len(fit.ids)])
        best, confidence, novel = best[rows], confidence[rows], novel[rows]
        # Text columns built as Arrow arrays (pandas' own string type): from Python objects they
        # took 0.4 s of a label's refresh at a million items, from an Arrow take 0.01 s.
        if fit.id_array is None or fit.id_array[0] is not fit.ids:
            fit.id_array = (fit.ids, pd.array(fit.ids, dtype="str"))
        ids = fit.id_array[1] if len(rows) == len(fit.ids) else fit.id_array[1].take(rows)
        names = pa.array([str(c) for c in self.classes_], pa.large_string())
        return pd.DataFrame({
            "item_id": ids,
            "predicted": pd.array(names.take(pa.array(best)), dtype="str"),
            "confidence": confidence.astype(float),
            "unsure": (confidence < unsure_below) | novel,
            "novel": novel,
        })

    def _prediction_arrays(self, fit: _Fit) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Every fitted row's best class, its calibrated probability and the novel flag; from the
        previous arrays where the state, beta and novelty inputs of a row are unchanged."""
        best_prompt, best_label = self._nearest_similarities(fit)
        inputs = (fit.beta, fit.novel_prompt_cut, fit.novel_label_cut, len(fit.state))
        cached = fit.predicted
        if cached is not None and cached[0] == inputs:
            _, state, prompt, label, best, confidence, novel, second = cached
            moved = state is not fit.state
            todo = np.flatnonzero(
                (np.any(state != fit.state, axis=1) if moved else np.zeros(len(best), dtype=bool))
                | (prompt != best_prompt) | (label != best_label)
            )
            best, confidence, novel, second = best.copy(), confidence.copy(), novel.copy(), second.copy()
        else:
            todo = np.arange(len(fit.state))
            best = np.zeros(len(todo), dtype=np.int64)
            confidence = np.zeros(len(todo), dtype=np.float32)
            second = np.zeros(len(todo), dtype=np.float32)
            novel = np.zeros(len(todo), dtype=bool)
        for start in range(0, len(todo), 200_000):
            rows = todo[start : start + 200_000]
            proba = self._calibrated(distributions(fit.state[rows]))
            best[rows] = proba.argmax(axis=1)
            confidence[rows] = proba[np.arange(len(rows)), best[rows]]
            second[rows] = -np.partition(-proba, 1, axis=1)[:, 1] if proba.shape[1] > 1 else 0.0
            is_novel = best_prompt[rows] < fit.novel_prompt_cut
            if fit.novel_label_cut is not None:
                is_novel &= best_label[rows] < fit.novel_label_cut
            novel[rows] = is_novel
        fit.predicted = (inputs, fit.state, best_prompt, best_label, best, confidence, novel, second)
        return best, confidence, novel

    def fitted_top_two(self) -> tuple[np.ndarray, np.ndarray]:
        """Every fitted row's two highest calibrated probabilities (kept with
        :meth:`fitted_predictions`, so after a label only the rows that moved are redone)."""
        fit = self._require_fit()
        self._prediction_arrays(fit)
        assert fit.predicted is not None
        return fit.predicted[5], fit.predicted[7]  # type: ignore[return-value]

    def _nearest_similarities(self, fit: _Fit) -> tuple[np.ndarray, np.ndarray]:
        """Every fitted row's best cosine to a prompt and to a labelled item (``-inf`` without
        labels), updated from the cached ones when labels were only added."""
        prompts = self.prompt_vectors_
        assert prompts is not None
        n, labelled = len(fit.vectors), frozenset(fit.labelled_rows.tolist())
        cached = fit.nearest
        if cached is not None and cached[1] <= labelled and cached[0] <= n:
            done, known, best_prompt, best_label = cached
            best_prompt = np.concatenate([best_prompt, _max_cosine(fit.vectors[done:], prompts)])
            best_label = np.concatenate([best_label, _max_cosine(fit.vectors[done:], fit.vectors[sorted(known)])])
            added = sorted(labelled - known)
            if added:
                best_label = np.maximum(best_label, _max_cosine(fit.vectors, fit.vectors[added]))
        else:
            best_prompt = _max_cosine(fit.vectors, prompts)
            best_label = _max_cosine(fit.vectors, fit.vectors[fit.labelled_rows])
        fit.nearest = (n, labelled, best_prompt, best_label)
        return best_prompt, best_label

    def _current_classes(self) -> np.ndarray:
        """Every fitted item's current class: its label, else its predicted class."""
        fit = self._require_fit()
        current = fit.state.argmax(axis=1)
        current[fit.labelled_rows] = fit.labelled_classes
        return current

    # -- helpers ----------------------------------------------------------------------------
    def _embed(self, X: Sequence[str] | np.ndarray) -> np.ndarray:
        if isinstance(X, np.ndarray) and X.dtype != object:
            return np.ascontiguousarray(X, dtype=np.float32)
        texts = [str(t) for t in X]
        encoder = self.encoder if self.encoder is not None else getattr(self, "encoder_", None)
        if encoder is None:  # a bundled model, loaded once (the parameter stays as given)
            from .encoder import bundled_source, load_encoder
            from .language import choose_encoder

            # The one the language rule picks for the first texts embedded (coldrec.language).
            encoder = self.encoder_ = load_encoder(bundled_source(choose_encoder(texts)))
        from .encoder import embed_texts

        return embed_texts(encoder, texts)  # type: ignore[arg-type]


def _row_texts(given: Mapping[int, str] | Sequence[str] | None, held: Sequence[str] | None) -> Callable[[int], str]:
    """The text of an index row: from ``given`` (every row's, or a mapping), else from the fit's
    own ``held`` texts; a row in neither is an error (the text view cannot weigh its edges)."""

    def text_of(row: int) -> str:
        if isinstance(given, Mapping) and row in given:
            return str(given[row])
        if given is not None and not isinstance(given, Mapping) and row < len(given):
            return str(given[row])
        if held is not None and row < len(held):
            return str(held[row])
        raise ValueError(f"this graph has a text view: add_index_rows needs the text of row {row}")

    return text_of


def _are_texts(X: object) -> bool:
    """Whether ``X`` is a list of texts (not vectors)."""
    return X is not None and not (isinstance(X, np.ndarray) and X.dtype != object)


def _max_cosine(vectors: np.ndarray, others: np.ndarray) -> np.ndarray:
    """Each row's largest dot product with ``others`` (``-inf`` when there are none), in chunks."""
    out = np.full(len(vectors), -np.inf, dtype=np.float32)
    if len(others) == 0:
        return out
    for start in range(0, len(vectors), 50_000):
        out[start : start + 50_000] = (vectors[start : start + 50_000] @ others.T).max(axis=1)
    return out


def calibration_folds(classes: np.ndarray, n_folds: int = CALIBRATION_FOLDS) -> np.ndarray:
    """Each label's out-of-fold fold (-1: never hidden, a category's only label). Every category's
    labels are dealt from fold 0 on (in a seeded random order), so each fold hides about the same
    share of every category: with 4 labels each, 4 folds each hide one of every category. Dealt
    in one run across categories instead, a fold hid a label of a few categories only, whose
    held-out items then competed with 3 of their own labels against 4 of the others': an
    out-of-fold fit more wrong than the final one, so a beta that came out low (under-confident;
    issue 23, BENCHMARKS.md "Calibration at 4-8 labels")."""
    classes = np.asarray(classes, dtype=np.int64)
    folds = np.full(len(classes), -1, dtype=np.int64)
    rng = np.random.default_rng(0)
    for c in np.unique(classes):
        members = rng.permutation(np.flatnonzero(classes == c))
        if len(members) >= 2:
            folds[members] = np.arange(len(members)) % n_folds
    return folds


def fit_beta(dist: np.ndarray, y: np.ndarray) -> float:
    """The exponent ``beta`` maximising the likelihood of ``y`` under ``softmax(beta * log dist)``,
    but no larger than where the mean top probability reaches ``(n + 1) / (n + 2)`` for ``n``
    labels: Laplace's rule of succession, the accuracy ``n`` right answers out of ``n`` support
    (the target Platt 1999 gives a label).

    Without the bound, labels that are all predicted right (two easy categories) have no finite
    maximum-likelihood beta: it ran to the grid's end and every item, products of neither
    category too, came out at 0.99+ (a QA finding). With an error or two among the labels the
    likelihood's own optimum is already below the bound (a calibrated mean confidence is the
    accuracy, under ``n / (n + 1)``), so it changes nothing there."""
    logd = np.log(np.maximum(np.asarray(dist, dtype=np.float64), 1e-12))
    n = len(logd)
    if n == 0:
        return DEFAULT_BETA
    bound = (n + 1) / (n + 2)
    rows = np.arange(n)
    best, best_nll = float(_BETA_GRID[0]), np.inf
    for beta in _BETA_GRID:
        log_p = _log_softmax(beta * logd)
        if np.exp(log_p.max(axis=1)).mean() > bound and np.isfinite(best_nll):
            break  # the mean top probability only grows with beta: the rest of the grid is out too
        nll = -log_p[rows, y].mean()
        if nll < best_nll:
            best, best_nll = float(beta), nll
    return best


def fit_name_only_bias(x: np.ndarray, y: np.ndarray, class_sums: np.ndarray, prompts: np.ndarray) -> float:
    """The bias a category without labels gets on its prompt's cosine, fitted on the labels.

    A prompt is one short sentence, a labelled category's vector an average of real product
    texts, which is closer to every product; without a correction a category that has only its
    name scores below every label-rich one and is never predicted (issue 22). So the workspace's
    own labels simulate it: each labelled category in turn loses its labels and keeps its prompt
    plus ``b``; every labelled item is scored against the categories' vectors (its own without
    it, leave-one-out) and the bias is the ``b`` >= 0 at which the most of them are right, summed
    over the categories hidden in turn (the middle of the best range). Nearest-vector scores,
    before propagation. ``class_sums``: each category's sum of labelled vectors plus its weighted
    prompt (:meth:`ColdStartClassifier._class_sums`)."""
    x = np.asarray(x, dtype=np.float32)
    labelled = np.flatnonzero(np.bincount(y, minlength=len(prompts)) > 0)
    if len(labelled) < 2:
        return 0.0
    vectors = class_sums[labelled] / np.maximum(np.linalg.norm(class_sums[labelled], axis=1, keepdims=True), 1e-9)
    position = np.searchsorted(labelled, y)
    scores = x @ vectors.T
    own = class_sums[y] - x  # leave-one-out: the item's own category without it
    own_score = np.einsum("id,id->i", x, own) / np.maximum(np.linalg.norm(own, axis=1), 1e-9)
    rows = np.arange(len(x))
    scores[rows, position] = own_score
    prompt_scores = x @ prompts[labelled].T
    # Best other category when category j is hidden: the top score, or the second when j is top.
    top2 = -np.partition(-scores, 1, axis=1)[:, :2] if scores.shape[1] > 1 else np.repeat(scores, 2, axis=1)
    top2.sort(axis=1)
    best, second = top2[:, 1], top2[:, 0]
    best_without = np.where(scores >= best[:, None], second[:, None], best[:, None])  # (items, categories)
    hidden_own = position[:, None] == np.arange(len(labelled))[None, :]
    # An item of the hidden category is right when its prompt score + b beats the best other one;
    # any other item when its own category is the best of the rest and beats the prompt + b.
    wins_above = (best_without - prompt_scores)[hidden_own]
    stays_right = ~hidden_own & (own_score[:, None] >= best_without)
    wins_below = (own_score[:, None] - prompt_scores)[stays_right]
    grid = np.linspace(0.0, max(float(wins_above.max(initial=0.0)), float(wins_below.max(initial=0.0)), 0.0), 1025)
    right = (np.searchsorted(np.sort(wins_above), grid, side="left")
             + len(wins_below) - np.searchsorted(np.sort(wins_below), grid, side="right"))
    top = np.flatnonzero(right == right.max())
    return float(grid[top[len(top) // 2]])


def confidence_matching_beta(dist: np.ndarray, prior: np.ndarray, sample: int = 20_000) -> float:
    """The ``beta`` >= 1 at which the mean top probability of ``softmax(beta * log dist)`` equals
    the mean top probability of ``prior`` (the target distributions; on up to ``sample`` rows;
    bisection)."""
    if len(dist) == 0:
        return DEFAULT_BETA
    if len(dist) > sample:
        pick = np.random.default_rng(0).choice(len(dist), sample, replace=False)
        dist, prior = dist[pick], prior[pick]
    target = float(prior.max(axis=1).mean())
    logd = np.log(np.maximum(np.asarray(dist, dtype=np.float64), 1e-12))

    def confidence(beta: float) -> float:
        return float(np.exp(_log_softmax(beta * logd)).max(axis=1).mean())

    lo, hi = 1.0, float(_BETA_GRID[-1])
    if confidence(lo) >= target:
        return lo
    if confidence(hi) <= target:
        return hi
    for _ in range(30):
        mid = (lo * hi) ** 0.5
        lo, hi = (mid, hi) if confidence(mid) < target else (lo, mid)
    return round((lo * hi) ** 0.5, 4)


def _log_softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def _softmax(z: np.ndarray) -> np.ndarray:
    return np.exp(_log_softmax(np.asarray(z, dtype=np.float64))).astype(np.float32)
