"""Cold-start audiences: which shoppers a new product suits, from the content of what they bought.

Nobody has bought a new product, so its audience is inferred from its text: the catalog items
most similar to it (by embedding) stand in for it, and shoppers who bought those items, weighted by
similarity (to the fifth power) and by how recently they bought, are its likely audience. Each suggested shopper comes
with the reason: their purchases closest to the new product.

``profile`` is the other classic answer (a recency-weighted mean of each shopper's purchases,
compared with the new item by cosine); both are measured by :func:`evaluate_audience`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from .ingest import OPERATOR_FILES, IngestError, Limits, clean_text, format_rows, read_table
from .neighbours import top_k_cosine

INTERACTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "user", "customer_id", "customer", "shopper_id", "shopper", "client_id", "buyer_id"),
    "item_id": ("item_id", "item", "product_id", "product", "sku", "article"),
    "timestamp": ("timestamp", "ts", "time", "date", "order_date", "purchased_at", "created_at"),
    "order_number": ("order_number", "order", "order_no", "order_seq"),
    "quantity": ("quantity", "qty", "count", "units", "amount"),
}
#: Neighbours of a new item that vote for its audience, and the power of their similarity in the
#: vote (a grid on Instacart orders; BENCHMARKS.md): sharp weights let the closest items lead.
DEFAULT_NEIGHBOURS = 200
SIMILARITY_POWER = 5
#: A purchase's weight halves every this many orders (or days, without order numbers) back.
HALF_LIFE = 20.0


def load_interactions(
    data: bytes | str | Path,
    filename: str | None = None,
    known_items: Sequence[str] | None = None,
    limits: Limits = OPERATOR_FILES,
) -> pd.DataFrame:
    """Read purchases (CSV, Parquet, ... any ingest format) into user_id, item_id, timestamp,
    order_number, quantity. Raises :class:`IngestError` naming missing columns, unreadable values
    (with rows) and, when ``known_items`` is given, item ids that are not in the catalog.
    """
    name = filename or (Path(data).name if isinstance(data, (str, Path)) else "interactions")
    raw = read_table(data, name, limits)
    headers = {str(c).strip().lower().replace(" ", "_"): c for c in raw.columns}
    mapping = {}
    for canonical, names in INTERACTION_SYNONYMS.items():
        source = next((headers[n] for n in names if n in headers), None)
        if source is not None:
            mapping[canonical] = source
    missing = [c for c in ("user_id", "item_id") if c not in mapping]
    if missing:
        raise IngestError(
            f"{name}: missing column(s) {', '.join(missing)}; columns in the file: {', '.join(map(str, raw.columns))}"
        )
    out = pd.DataFrame(
        {"user_id": raw[mapping["user_id"]].map(_id_text), "item_id": raw[mapping["item_id"]].map(_id_text)}
    )
    blank = out.index[(out["user_id"] == "") | (out["item_id"] == "")].tolist()
    if blank:
        raise IngestError(f"{name}: empty user or item id in row(s) {_rows(blank)}")
    if "timestamp" in mapping:
        values = raw[mapping["timestamp"]].replace("", None)
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        bad = out.index[parsed.isna() & values.notna()].tolist()
        if bad:
            raise IngestError(f"{name}: column {mapping['timestamp']!r} is not a date/time in row(s) {_rows(bad)}")
        out["timestamp"] = parsed
    for column in ("order_number", "quantity"):
        if column in mapping:
            values = raw[mapping[column]].replace("", None)
            parsed = pd.to_numeric(values, errors="coerce")
            bad = out.index[parsed.isna() & values.notna()].tolist()
            if bad:
                raise IngestError(f"{name}: column {mapping[column]!r} is not a number in row(s) {_rows(bad)}")
            parsed = parsed.astype("float64")
            if column == "order_number":
                fractional = out.index[parsed.notna() & (parsed % 1 != 0)].tolist()
                if fractional:
                    raise IngestError(f"{name}: column {mapping[column]!r} must hold whole numbers; row(s) {_rows(fractional)}")
                # The store keeps order numbers as 32-bit integers.
                out_of_range = out.index[parsed.notna() & ~parsed.between(0, 2**31 - 1)].tolist()
                if out_of_range:
                    raise IngestError(
                        f"{name}: column {mapping[column]!r} must hold order numbers from 0 to 2,147,483,647; "
                        f"row(s) {_rows(out_of_range)}"
                    )
            else:  # an infinite or negative quantity would give a shopper an infinite or negative weight
                bad_quantity = out.index[parsed.notna() & ~(np.isfinite(parsed) & (parsed >= 0))].tolist()
                if bad_quantity:
                    raise IngestError(
                        f"{name}: column {mapping[column]!r} must hold finite quantities of 0 or more; "
                        f"row(s) {_rows(bad_quantity)}"
                    )
            out[column] = parsed
    if known_items is not None:
        unknown = sorted(set(out["item_id"]) - set(map(str, known_items)))
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5])
            raise IngestError(
                f"{name}: {len(unknown)} item id(s) are not in the catalog: {shown}"
                + (" …" if len(unknown) > 5 else "")
            )
    return out


def _id_text(value: object) -> str:
    """An id as text: blank for missing values, and 123.0 read back as 123 (ids with gaps become floats)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return clean_text(value, 200)


def _rows(indices: list[int]) -> str:
    return format_rows([i + 1 for i in indices])  # 0-based frame positions -> row numbers


def purchase_weights(interactions: pd.DataFrame, half_life: float = HALF_LIFE) -> np.ndarray:
    """Recency weight of each purchase: 1 for a shopper's latest order, halving every ``half_life``
    orders (or days) back; times log(1 + quantity) when quantities are given."""
    weights = np.ones(len(interactions))
    if "order_number" in interactions and interactions["order_number"].notna().any():
        order = interactions["order_number"].astype(float).fillna(0)
        age = interactions.assign(o=order).groupby("user_id")["o"].transform("max") - order
        weights = 0.5 ** (age.to_numpy() / half_life)
    elif "timestamp" in interactions and interactions["timestamp"].notna().any():
        ts = pd.to_datetime(interactions["timestamp"])
        latest = ts.groupby(interactions["user_id"]).transform("max")
        age = ((latest - ts).dt.total_seconds() / 86400).fillna(0)
        weights = 0.5 ** (age.to_numpy() / half_life)
    if "quantity" in interactions and interactions["quantity"].notna().any():
        weights = weights * np.log1p(interactions["quantity"].astype(float).fillna(1).clip(lower=0).to_numpy())
    return weights


@dataclass
class AudienceModel:
    """Shoppers' purchases over embedded items. Build with :func:`build_audience`."""

    user_ids: list[str]
    item_ids: list[str]
    item_vectors: np.ndarray
    #: users x items purchase weights (recency-weighted).
    purchases: sparse.csr_matrix
    neighbours: int = DEFAULT_NEIGHBOURS

    def scores(self, vectors: np.ndarray, method: str = "coldrec") -> np.ndarray:
        """Affinity of every user to each new item, ``(n_items, n_users)``."""
        vectors = np.asarray(vectors, dtype=np.float32)
        if method == "profile":
            profiles = self.profiles()
            return vectors @ profiles.T
        # About a tenth of a small catalog (where 200 neighbours would be everything), at least 20.
        n = len(self.item_ids)
        k = max(min(self.neighbours, n // 10), min(n, 20))
        idx, sims = top_k_cosine(vectors, self.item_vectors, k)
        votes = np.zeros((len(vectors), len(self.item_ids)), dtype=np.float32)
        np.put_along_axis(votes, idx, np.clip(sims, 0, None) ** SIMILARITY_POWER, axis=1)
        return np.asarray((self.purchases @ sparse.csr_matrix(votes).T).T.todense())

    def profiles(self) -> np.ndarray:
        """Each user's recency-weighted mean purchase vector (unit length)."""
        sums = self.purchases @ self.item_vectors
        return sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(min=1e-9)

    def top_users(
        self, vector: np.ndarray, n: int = 20, n_reasons: int = 3
    ) -> list[tuple[str, float, list[tuple[str, float]]]]:
        """The ``n`` best shoppers for one new item: (user_id, score, [(purchased item_id, cosine)])."""
        scores = self.scores(vector[None, :])[0]
        order = np.argsort(-scores, kind="stable")[:n]
        sims = self.item_vectors @ np.asarray(vector, dtype=np.float32)
        out = []
        for u in order:
            if scores[u] <= 0:
                break
            bought = self.purchases[u].indices
            best = bought[np.argsort(-sims[bought])[:n_reasons]]
            out.append((self.user_ids[u], float(scores[u]), [(self.item_ids[j], float(sims[j])) for j in best]))
        return out

    def audience_sizes(self, vector: np.ndarray, thresholds: Sequence[float]) -> dict[float, int]:
        """How many shoppers score at least each threshold, as a share of the top score."""
        scores = self.scores(vector[None, :])[0]
        top = scores.max() if len(scores) else 0.0
        return {t: int((scores >= t * top).sum()) if top > 0 else 0 for t in thresholds}

    def items_for_user(self, user_id: str, item_ids: Sequence[str], vectors: np.ndarray, n: int = 10) -> list[tuple[str, float]]:
        """The ``n`` new items (given with their vectors) that suit one shopper best."""
        u = self.user_ids.index(user_id)
        one = AudienceModel([user_id], self.item_ids, self.item_vectors, self.purchases[u], self.neighbours)
        scores = one.scores(vectors)[:, 0]
        order = np.argsort(-scores, kind="stable")[:n]
        return [(str(item_ids[i]), float(scores[i])) for i in order]


def build_audience(
    interactions: pd.DataFrame,
    item_ids: Sequence[str],
    item_vectors: np.ndarray,
    half_life: float = HALF_LIFE,
    neighbours: int = DEFAULT_NEIGHBOURS,
) -> AudienceModel:
    """An :class:`AudienceModel` from purchases of items whose vectors are given (others are ignored)."""
    index = {str(i): n for n, i in enumerate(item_ids)}
    known = interactions[interactions["item_id"].astype(str).isin(index)]
    weights = purchase_weights(known, half_life)
    users = sorted(known["user_id"].astype(str).unique())
    user_index = {u: n for n, u in enumerate(users)}
    rows = known["user_id"].astype(str).map(user_index).to_numpy()
    cols = known["item_id"].astype(str).map(index).to_numpy()
    matrix = sparse.csr_matrix((weights, (rows, cols)), shape=(len(users), len(item_ids)), dtype=np.float32)
    matrix.sum_duplicates()
    return AudienceModel(users, [str(i) for i in item_ids], np.asarray(item_vectors, dtype=np.float32), matrix, neighbours)


# -- evaluation ---------------------------------------------------------------------------------
def _ndcg(hits: np.ndarray, n_relevant: int, k: int) -> float:
    gains = hits[:k] / np.log2(np.arange(2, min(k, len(hits)) + 2))
    ideal = (1 / np.log2(np.arange(2, min(k, n_relevant) + 2))).sum()
    return float(gains.sum() / ideal) if ideal > 0 else 0.0


def _user_auc(scores: np.ndarray, truth: np.ndarray) -> list[float]:
    """Per-user ROC AUC over held-out items (``scores``/``truth``: items x users), ties counted half."""
    from scipy.stats import rankdata

    out = []
    for u in range(scores.shape[1]):
        pos = truth[:, u]
        n_pos = int(pos.sum())
        n_neg = len(pos) - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(scores[:, u])
        out.append(float((ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)))
    return out


def evaluate_audience(
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    embed: Callable[[list[str]], np.ndarray],
    text_cols: Sequence[str] = ("title",),
    ks: Sequence[int] = (10, 50),
    seeds: int = 3,
    holdout_frac: float = 0.2,
    methods: Sequence[str] = ("coldrec", "profile", "random", "most-active"),
    name: str = "interactions",
) -> dict[str, object]:
    """The cold-start protocol behind ``python -m coldrec audience-eval``.

    Per seed, a random ``holdout_frac`` of the items that have interactions is held out with all
    their interactions; everything is built from the rest; for each held-out item every user is
    ranked. Reports per-item Recall@K and NDCG@K and per-user ROC AUC over held-out items, averaged
    over seeds. ``embed`` maps texts to unit vectors; only items with interactions are embedded.
    """
    items = items.assign(item_id=items["item_id"].astype(str))
    interactions = interactions.assign(item_id=interactions["item_id"].astype(str), user_id=interactions["user_id"].astype(str))
    interactions = interactions[interactions["item_id"].isin(set(items["item_id"]))]
    bought = sorted(interactions["item_id"].unique())
    texts_by_id = items.drop_duplicates("item_id").set_index("item_id")
    texts = [
        ". ".join(str(texts_by_id.at[i, c]) for c in text_cols if str(texts_by_id.at[i, c]).strip() not in ("", "nan"))
        for i in bought
    ]
    vectors = embed(texts)
    users = sorted(interactions["user_id"].unique())
    user_index = {u: n for n, u in enumerate(users)}
    item_index = {i: n for n, i in enumerate(bought)}
    per_method: dict[str, list[dict[str, float]]] = {m: [] for m in methods}
    for seed in range(seeds):
        rng = np.random.default_rng(seed)
        held = np.zeros(len(bought), dtype=bool)
        held[rng.choice(len(bought), size=max(1, int(round(holdout_frac * len(bought)))), replace=False)] = True
        held_ids = {bought[i] for i in np.flatnonzero(held)}
        train = interactions[~interactions["item_id"].isin(held_ids)]
        test = interactions[interactions["item_id"].isin(held_ids)]
        model = build_audience(train, [bought[i] for i in np.flatnonzero(~held)], vectors[~held])
        test_items = np.flatnonzero(held)
        truth = np.zeros((len(test_items), len(users)), dtype=bool)
        row_of = {item_index[bought[i]]: r for r, i in enumerate(test_items)}
        truth[test["item_id"].map(item_index).map(row_of).to_numpy(), test["user_id"].map(user_index).to_numpy()] = True
        activity = np.zeros(len(users))
        np.add.at(activity, train["user_id"].map(user_index).to_numpy(), 1.0)
        for method in methods:
            if method in ("coldrec", "profile"):
                partial = model.scores(vectors[test_items], method=method)
                scores = np.zeros((len(test_items), len(users)))
                scores[:, [user_index[u] for u in model.user_ids]] = partial
            elif method == "random":
                scores = rng.random((len(test_items), len(users)))
            elif method == "most-active":
                scores = np.tile(activity, (len(test_items), 1))
            else:
                raise ValueError(f"unknown method {method!r}")
            per_method[method].append(_metrics(scores, truth, ks))
    results = []
    for method, runs in per_method.items():
        row: dict[str, object] = {"method": method}
        for key in runs[0]:
            row[key] = round(float(np.mean([r[key] for r in runs])), 4)
        results.append(row)
    return {
        "dataset": name,
        "n_users": len(users),
        "n_items": len(bought),
        "n_interactions": int(len(interactions)),
        "results": results,
    }


def _metrics(scores: np.ndarray, truth: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    out: dict[str, float] = {}
    order = np.argsort(-scores, axis=1, kind="stable")
    ranked_hits = np.take_along_axis(truth, order, axis=1)
    n_relevant = truth.sum(axis=1)
    valid = n_relevant > 0
    for k in ks:
        recall = ranked_hits[:, :k].sum(axis=1)[valid] / n_relevant[valid]
        ndcg = [_ndcg(ranked_hits[i].astype(float), int(n_relevant[i]), k) for i in np.flatnonzero(valid)]
        out[f"recall@{k}"] = float(recall.mean())
        out[f"ndcg@{k}"] = float(np.mean(ndcg))
    aucs = _user_auc(scores, truth)
    out["auc"] = float(np.mean(aucs)) if aucs else float("nan")
    return out


__all__ = [
    "AudienceModel",
    "build_audience",
    "evaluate_audience",
    "load_interactions",
    "purchase_weights",
]
