"""Active learning: which unlabelled items a merchandiser should label next.

A query strategy ranks the unlabelled candidates from the current model's probabilities
(and, for the diversity-aware strategy, their embeddings):

* ``random``: a seeded shuffle (the baseline every strategy is measured against).
* ``least-confidence``: lowest top probability first.
* ``margin``: smallest gap between the two most likely categories first.
* ``entropy``: highest entropy of the predicted distribution first.
* ``cluster-margin``: the most margin-uncertain candidates, spread out: k-means groups a pool
  of the most uncertain candidates into ``n`` clusters and the most uncertain item of each
  cluster is taken, so two near-identical listings are not both asked for.

With zero labels the classifier is zero-shot (category prompts), so every strategy works from
the first query. The measured curves are in BENCHMARKS.md ("Active learning").
"""

from __future__ import annotations

import warnings

import numpy as np

from .errors import ConfigError

#: Query strategies, in the order the dashboard offers them.
STRATEGIES: tuple[str, ...] = ("random", "least-confidence", "margin", "entropy", "cluster-margin")
#: Strategies scored by :func:`uncertainty` (``cluster-margin`` uses the margin score).
UNCERTAINTY_STRATEGIES: tuple[str, ...] = ("least-confidence", "margin", "entropy", "cluster-margin")
#: ``cluster-margin`` clusters the ``CLUSTER_POOL_FACTOR * n`` most uncertain candidates (measured).
CLUSTER_POOL_FACTOR = 10


def _check(strategy: str) -> None:
    if strategy not in STRATEGIES:
        raise ConfigError(f"unknown query strategy {strategy!r}; valid strategies: {', '.join(STRATEGIES)}")


def uncertainty(strategy: str, proba: np.ndarray) -> np.ndarray:
    """Usefulness score per row of ``proba`` (higher = label it sooner).

    ``least-confidence``: 1 - top probability; ``margin`` and ``cluster-margin``: 1 - (top1 - top2);
    ``entropy``: entropy in nats. ``random`` does not score items: all zeros.
    """
    _check(strategy)
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2:
        raise ValueError(f"proba must be (n_items, n_categories), got shape {proba.shape}")
    if len(proba) == 0:
        return np.zeros(0)
    if strategy == "random":
        return np.zeros(len(proba))
    if strategy == "least-confidence":
        return 1.0 - proba.max(axis=1)
    if strategy == "entropy":
        p = np.clip(proba, 1e-12, 1.0)
        return -(proba * np.log(p)).sum(axis=1)
    if proba.shape[1] < 2:
        return np.zeros(len(proba))
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    return 1.0 - (top2[:, 0] - top2[:, 1])


def rank_unlabelled(strategy: str, proba: np.ndarray, vectors: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Indices (rows of ``proba``/``vectors``) of the ``n`` candidates to label next, most useful first.

    ``proba`` is the current model's ``(n_candidates, n_categories)`` probabilities and
    ``vectors`` the candidates' unit embeddings. Deterministic for a given ``seed``; fewer than
    ``n`` indices only when there are fewer candidates.
    """
    _check(strategy)
    proba = np.asarray(proba)
    total = len(proba)
    if vectors is not None and len(vectors) != total:
        raise ValueError(f"proba has {total} rows but vectors has {len(vectors)}")
    n = min(int(n), total)
    if n <= 0:
        return np.zeros(0, dtype=np.int64)
    if strategy == "random":
        return np.random.default_rng(seed).permutation(total)[:n].astype(np.int64)
    score = uncertainty(strategy, proba)
    order = np.argsort(-score, kind="stable")
    if strategy != "cluster-margin" or n == 1:
        return order[:n].astype(np.int64)
    return _cluster_pick(order, score, np.asarray(vectors, dtype=np.float32), n, seed)


def _cluster_pick(order: np.ndarray, score: np.ndarray, vectors: np.ndarray, n: int, seed: int) -> np.ndarray:
    """The most uncertain item of each of ``n`` k-means clusters of the uncertain pool."""
    from sklearn.cluster import KMeans

    pool = order[: min(len(order), CLUSTER_POOL_FACTOR * n)]
    if len(pool) <= n:
        return pool.astype(np.int64)
    with warnings.catch_warnings():
        # Fewer distinct points than clusters (exact duplicates) is handled below.
        warnings.simplefilter("ignore")
        clusters = KMeans(n_clusters=n, n_init=3, random_state=seed).fit_predict(vectors[pool])
    chosen: list[int] = []
    seen: set[int] = set()
    for item, cluster in zip(pool, clusters):  # pool is most uncertain first
        if cluster not in seen:
            seen.add(int(cluster))
            chosen.append(int(item))
    if len(chosen) < n:  # duplicates collapsed clusters: fill with the next most uncertain
        taken = set(chosen)
        chosen += [int(i) for i in pool if int(i) not in taken][: n - len(chosen)]
    chosen.sort(key=lambda i: -score[i])
    return np.array(chosen[:n], dtype=np.int64)
