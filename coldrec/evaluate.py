"""Few-shot evaluation protocol and baselines (what ``python -m coldrec evaluate`` runs).

Protocol: drop rows with empty labels; de-duplicate by text; keep classes with at least
``min_per_class`` rows. Per seed: a random test set; per k, k labelled examples per class
drawn from the remaining rows, excluding rows whose title also occurs in the test set
(the same product in other sizes or colours would leak the answer). k = 0 is zero-shot
from class names (and descriptions when given).

Active learning (:func:`run_active_learning`): per seed the same test set; starting from zero
labels, a query strategy picks ``step`` items at a time from the pool (every row not in the
test set and not sharing a title with it), their true labels are revealed, and accuracy is
recorded after each step until ``budget`` labels.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from .classify import category_prompt
from .estimator import PRIOR_SCALE, ColdStartClassifier
from .encoder import TextEncoder, embed_texts
from .errors import ConfigError, DataImportError
from .ingest import OPERATOR_FILES, clean_text, item_text, read_table

METHODS = ("coldrec", "coldrec-inductive", "prototype", "tfidf-logreg", "coldrec+finetune")
#: What :func:`run_evaluation` and ``evaluate`` run unless told otherwise.
DEFAULT_METHODS = ("coldrec", "coldrec-inductive", "prototype", "tfidf-logreg")


@dataclass
class LabelledData:
    """Texts with labels ready for the protocol."""

    texts: list[str]
    groups: list[str]
    labels: np.ndarray
    classes: list[str]
    name: str


def load_labelled(
    path: str | Path, text_cols: Sequence[str], label_col: str, min_per_class: int = 10
) -> LabelledData:
    """Read ``path`` (any ingest format) and apply the protocol's cleaning steps."""
    frame = read_table(path, limits=OPERATOR_FILES)
    missing = [c for c in [*text_cols, label_col] if c not in frame.columns]
    if missing:
        raise DataImportError(f"{Path(path).name}: column(s) {missing} not found; columns are {list(frame.columns)}")
    labels = frame[label_col].map(clean_text)
    parts = [frame[c].map(clean_text) for c in text_cols]
    title = parts[0]
    rest = pd.Series([". ".join(p for p in row if p) for row in zip(*parts[1:])], index=frame.index) if len(
        parts
    ) > 1 else pd.Series([""] * len(frame), index=frame.index)
    texts = pd.Series([item_text(t, d) for t, d in zip(title, rest)], index=frame.index)
    data = pd.DataFrame({"text": texts, "group": title.str.lower(), "label": labels})
    data = data[(data["label"] != "") & (data["text"] != "")]
    data = data.drop_duplicates("text")
    counts = data["label"].value_counts()
    data = data[data["label"].isin(counts[counts >= min_per_class].index)].reset_index(drop=True)
    classes = sorted(data["label"].unique())
    index = {c: i for i, c in enumerate(classes)}
    return LabelledData(
        texts=data["text"].tolist(),
        groups=data["group"].tolist(),
        labels=data["label"].map(index).to_numpy(),
        classes=classes,
        name=Path(path).name,
    )


@dataclass
class Split:
    """Test rows, per k support rows, and the pool the support is drawn from, of one seed."""

    seed: int
    test: np.ndarray
    support: dict[int, np.ndarray]
    #: Rows not in the test set and sharing no title with it (where labels may come from).
    pool: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def make_splits(data: LabelledData, shots: Sequence[int], seeds: int, test_size: int) -> list[Split]:
    """Deterministic test and support draws for each seed."""
    n = len(data.texts)
    groups = np.array(data.groups)
    splits = []
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        test = np.sort(rng.choice(n, size=min(test_size, n - 1), replace=False))
        pool_mask = np.ones(n, dtype=bool)
        pool_mask[test] = False
        pool_mask &= ~np.isin(groups, groups[test])
        pool = np.flatnonzero(pool_mask)
        support: dict[int, np.ndarray] = {}
        for k in shots:
            chosen = []
            for c in range(len(data.classes)):
                rows = pool[data.labels[pool] == c]
                if k > 0 and len(rows):
                    chosen.extend(rng.choice(rows, size=min(k, len(rows)), replace=False).tolist())
            support[k] = np.array(sorted(chosen), dtype=np.int64)
        splits.append(Split(seed=seed, test=test, support=support, pool=pool))
    return splits


def _metrics(y_true: np.ndarray, proba: np.ndarray | None, y_pred: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import f1_score, roc_auc_score

    out = {
        "accuracy": float((y_true == y_pred).mean()),
        "macro_f1": float(f1_score(y_true, y_pred, labels=np.unique(y_true), average="macro", zero_division=0)),
    }
    if proba is not None:
        present = np.unique(y_true)
        p = proba[:, present]
        p = p / p.sum(axis=1, keepdims=True).clip(min=1e-12)
        out["macro_auc"] = float(
            roc_auc_score(y_true, p, multi_class="ovr", average="macro", labels=present)
        ) if len(present) > 2 else float("nan")
        out["ece"] = expected_calibration_error(y_true, proba)
    return out


def expected_calibration_error(y_true: np.ndarray, proba: np.ndarray, bins: int = 10) -> float:
    """Gap between confidence and accuracy of the top prediction, averaged over 10 confidence bins."""
    conf = proba.max(axis=1)
    correct = proba.argmax(axis=1) == y_true
    edges = np.linspace(0, 1, bins + 1)
    ece = 0.0
    for lo, hi in zip(edges[:-1], edges[1:]):
        mask = (conf > lo) & (conf <= hi)
        if mask.any():
            ece += mask.mean() * abs(conf[mask].mean() - correct[mask].mean())
    return float(ece)




def run_evaluation(
    data: LabelledData,
    encoder: TextEncoder,
    shots: Sequence[int] = (0, 1, 4, 8, 16),
    seeds: int = 3,
    test_size: int = 2000,
    descriptions: dict[str, str] | None = None,
    methods: Sequence[str] = DEFAULT_METHODS,
    log: Callable[[str], None] = lambda message: None,
    cache: object | None = None,
    finetune_options: dict[str, object] | None = None,
) -> dict[str, object]:
    """Run the protocol and return the result document written by ``evaluate --json``.

    ``coldrec`` is the product's predictor as the workspace runs it: it sees the texts of every
    row of the data (pool and test rows, never their labels) as unlabelled items, exactly as a
    workspace holds its whole catalog and every upload. ``coldrec-inductive`` is the same
    predictor given only the support set. ``cache``: an embedding cache (a :class:`~coldrec.store.Store`).
    ``coldrec+finetune`` fine-tunes the encoder on each seed's support set
    (:func:`coldrec.finetune.finetune_for_evaluation` with ``finetune_options``), re-embeds the
    test and support rows and the prompts with it, then runs the product's predictor with those
    rows as its graph (re-embedding the whole pool per fit would cost minutes on a CPU); its rows
    add ``fit_s`` (training seconds per fit), ``train_steps`` and ``reembed_s``.
    """
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise ConfigError(f"unknown method(s) {unknown}; valid methods: {', '.join(METHODS)}")
    splits = make_splits(data, shots, seeds, test_size)
    parts = [np.concatenate([s.test, *s.support.values()]) for s in splits]
    if "coldrec" in methods:
        parts.append(np.arange(len(data.texts)))
    vectors, prompts, per_s = _embed(data, encoder, parts, descriptions, log, cache)

    shared = _shared_graph(vectors, data.texts) if "coldrec" in methods else None
    results = []
    for method in methods:
        for k in shots:
            if method in ("prototype", "tfidf-logreg") and k == 0:
                continue  # baselines need labelled examples
            runs = []
            for split in splits:
                sup = split.support[k]
                y_true = data.labels[split.test]
                started = time.perf_counter()
                fit_figures: dict[str, float] = {}
                if method in ("coldrec", "coldrec-inductive"):
                    proba = predictor_proba(data, vectors, prompts, sup, split.test, transductive=method == "coldrec",
                                            shared=shared)
                elif method == "coldrec+finetune":
                    from .finetune import finetune_for_evaluation

                    descriptions_ = descriptions or {}
                    prompt_texts = [category_prompt(c, descriptions_.get(c)) for c in data.classes]
                    tuned, fit = finetune_for_evaluation(
                        encoder, [data.texts[i] for i in sup], [data.classes[i] for i in data.labels[sup]],
                        dict(zip(data.classes, prompt_texts)), seed=split.seed, **(finetune_options or {}),
                    )
                    rows = np.concatenate([split.test, sup])
                    reembed = time.perf_counter()
                    tuned_vectors = tuned.encode([data.texts[i] for i in rows])
                    fit_figures = {"fit_s": fit.seconds, "train_steps": float(fit.steps),
                                   "reembed_s": time.perf_counter() - reembed}
                    model = ColdStartClassifier().fit_rows(
                        tuned_vectors, [str(i) for i in rows], np.arange(len(split.test), len(rows)), data.labels[sup],
                        data.classes, tuned.encode(prompt_texts),
                    )
                    proba = model.label_distributions_[: len(split.test)]
                elif method == "prototype":
                    proba = _prototype_proba(vectors[sup], data.labels[sup], vectors[split.test], len(data.classes))
                elif method == "tfidf-logreg":
                    proba = _tfidf_logreg(data, sup, split.test)
                else:
                    raise ValueError(f"unknown method {method!r}")
                runs.append({**_metrics(y_true, proba, proba.argmax(axis=1)), **fit_figures,
                             "fit_predict_s": time.perf_counter() - started})
            row = _mean_row(runs, method=method, shots=int(k))
            results.append(row)
            log(f"{method:>21} k={k:<3} accuracy={row['accuracy']:.3f} macro_f1={row['macro_f1']:.3f} ece={row.get('ece', float('nan')):.3f}"
                + (f" fit_s={row['fit_s']:.0f}" if "fit_s" in row else ""))
    header = _document_header(data, encoder, per_s)
    if "coldrec+finetune" in methods:
        from .finetune import DEFAULT_EPOCHS, DEFAULT_METHOD

        header["finetune"] = {"method": DEFAULT_METHOD, "epochs": DEFAULT_EPOCHS, **(finetune_options or {})}
    return {**header, "results": results}


def _shared_graph(vectors: np.ndarray, texts: Sequence[str] | None = None) -> tuple[object, object]:
    """The index and graph over every row, built once: every seed and k fits on the same items,
    as a workspace keeps one graph while labels change. ``texts`` (every row's): the graph has
    the text view the workspace's has (:mod:`coldrec.text_features`); without, the embedding's alone."""
    from .neighbours import VectorIndex

    index = VectorIndex.build([str(i) for i in range(len(vectors))], vectors)
    return index, ColdStartClassifier().item_graph(vectors, index, texts)


def predictor_proba(
    data: LabelledData, vectors: np.ndarray, prompts: np.ndarray, support: np.ndarray, test: np.ndarray,
    transductive: bool = True, shared: tuple[object, object] | None = None,
) -> np.ndarray:
    """The product's predictor fitted on ``support`` (and, transductively, every row's vector as
    unlabelled), probabilities for ``test``. ``shared``: the (index, graph) of every row."""
    model = ColdStartClassifier(transductive=transductive)
    if transductive:
        index, graph = shared if shared is not None else (None, None)
        model.fit_rows(vectors, [str(i) for i in range(len(vectors))], support, data.labels[support], data.classes,
                       prompts, graph=graph, index=index)  # type: ignore[arg-type]
        return model.label_distributions_[test]  # the test rows are fitted items: their propagated distributions
    else:
        model.fit_rows(vectors[support], [str(i) for i in support], np.arange(len(support)), data.labels[support],
                       data.classes, prompts)
    return model.predict_proba(vectors[test])


def _prototype_proba(x: np.ndarray, y: np.ndarray, queries: np.ndarray, n_classes: int) -> np.ndarray:
    """Baseline: nearest class mean by cosine, softmax at the predictor's scale; a class without
    examples can never win."""
    sums = np.zeros((n_classes, x.shape[1] if x.ndim == 2 else queries.shape[1]), dtype=np.float32)
    np.add.at(sums, y, x)
    counts = np.bincount(y, minlength=n_classes)
    centres = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-9)
    logits = PRIOR_SCALE * (queries @ centres.T)
    logits[:, counts == 0] = -np.inf
    logits -= logits.max(axis=1, keepdims=True)
    proba = np.exp(logits)
    return proba / proba.sum(axis=1, keepdims=True)


def _mean_row(runs: Sequence[dict[str, float]], **keys: object) -> dict[str, object]:
    """``keys`` plus the mean and standard deviation over seeds of every metric in ``runs``."""
    row: dict[str, object] = {**keys, "seeds": len(runs)}
    for key in runs[0]:
        values = np.array([r[key] for r in runs], dtype=float)
        row[key] = round(float(np.mean(values)), 4)
        row[f"{key}_std"] = round(float(np.std(values)), 4)
    return row


def active_label_counts(budget: int, step: int) -> list[int]:
    """Label counts at which the curve is measured: 0, step, 2*step, ..., budget."""
    if step <= 0 or budget <= 0:
        raise ConfigError(f"--budget and --step must be positive (got budget={budget}, step={step})")
    if step > budget:
        raise ConfigError(f"--step ({step}) must not exceed --budget ({budget})")
    counts = list(range(0, budget + 1, step))
    return counts if counts[-1] == budget else [*counts, budget]


def run_active_learning(
    data: LabelledData,
    encoder: TextEncoder,
    strategies: Sequence[str],
    budget: int,
    step: int,
    seeds: int = 3,
    test_size: int = 2000,
    descriptions: dict[str, str] | None = None,
    log: Callable[[str], None] = lambda message: None,
    cache: object | None = None,
) -> dict[str, object]:
    """Active-learning curves per query strategy; the document written by ``evaluate --active``.

    Per seed: the test set of :func:`make_splits` (the same for every strategy) and its pool.
    From zero labels (zero-shot), each strategy ranks the unlabelled pool with the current
    model (:func:`coldrec.active.rank_unlabelled`), the top ``step`` get their true labels, the
    classifier is refitted, and the test metrics are recorded, until ``budget`` labels.
    Everything is embedded once. ``labels_to_match_random``: per strategy, the fewest labels
    whose mean accuracy reaches random's mean accuracy at ``budget`` (``None`` if never).
    """
    from .active import STRATEGIES, rank_unlabelled

    strategies = list(dict.fromkeys(strategies))
    unknown = [s for s in strategies if s not in STRATEGIES]
    if unknown or not strategies:
        raise ConfigError(f"unknown query strategy {unknown or strategies}; valid strategies: {', '.join(STRATEGIES)}")
    counts = active_label_counts(budget, step)
    splits = make_splits(data, [], seeds, test_size)
    vectors, prompts, per_s = _embed(data, encoder, [np.arange(len(data.texts))], descriptions, log, cache)
    all_ids = [str(i) for i in range(len(vectors))]
    shared = _shared_graph(vectors, data.texts)

    curves: dict[str, list[list[dict[str, float]]]] = {s: [[] for _ in counts] for s in strategies}
    for split in splits:
        y_true = data.labels[split.test]
        for strategy in strategies:
            labelled = np.zeros(0, dtype=np.int64)
            model = ColdStartClassifier().fit_rows(vectors, all_ids, labelled, data.labels[labelled], data.classes, prompts,
                                                   index=shared[0], graph=shared[1])  # type: ignore[arg-type]
            for i, n in enumerate(counts):
                if i:  # the workspace's path after a label: warm-started propagation, beta refitted
                    model.update_labels(labelled, data.labels[labelled], recalibrate=True)
                current = model.label_distributions_
                proba = current[split.test]
                metrics = _metrics(y_true, proba, proba.argmax(axis=1))
                metrics["classes_labelled"] = float(len(np.unique(data.labels[labelled])))
                curves[strategy][i].append(metrics)
                if i + 1 == len(counts):
                    break
                candidates = np.setdiff1d(split.pool, labelled)
                cand_proba = current[candidates] if strategy != "random" else np.zeros(
                    (len(candidates), len(data.classes))
                )
                pick = rank_unlabelled(
                    strategy, cand_proba, vectors[candidates], counts[i + 1] - n, seed=split.seed * 100_003 + n
                )
                labelled = np.concatenate([labelled, candidates[pick]])
            log(f"seed {split.seed} {strategy:>16}: accuracy {curves[strategy][0][-1]['accuracy']:.3f} at 0 labels, "
                f"{curves[strategy][-1][-1]['accuracy']:.3f} at {counts[-1]}")

    results = [
        _mean_row(runs, method=f"active:{strategy}", labels=n)
        for strategy in strategies
        for n, runs in zip(counts, curves[strategy])
    ]
    target = None
    to_match: dict[str, int | None] = {}
    if "random" in strategies:
        target = next(r["accuracy"] for r in results if r["method"] == "active:random" and r["labels"] == counts[-1])
        for strategy in strategies:
            hits = [r["labels"] for r in results if r["method"] == f"active:{strategy}" and r["accuracy"] >= target]
            to_match[strategy] = min(hits) if hits else None  # type: ignore[type-var]
    for strategy in strategies:
        final = results[(strategies.index(strategy) + 1) * len(counts) - 1]
        log(f"active:{strategy:>16} labels={counts[-1]} accuracy={final['accuracy']:.3f} macro_f1={final['macro_f1']:.3f}"
            + (f" reaches random@{counts[-1]} at {to_match[strategy]} labels" if to_match else ""))
    return {
        **_document_header(data, encoder, per_s),
        "active": {
            "budget": int(budget),
            "step": int(step),
            "seeds": int(seeds),
            "test_size": int(min(test_size, len(data.texts) - 1)),
            "pool_size": round(float(np.mean([len(s.pool) for s in splits])), 1),
        },
        "results": results,
        "random_accuracy_at_budget": target,
        "labels_to_match_random": to_match,
    }


def _embed(
    data: LabelledData,
    encoder: TextEncoder,
    parts: Sequence[np.ndarray],
    descriptions: dict[str, str] | None,
    log: Callable[[str], None],
    cache: object | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Vectors of the rows a run needs (each text once; other rows stay zero), the category
    prompts' vectors, and the embedding speed in texts per second."""
    needed = sorted({int(i) for part in parts for i in part})
    log(f"embedding {len(needed):,} texts with {encoder.name} on {encoder.device}")
    started = time.perf_counter()
    vectors = np.zeros((len(data.texts), encoder.dim), dtype=np.float32)
    vectors[needed] = embed_texts(encoder, [data.texts[i] for i in needed], cache=cache)  # type: ignore[arg-type]
    per_s = len(needed) / max(time.perf_counter() - started, 1e-9)
    descriptions = descriptions or {}
    prompts = embed_texts(encoder, [category_prompt(c, descriptions.get(c)) for c in data.classes])
    return vectors, prompts, per_s


def _document_header(data: LabelledData, encoder: TextEncoder, per_s: float) -> dict[str, object]:
    """What every result document starts with: the data, the model and its speed."""
    return {
        "dataset": data.name,
        "n_items": len(data.texts),
        "n_classes": len(data.classes),
        "model": encoder.name,
        "device": encoder.device,
        "embed_items_per_s": round(per_s, 1),
    }


def _tfidf_logreg(data: LabelledData, support: np.ndarray, test: np.ndarray) -> np.ndarray:
    """Baseline: word+character TF-IDF with logistic regression, trained on the support set."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline, make_union

    y = data.labels[support]
    proba = np.zeros((len(test), len(data.classes)))
    if len(np.unique(y)) < 2:
        proba[:, y[0] if len(y) else 0] = 1.0
        return proba
    features = make_union(
        TfidfVectorizer(sublinear_tf=True, ngram_range=(1, 2), min_df=1),
        TfidfVectorizer(sublinear_tf=True, analyzer="char_wb", ngram_range=(2, 5), min_df=1),
    )
    pipe = make_pipeline(features, LogisticRegression(C=10.0, max_iter=2000))
    pipe.fit([data.texts[i] for i in support], y)
    proba[:, pipe.classes_] = pipe.predict_proba([data.texts[i] for i in test])
    return proba
