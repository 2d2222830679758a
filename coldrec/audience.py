"""Cold-start audiences: which shoppers a new product suits, and when nobody clearly does.

Nobody has bought a new product, so its audience is inferred from its text and the shop's
purchase history. Parts (each also a row of :func:`evaluate_audience`):

- ``graph``: the catalog items most similar to it (by embedding) vote for the shoppers who
  bought them, weighted by a power of their similarity and by how recently (and how often)
  they bought; the blend reads this vote at several powers, from flat to sharp;
- ``multi-interest``: each shopper's purchases clustered into several interests
  (PinnerSage-style), the new item scored by its best-matching interest;
- ``taste``: each shopper's linear taste, a ridge regression of what they bought on item
  features (embedding and title words) fitted for all shoppers at once on one truncated SVD,
  its penalty chosen by generalised cross-validation (:func:`fit_taste`);
- category affinity, shopper activity, the look-alikes' popularity and the same vote over
  title-word (TF-IDF) look-alikes.

The default (``coldrec``) is a logistic-regression blend of these and their pairwise products,
its weights fitted per workspace on held-out slices of its own purchases (:func:`fit_blend`,
cross-fitted), and its scores calibrated on the same held-out pairs (isotonic), so a shopper is
a "clear audience" only when held-out shoppers with that score bought at twice the average rate
(:func:`clear_threshold`); below it the page and the CLI say "no clear audience". Shoppers above
it who never bought the product's category are the cross-category segment, "new to this
category". ``profile`` (cosine to a shopper's mean purchase) and LightFM (optional) are baselines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
import functools
import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import sparse

from .ingest import OPERATOR_FILES, IngestError, Limits, clean_text, read_table, row_numbers
from .neighbours import top_k_cosine

INTERACTION_SYNONYMS: dict[str, tuple[str, ...]] = {
    "user_id": ("user_id", "user", "customer_id", "customer", "shopper_id", "shopper", "client_id", "buyer_id"),
    "item_id": ("item_id", "item", "product_id", "product", "sku", "article"),
    "timestamp": ("timestamp", "ts", "time", "date", "order_date", "purchased_at", "created_at"),
    "order_number": ("order_number", "order", "order_no", "order_seq"),
    "quantity": ("quantity", "qty", "count", "units", "amount"),
}
#: Neighbours of a new item that vote for its audience: from an earlier grid on Instacart orders
#: (the √n rule instead costs 0.005 AUC on Instacart and nothing on the demo; BENCHMARKS.md).
DEFAULT_NEIGHBOURS = 200
#: Powers of a look-alike's similarity in its vote, in doublings from flat (1: all neighbours
#: count about alike) to sharp (8: 0.9⁸ = 0.43 against 0.7⁸ = 0.06, the nearest few decide).
#: Each is a feature of the blend, whose weights are fitted per workspace, so no single power is
#: chosen on one dataset (an earlier grid on Instacart picked 5; BENCHMARKS.md).
SIMILARITY_POWERS = (1, 2, 4, 8)
#: The power of the single vote that gives a new item its category and its look-alikes'
#: popularity, and the ``graph`` row of :func:`evaluate_audience`.
PART_POWER = 8


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
        raise IngestError(f"{name}: empty user or item id in row(s) {_rows(blank, name)}")
    if "timestamp" in mapping:
        values = raw[mapping["timestamp"]].replace("", None)
        parsed = pd.to_datetime(values, errors="coerce", format="mixed")
        bad = out.index[parsed.isna() & values.notna()].tolist()
        if bad:
            raise IngestError(f"{name}: column {mapping['timestamp']!r} is not a date/time in row(s) {_rows(bad, name)}")
        out["timestamp"] = parsed
    for column in ("order_number", "quantity"):
        if column in mapping:
            values = raw[mapping[column]].replace("", None)
            parsed = pd.to_numeric(values, errors="coerce")
            bad = out.index[parsed.isna() & values.notna()].tolist()
            if bad:
                raise IngestError(f"{name}: column {mapping[column]!r} is not a number in row(s) {_rows(bad, name)}")
            parsed = parsed.astype("float64")
            if column == "order_number":
                fractional = out.index[parsed.notna() & (parsed % 1 != 0)].tolist()
                if fractional:
                    raise IngestError(f"{name}: column {mapping[column]!r} must hold whole numbers; row(s) {_rows(fractional, name)}")
                # The store keeps order numbers as 32-bit integers.
                out_of_range = out.index[parsed.notna() & ~parsed.between(0, 2**31 - 1)].tolist()
                if out_of_range:
                    raise IngestError(
                        f"{name}: column {mapping[column]!r} must hold order numbers from 0 to 2,147,483,647; "
                        f"row(s) {_rows(out_of_range, name)}"
                    )
            else:  # an infinite or negative quantity would give a shopper an infinite or negative weight
                bad_quantity = out.index[parsed.notna() & ~(np.isfinite(parsed) & (parsed >= 0))].tolist()
                if bad_quantity:
                    raise IngestError(
                        f"{name}: column {mapping[column]!r} must hold finite quantities of 0 or more; "
                        f"row(s) {_rows(bad_quantity, name)}"
                    )
            out[column] = parsed
    if known_items is not None:
        unknown = sorted(set(out["item_id"]) - set(map(str, known_items)))
        if unknown:
            shown = ", ".join(repr(i) for i in unknown[:5])
            where = out.index[out["item_id"].isin(unknown)].tolist()
            raise IngestError(
                f"{name}: {len(unknown)} item id(s) in column {mapping['item_id']!r} are not in the catalog: {shown}"
                + (" …" if len(unknown) > 5 else "") + f" (row(s) {_rows(where, name)}); import the catalog first"
            )
    return out


def _id_text(value: object) -> str:
    """An id as text: blank for missing values, and 123.0 read back as 123 (ids with gaps become floats)."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return clean_text(value, 200)


def _rows(indices: list[int], filename: str) -> str:
    return row_numbers([i + 1 for i in indices], filename)  # 0-based frame positions -> data rows


def history_half_life(interactions: pd.DataFrame) -> float:
    """The recency half-life by rule: the median shopper's history length, in orders (or days
    without order numbers), so a typical shopper's oldest purchase counts half as much as the latest."""
    if "order_number" in interactions and interactions["order_number"].notna().any():
        orders = interactions.groupby("user_id")["order_number"]
        span = orders.max() - orders.min() + 1
    elif "timestamp" in interactions and interactions["timestamp"].notna().any():
        times = pd.to_datetime(interactions["timestamp"]).groupby(interactions["user_id"])
        span = (times.max() - times.min()).dt.total_seconds() / 86400
    else:
        return 1.0  # no dates: nothing to decay
    span = span.dropna()
    return float(max(np.median(span), 1.0)) if len(span) else 1.0


def purchase_weights(interactions: pd.DataFrame, half_life: float | None = None) -> np.ndarray:
    """Recency weight of each purchase: 1 for a shopper's latest order, halving every ``half_life``
    orders (or days) back (``None``: :func:`history_half_life`); times log(1 + quantity) when
    quantities are given."""
    if half_life is None:
        half_life = history_half_life(interactions)
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


def interest_count(n_items: int) -> int:
    """How many interests a shopper with ``n_items`` distinct purchases gets: the k ≈ √(n/2)
    rule of thumb for k-means, so one interest up to 7 items, 5 at 50, 10 at 200."""
    return max(1, int(np.ceil(np.sqrt(n_items / 2))))


def shopper_interests(
    purchases: sparse.csr_matrix, item_vectors: np.ndarray, iterations: int = 10
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Several interests per shopper (PinnerSage-style): weighted spherical k-means over each
    shopper's purchased item vectors, :func:`interest_count` clusters each.

    Returns ``(centroids, owner, weight)``: unit centroids ``(n_interests, dim)``, the shopper
    row each belongs to (sorted), and each interest's share of that shopper's purchase weight.
    """
    centroids, owners, weights = [], [], []
    for u in range(purchases.shape[0]):
        start, stop = purchases.indptr[u], purchases.indptr[u + 1]
        cols, w = purchases.indices[start:stop], purchases.data[start:stop].astype(np.float64)
        if len(cols) == 0:
            continue
        x = item_vectors[cols].astype(np.float64)
        k = min(interest_count(len(cols)), len(cols))
        # Deterministic farthest-point start: the heaviest purchase, then the least similar ones.
        chosen = [int(np.argmax(w))]
        best = x @ x[chosen[0]]
        for _ in range(1, k):
            chosen.append(int(np.argmin(best)))
            best = np.maximum(best, x @ x[chosen[-1]])
        c = x[chosen]
        for _ in range(iterations):
            assign = np.argmax(x @ c.T, axis=1)
            sums = np.zeros_like(c)
            np.add.at(sums, assign, x * w[:, None])
            norms = np.linalg.norm(sums, axis=1)
            keep = norms > 1e-12
            c = np.where(keep[:, None], sums / norms.clip(min=1e-12)[:, None], c)
        assign = np.argmax(x @ c.T, axis=1)
        share = np.bincount(assign, weights=w, minlength=k) / max(w.sum(), 1e-12)
        used = share > 0
        centroids.append(c[used])
        owners.append(np.full(int(used.sum()), u))
        weights.append(share[used])
    dim = item_vectors.shape[1]
    if not centroids:
        return np.zeros((0, dim), np.float32), np.zeros(0, np.int64), np.zeros(0)
    return (np.vstack(centroids).astype(np.float32), np.concatenate(owners), np.concatenate(weights))


def catalog_groups(item_vectors: np.ndarray) -> np.ndarray:
    """Stand-in categories for a catalog without any: k-means clusters of the item vectors,
    √(n/2) of them (the same rule of thumb as :func:`interest_count`)."""
    from sklearn.cluster import KMeans

    n = len(item_vectors)
    k = min(n, interest_count(n))
    if k <= 1:
        return np.zeros(n, dtype=np.int64)
    return KMeans(n_clusters=k, n_init=1, random_state=0).fit_predict(item_vectors).astype(np.int64)


#: Most singular directions the taste ridge keeps: a time and memory bound (the basis is
#: items × rank floats). Scored alone on half of the Instacart shoppers, 1,024 directions are
#: 0.001 AUC below the exact ridge, 512 0.003 and 256 0.008 (BENCHMARKS.md).
TASTE_RANK = 1024
#: Memory bound on the taste basis (2²⁸ float32 = 1 GiB): a catalog above 262,144 items keeps fewer directions.
TASTE_MAX_FLOATS = 2**28
#: Penalties generalised cross-validation chooses from: a log grid wide enough that the choice
#: is the data's (the demo chooses 3.2, Instacart 56), not a constant fitted on one shop.
TASTE_PENALTIES = tuple(float(x) for x in np.logspace(-2, 4, 25))
#: Shoppers sampled to choose the penalty (one shared number; more only costs memory at 1M shoppers).
TASTE_PENALTY_SHOPPERS = 10_000


@dataclass
class TasteRidge:
    """Every shopper's taste as a ridge regression of "bought it" (0/1 per catalog item) on the
    item features, all shoppers at once on one truncated SVD ``X ≈ U S Vᵀ`` of the catalog's
    features (:func:`fit_taste`). For a new item with features ``x`` the ridge predicts
    ``x V diag(s/(s²+λ)) Uᵀ y`` for a shopper whose purchases are ``y``: a signed weight per
    catalog item (:meth:`item_weights`), summed over the shopper's purchases. Unlike the
    look-alike vote it reads the whole catalog, not the nearest items only, so it learns what a
    shopper consistently buys (organic, baby, a brand) and what they pass over."""

    #: ``V diag(s/(s²+λ))``, ``(n_features, rank)``.
    projection: np.ndarray
    #: ``U``, ``(n_items, rank)``.
    basis: np.ndarray
    #: The penalty λ, chosen by generalised cross-validation.
    penalty: float

    def item_weights(self, features: np.ndarray | sparse.spmatrix) -> np.ndarray:
        """Each new item's weight on each catalog item, ``(n_new, n_items)``."""
        return np.asarray(features @ self.projection, dtype=np.float32) @ self.basis.T


def fit_taste(
    features: sparse.spmatrix | np.ndarray, bought: sparse.csr_matrix, rank: int = TASTE_RANK
) -> TasteRidge:
    """Fit :class:`TasteRidge` from the catalog's item features ``(n_items, n_features)`` and
    who bought what (``(n_users, n_items)``, nonzero = bought). The penalty minimises the
    generalised cross-validation error (Golub, Heath & Wahba 1979), the closed-form estimate of
    leave-one-item-out error for a linear smoother, summed over (a sample of
    :data:`TASTE_PENALTY_SHOPPERS`) shoppers, over :data:`TASTE_PENALTIES`."""
    features = sparse.csr_matrix(features, dtype=np.float32)
    n_items = features.shape[0]
    keep = max(1, min(rank, min(features.shape), TASTE_MAX_FLOATS // max(n_items, 1)))
    if keep >= min(features.shape) - 1:
        u, s, vt = np.linalg.svd(features.toarray(), full_matrices=False)
        u, s, vt = u[:, :keep], s[:keep], vt[:keep]
    else:
        from sklearn.utils.extmath import randomized_svd

        u, s, vt = randomized_svd(features, keep, random_state=0)
    bought = sparse.csr_matrix(bought)
    if bought.shape[0] > TASTE_PENALTY_SHOPPERS:
        rows = np.sort(np.random.default_rng(0).choice(bought.shape[0], TASTE_PENALTY_SHOPPERS, replace=False))
        bought = bought[rows]
    y = (bought != 0).astype(np.float32)
    # Each singular direction's share of the purchases: ‖Uⱼᵀ Y‖² (Y: items × shoppers).
    energy = np.asarray((y @ u) ** 2).sum(axis=0).astype(np.float64)
    total = float(y.nnz)
    s2 = s.astype(np.float64) ** 2

    def gcv(penalty: float) -> float:
        shrink = s2 / (s2 + penalty)  # the hat matrix U diag(shrink) Uᵀ
        residual = total - float(((2 * shrink - shrink**2) * energy).sum())
        freedom = 1 - shrink.sum() / n_items
        return residual / freedom**2 if freedom > 0 else np.inf

    penalty = min(TASTE_PENALTIES, key=gcv)
    projection = (vt.T * (s / (s2 + penalty))).astype(np.float32)
    return TasteRidge(projection, np.ascontiguousarray(u, dtype=np.float32), float(penalty))


#: Features of a (new item, shopper) pair that the blend weighs, in order: the look-alike vote
#: and its share of the look-alikes at each of :data:`SIMILARITY_POWERS`, the best-matching
#: interest, category affinity, activity, the look-alikes' popularity, the shopper's taste
#: ridge (:class:`TasteRidge`), and the same vote by
#: title-word look-alikes at each power (``lexical_p*``, only when the model knows its items' texts).
BLEND_FEATURES = (
    *(f"vote_p{p}" for p in SIMILARITY_POWERS),
    *(f"share_p{p}" for p in SIMILARITY_POWERS),
    "interest",
    "affinity",
    "activity",
    "popularity",
    "taste",
    *(f"lexical_p{p}" for p in SIMILARITY_POWERS),
)


@dataclass
class Blend:
    """A logistic regression over :data:`BLEND_FEATURES` and their pairwise products, fitted on
    the workspace's own held-out purchases (see :func:`fit_blend`), and the measured "clear
    audience" threshold. The products let one feature's weight depend on another (how much a
    look-alike vote says depends on how much the shopper buys, how popular the look-alikes are);
    the score is ``σ(b + z·w + zᵀQz)`` with ``z`` the features standardised by ``mean``/``std``."""

    #: The features weighed, in order (:data:`BLEND_FEATURES` less ``lexical_p*`` without texts).
    names: tuple[str, ...]
    #: Linear weights on the standardised features.
    weights: np.ndarray
    intercept: float
    #: Purchase rate of a (held-out item, shopper) pair in the fitting slices.
    base_rate: float
    #: A shopper is a clear audience from this score up (:func:`clear_threshold`).
    threshold: float
    n_items: int
    n_pairs: int
    #: Isotonic calibration measured on the held-out pairs: score knots and purchase rates.
    calibration: tuple[np.ndarray, np.ndarray] = (np.array([0.0, 1.0]), np.array([0.0, 1.0]))
    #: Symmetric weights of the pairwise products (squares on the diagonal); ``None``: linear only.
    quadratic: np.ndarray | None = None
    #: Standardisation of the features (``None``: none).
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    #: The range of each feature in the fitting pairs: features are clipped to it, so a product
    #: unlike anything in the shop is scored like the least familiar ones seen, not by
    #: extrapolating the squares (which can make it look like everybody's favourite).
    low: np.ndarray | None = None
    high: np.ndarray | None = None

    def logit(self, features: np.ndarray) -> np.ndarray:
        """``b + z·w + zᵀQz`` for a ``(..., n_features)`` array (no ``(n, n²)`` products are built)."""
        z = np.asarray(features, dtype=np.float32)
        if self.low is not None and self.high is not None:
            z = np.clip(z, self.low, self.high)
        if self.mean is not None and self.std is not None:
            z = (z - self.mean) / self.std
        out = z @ self.weights + self.intercept
        if self.quadratic is not None:
            out += np.einsum("...i,...i->...", z @ self.quadratic, z)
        return out

    def probability(self, features: np.ndarray) -> np.ndarray:
        """The blend's score (logistic regression) from a ``(..., n_features)`` array; it ranks."""
        return 1 / (1 + np.exp(-self.logit(features)))

    def calibrated(self, scores: np.ndarray) -> np.ndarray:
        """The purchase rate that held-out pairs with these scores had (isotonic, so monotone)."""
        knots, rates = self.calibration
        return np.interp(scores, knots, rates)


#: What :meth:`AudienceModel.audience` calls each shopper.
SEGMENTS = ("clear audience", "new to this category", "below threshold", "unmeasured")
#: A clear audience buys at least twice as often as the average (shopper, new item) pair did on
#: held-out items (lift 2, the usual bar for a targeted segment).
LIFT = 2.0


def _fitted_once(method: Callable) -> Callable:
    """An :class:`AudienceModel` part fitted on first use, under the model's lock (the check and
    the fit together: two threads asking at once fit it once)."""

    @functools.wraps(method)
    def locked(self: "AudienceModel", *args: object, **kwargs: object) -> object:
        with self._fitting:
            return method(self, *args, **kwargs)

    return locked


@dataclass
class AudienceModel:
    """Shoppers' purchases over embedded items. Build with :func:`build_audience`."""

    user_ids: list[str]
    item_ids: list[str]
    item_vectors: np.ndarray
    #: users x items purchase weights (recency-weighted).
    purchases: sparse.csr_matrix
    neighbours: int = DEFAULT_NEIGHBOURS
    #: Category (or catalog group) of each item; the new item's is voted by its neighbours.
    item_groups: np.ndarray | None = None
    group_names: list[str] | None = None
    interests: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    blend: Blend | None = None
    #: Typical look-alike vote, share and title-word vote per power (positive medians over the
    #: model's own items), so the blend reads votes on one scale whatever batch is scored.
    vote_scales: dict[str, float] | None = None
    #: Each item's text (title, description): title-word look-alikes, which catch what the
    #: embedding blurs (brands, flavours). Without it the blend leaves ``lexical`` out.
    item_texts: list[str] | None = None
    lexicon: tuple[object, sparse.csr_matrix] | None = None
    #: Every shopper's taste ridge, fitted on first use (:func:`fit_taste`).
    taste: TasteRidge | None = None
    #: Derived once per model: shoppers' category shares, each item's buyer count, who bought what (0/1).
    _shares: sparse.csc_matrix | None = None
    _buyers: np.ndarray | None = None
    _bought: sparse.csr_matrix | None = None
    #: Held while a part is fitted on first use: two sessions scoring at once fit it once.
    _fitting: threading.RLock = field(default_factory=threading.RLock, repr=False, compare=False)

    # -- components ------------------------------------------------------------------------
    def _neighbour_count(self) -> int:
        # About a tenth of a small catalog (where 200 neighbours would be everything), at least 20.
        n = len(self.item_ids)
        return min(max(min(self.neighbours, n // 10), min(n, 20)), n)

    def _votes(self, vectors: np.ndarray, powers: Sequence[int] = (PART_POWER,)) -> list[sparse.csr_matrix]:
        """Each new item's nearest catalog items with weight similarity^power, one
        ``(n_new, n_items)`` matrix per power (one neighbour search for all)."""
        idx, sims = top_k_cosine(vectors, self.item_vectors, self._neighbour_count())
        return _vote_matrices(idx, sims, powers, len(self.item_ids))

    @_fitted_once
    def _lexicon(self) -> tuple[object, sparse.csr_matrix]:
        """The catalog's title-word TF-IDF: the vectorizer and the items' unit rows."""
        if self.lexicon is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            from .language import WordTokenizer

            # Title words; Chinese runs (no spaces) as character bigrams.
            vectorizer = TfidfVectorizer(sublinear_tf=True, tokenizer=WordTokenizer(), token_pattern=None)
            self.lexicon = (vectorizer, vectorizer.fit_transform(self.item_texts or []).tocsr())
        return self.lexicon

    def _lexical_votes(self, texts: Sequence[str], powers: Sequence[int] = SIMILARITY_POWERS) -> list[sparse.csr_matrix]:
        """The same votes over title-word look-alikes: TF-IDF cosine, the same neighbour count and powers."""
        vectorizer, matrix = self._lexicon()
        sims = (vectorizer.transform(list(texts)) @ matrix.T).toarray()
        k = self._neighbour_count()
        idx = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        return _vote_matrices(idx, np.take_along_axis(sims, idx, axis=1), powers, len(self.item_ids))

    def _bought_by(self, votes: Sequence[sparse.csr_matrix]) -> list[np.ndarray]:
        """Each vote matrix's vote per (new item, shopper): one sparse product for all of them."""
        n_new = votes[0].shape[0]
        stacked = np.asarray((self.purchases @ sparse.vstack(votes, format="csr").T).T.todense())
        return [stacked[i * n_new:(i + 1) * n_new] for i in range(len(votes))]

    def graph_scores(self, vectors: np.ndarray) -> np.ndarray:
        """Look-alike buyers: the new item's nearest catalog items vote for the shoppers who
        bought them (similarity^:data:`PART_POWER` × recency weight, repeat purchases add up), ``(n_new, n_users)``."""
        return self._bought_by(self._votes(vectors))[0]

    def _item_features(self, vectors: np.ndarray, texts: Sequence[str] | None, words: sparse.csr_matrix | None = None) -> sparse.csr_matrix:
        """What the taste ridge reads of an item: its embedding, a constant (each shopper's own
        intercept) and, when the model has item texts, its title words' TF-IDF row (``words``
        when already computed); the embedding and the TF-IDF row are both unit length, so
        neither outweighs the other."""
        parts = [sparse.csr_matrix(np.asarray(vectors, dtype=np.float32)), sparse.csr_matrix(np.ones((len(vectors), 1), np.float32))]
        if self.item_texts is not None:
            if words is None:
                if texts is None or len(texts) != len(vectors):
                    raise ValueError("this audience model reads item texts: pass one text per new item")
                words = self._lexicon()[0].transform(list(texts))
            parts.append(words)
        return sparse.hstack(parts, format="csr", dtype=np.float32)

    @_fitted_once
    def _bought_matrix(self) -> sparse.csr_matrix:
        """Who bought what, 0/1 (the taste ridge's target), sharing the purchases' indices."""
        if self._bought is None:
            p = self.purchases
            self._bought = sparse.csr_matrix((np.ones(p.nnz, np.float32), p.indices, p.indptr), shape=p.shape)
        return self._bought

    @_fitted_once
    def _taste(self) -> TasteRidge:
        if self.taste is None:
            words = self._lexicon()[1] if self.item_texts is not None else None  # the catalog's rows, computed once
            self.taste = fit_taste(self._item_features(self.item_vectors, self.item_texts, words), self._bought_matrix())
        return self.taste

    def taste_scores(self, vectors: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """Each shopper's taste ridge (:class:`TasteRidge`) for each new item: the predicted
        "would buy it" (0 to 1 on the catalog's scale), ``(n_new, n_users)``."""
        taste = self._taste()
        features = self._item_features(vectors, texts)
        bought = self._bought_matrix()
        out = np.empty((len(vectors), len(self.user_ids)), dtype=np.float32)
        step = max(1, 2**24 // max(len(self.item_ids), 1))  # at most 64 MB of item weights at a time
        for start in range(0, len(vectors), step):
            weights = taste.item_weights(features[start : start + step])
            out[start : start + step] = (bought @ weights.T).T
        return out

    def interest_scores(self, vectors: np.ndarray) -> np.ndarray:
        """Each shopper's best-matching interest: max cosine over their interest centroids."""
        centroids, owner, _ = self._interests()
        out = np.full((len(vectors), len(self.user_ids)), -1.0, dtype=np.float32)
        if len(centroids):
            sims = vectors @ centroids.T
            starts = np.flatnonzero(np.r_[True, owner[1:] != owner[:-1]])
            out[:, owner[starts]] = np.maximum.reduceat(sims, starts, axis=1)
        return out

    @_fitted_once
    def group_shares(self) -> sparse.csr_matrix:
        """Each shopper's share of purchase weight per category (group), ``(n_users, n_groups)``."""
        if self._shares is not None:
            return self._shares
        groups = self._groups()
        onehot = sparse.csr_matrix(
            (np.ones(len(groups), dtype=np.float32), (np.arange(len(groups)), groups)),
            shape=(len(groups), int(groups.max()) + 1 if len(groups) else 0),
        )
        totals = np.asarray(self.purchases.sum(axis=1)).ravel().clip(min=1e-12)
        self._shares = (sparse.diags(1 / totals) @ (self.purchases @ onehot)).tocsc()
        return self._shares

    def group_of(self, vectors: np.ndarray) -> np.ndarray:
        """The new items' category distribution, voted by their nearest catalog items, ``(n_new, n_groups)``."""
        groups = self._groups()
        votes = self._votes(vectors)[0]
        onehot = sparse.csr_matrix(
            (np.ones(len(groups), dtype=np.float32), (np.arange(len(groups)), groups)),
            shape=(len(groups), int(groups.max()) + 1 if len(groups) else 0),
        )
        dist = np.asarray((votes @ onehot).todense())
        return dist / dist.sum(axis=1, keepdims=True).clip(min=1e-12)

    def affinity_scores(self, vectors: np.ndarray) -> np.ndarray:
        """Category affinity: the shopper's share of purchases in the new item's (voted) category."""
        return np.asarray((self.group_shares() @ self.group_of(vectors).T).T)

    @_fitted_once
    def _buyer_counts(self) -> np.ndarray:
        if self._buyers is None:
            self._buyers = np.bincount(self.purchases.indices, minlength=len(self.item_ids)).astype(np.float32)
        return self._buyers

    def popularity(self, vectors: np.ndarray) -> np.ndarray:
        """How many shoppers the new item's look-alikes have (log of their vote-weighted mean
        buyer count): a staple's look-alikes are bought by everyone, a niche item's by few."""
        votes = self._votes(vectors)[0]
        buyers = self._buyer_counts()
        mean = np.asarray(votes @ buyers).ravel() / np.asarray(votes.sum(axis=1)).ravel().clip(min=1e-12)
        return np.log1p(mean).astype(np.float32)

    def activity(self) -> np.ndarray:
        """log(1 + distinct items bought) per shopper."""
        return np.log1p(np.diff(self.purchases.indptr)).astype(np.float32)

    def feature_names(self) -> tuple[str, ...]:
        """The blend's features for this model: all of :data:`BLEND_FEATURES`, less the ``lexical`` ones without texts."""
        return BLEND_FEATURES if self.item_texts is not None else BLEND_FEATURES[: -len(SIMILARITY_POWERS)]

    def features(self, vectors: np.ndarray, texts: Sequence[str] | None = None) -> np.ndarray:
        """The blend's inputs (:meth:`feature_names`) for every (new item, shopper) pair,
        ``(n_new, n_users, n_features)``; ``texts`` (the new items' texts) when the model has item texts."""
        vectors = np.asarray(vectors, dtype=np.float32)
        votes = self._votes(vectors, SIMILARITY_POWERS)
        graphs = self._bought_by(votes)
        scales = self._scales()
        columns = [np.log1p(g / scales[f"vote_p{p}"]) for p, g in zip(SIMILARITY_POWERS, graphs)]
        # The same votes over their total: the (weighted) share of the look-alikes this shopper
        # bought, which does not grow with how crowded the item's neighbourhood is.
        for p, g, v in zip(SIMILARITY_POWERS, graphs, votes):
            share = g / np.asarray(v.sum(axis=1)).clip(min=1e-12)
            columns.append(np.log1p(share / scales[f"share_p{p}"]))
        shape = graphs[0].shape
        columns += [
            self.interest_scores(vectors),
            self.affinity_scores(vectors),
            np.broadcast_to(self.activity(), shape),
            np.broadcast_to(self.popularity(vectors)[:, None], shape),
            self.taste_scores(vectors, texts),
        ]
        if self.item_texts is not None:
            lexical = self._bought_by(self._lexical_votes(texts))
            columns += [np.log1p(g / scales[f"lexical_p{p}"]) for p, g in zip(SIMILARITY_POWERS, lexical)]
        return np.stack(columns, axis=-1).astype(np.float32)

    def profiles(self) -> np.ndarray:
        """Each user's recency-weighted mean purchase vector (unit length)."""
        sums = self.purchases @ self.item_vectors
        return sums / np.linalg.norm(sums, axis=1, keepdims=True).clip(min=1e-9)

    @_fitted_once
    def _interests(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if self.interests is None:
            self.interests = shopper_interests(self.purchases, self.item_vectors)
        return self.interests

    @_fitted_once
    def _scales(self) -> dict[str, float]:
        """Typical vote of each kind and power (positive median over a sample of the model's items)."""
        if self.vote_scales is None:
            # Kept sparse: only the shoppers a sample item reaches matter for a positive median.
            # 30 items give tens of thousands of values at any size; more only costs time (1M shoppers).
            sample = np.random.default_rng(0).permutation(len(self.item_ids))[:30]
            # A catalog item is its own nearest look-alike; a new item is not: drop the self-votes.
            itself = sparse.csr_matrix((np.ones(len(sample)), (np.arange(len(sample)), sample)), shape=(len(sample), len(self.item_ids)))
            votes = [v - v.multiply(itself) for v in self._votes(self.item_vectors[sample], SIMILARITY_POWERS)]
            scales = {}
            for p, v in zip(SIMILARITY_POWERS, votes):
                graph = sparse.csc_matrix(self.purchases @ v.T)
                share = graph @ sparse.diags(1 / np.asarray(v.sum(axis=1)).ravel().clip(min=1e-12))
                scales[f"vote_p{p}"], scales[f"share_p{p}"] = _positive_median(graph.data), _positive_median(share.data)
                scales[f"lexical_p{p}"] = 1.0
            if self.item_texts is not None:
                words = [v - v.multiply(itself) for v in self._lexical_votes([self.item_texts[i] for i in sample])]
                for p, v in zip(SIMILARITY_POWERS, words):
                    scales[f"lexical_p{p}"] = _positive_median((self.purchases @ v.T).data)
            self.vote_scales = scales
        return self.vote_scales

    @_fitted_once
    def _groups(self) -> np.ndarray:
        if self.item_groups is None:
            self.item_groups = catalog_groups(self.item_vectors)
        return self.item_groups

    # -- ranking ---------------------------------------------------------------------------
    def scores(self, vectors: np.ndarray, method: str = "coldrec", texts: Sequence[str] | None = None) -> np.ndarray:
        """Affinity of every user to each new item, ``(n_items, n_users)``.

        ``coldrec`` is the fitted blend (purchase probabilities) when the workspace has enough
        purchases to fit one, else ``graph``; ``graph``, ``taste``, ``multi-interest`` and
        ``profile`` are its parts. ``texts``: the new items' texts, needed by the blend when the model has item texts.
        """
        vectors = np.asarray(vectors, dtype=np.float32)
        if method == "coldrec":
            method = "blend" if self.blend is not None else "graph"
        if method == "blend":
            if self.blend is None:
                raise ValueError("this audience model has no fitted blend")
            return self.blend.probability(self.features(vectors, texts))
        if method == "graph":
            return self.graph_scores(vectors)
        if method == "taste":
            return self.taste_scores(vectors, texts)
        if method == "multi-interest":
            return self.interest_scores(vectors)
        if method == "profile":
            return vectors @ self.profiles().T
        raise ValueError(f"unknown audience method {method!r}")

    def top_users(
        self, vector: np.ndarray, n: int = 20, n_reasons: int = 3, text: str | None = None
    ) -> list[tuple[str, float, list[tuple[str, float]]]]:
        """The ``n`` best shoppers for one new item: (user_id, score, [(purchased item_id, cosine)])."""
        scores = self._one(vector, text)
        order = np.argsort(-scores, kind="stable")[:n]
        return [(self.user_ids[u], float(scores[u]), self._reasons(u, vector, n_reasons)) for u in order if scores[u] > 0]

    def _reasons(self, u: int, vector: np.ndarray, n: int) -> list[tuple[str, float]]:
        bought = self.purchases[u].indices
        sims = self.item_vectors[bought] @ np.asarray(vector, dtype=np.float32)
        order = np.argsort(-sims, kind="stable")[:n]
        return [(self.item_ids[bought[j]], float(sims[j])) for j in order]

    def _one(self, vector: np.ndarray, text: str | None) -> np.ndarray:
        return self.scores(np.asarray(vector, dtype=np.float32)[None, :], texts=None if text is None else [text])[0]

    def audience(
        self,
        vector: np.ndarray,
        n: int | None = 20,
        n_reasons: int = 3,
        text: str | None = None,
        segments: Sequence[str] | None = None,
    ) -> pd.DataFrame:
        """Who should see one new product, best first: the top ``n`` shoppers (all with ``None``),
        only those in ``segments`` when given, with user_id, score (with a fitted blend: the
        purchase rate that held-out shoppers with this blend score had, i.e. a calibrated
        probability; else the look-alike vote), segment and reasons (their purchases closest to
        the product, ``[(item_id, cosine)]``). ``text``: the product's text (the blend reads its words).

        Segments (:data:`SEGMENTS`): "clear audience" (at or above the blend's measured
        threshold), "new to this category" (above it, but never bought the product's voted
        category: the cross-category audience), "below threshold", or "unmeasured" when too few
        purchases fitted no blend.
        """
        vector = np.asarray(vector, dtype=np.float32)
        scores = self._one(vector, text)
        segment = self._segments(vector, scores)
        order = np.argsort(-scores, kind="stable")
        if self.blend is None:
            order = order[scores[order] > 0]
        if segments is not None:
            order = order[np.isin(segment[order], list(segments))]
        order = order[:n] if n is not None else order
        shown = self.blend.calibrated(scores[order]) if self.blend is not None else scores[order]
        return pd.DataFrame(
            {
                "user_id": [self.user_ids[u] for u in order],
                "score": shown.astype(float),
                "segment": segment[order],
                "reasons": [self._reasons(u, vector, n_reasons) for u in order],
            },
            columns=["user_id", "score", "segment", "reasons"],
        )

    def _segments(self, vector: np.ndarray, scores: np.ndarray) -> np.ndarray:
        if self.blend is None:
            return np.full(len(scores), "unmeasured", dtype=object)
        clear = scores >= self.blend.threshold
        out = np.full(len(scores), "below threshold", dtype=object)
        bought_category = self._bought_category(vector)
        out[clear & bought_category] = "clear audience"
        out[clear & ~bought_category] = "new to this category"
        return out

    def segment_sizes(self, vector: np.ndarray, text: str | None = None) -> dict[str, int]:
        """How many shoppers fall in each segment for one new product."""
        vector = np.asarray(vector, dtype=np.float32)
        names, counts = np.unique(self._segments(vector, self._one(vector, text)), return_counts=True)
        sizes = {name: 0 for name in SEGMENTS}
        sizes.update({str(k): int(v) for k, v in zip(names, counts)})
        return sizes

    def new_to_category(
        self, vector: np.ndarray, n: int = 20, n_reasons: int = 3, text: str | None = None
    ) -> pd.DataFrame:
        """The cross-category audience: shoppers who never bought the new product's (voted)
        category but whose other purchases predict it (above the threshold), best first."""
        return self.audience(vector, n, n_reasons, text, segments=["new to this category"])

    def _bought_category(self, vector: np.ndarray) -> np.ndarray:
        """Per shopper: did they ever buy the new item's most likely category?"""
        dist = self.group_of(vector[None, :])[0]
        if not len(dist) or dist.max() <= 0:
            return np.ones(len(self.user_ids), dtype=bool)
        return np.asarray(self.group_shares()[:, int(np.argmax(dist))].todense()).ravel() > 0

    def category_of(self, vector: np.ndarray) -> str | None:
        """The new item's voted category name (``None`` when catalog clusters stand in for categories)."""
        dist = self.group_of(np.asarray(vector, dtype=np.float32)[None, :])[0]
        if self.group_names is None or not len(dist) or dist.max() <= 0:
            return None
        return self.group_names[int(np.argmax(dist))]

    def verdict(self, vector: np.ndarray, text: str | None = None) -> str:
        """One sentence on the new product's audience: how many shoppers clear the threshold
        and how it was measured, or "no clear audience"."""
        if self.blend is None:
            return (
                f"Too few purchases to measure who is a clear audience (needs {MIN_FIT_ITEMS} held-out items "
                f"with {MIN_FIT_PURCHASES} purchases): shoppers are ranked by their look-alike purchases, unscored."
            )
        scores = self._one(vector, text)
        clear = int((scores >= self.blend.threshold).sum())
        bar = LIFT * self.blend.base_rate
        how = (
            f"purchase probability ≥ {bar:.3f}, {LIFT:g}× the average, calibrated on "
            f"{self.blend.n_items:,} held-out items of this shop"
        )
        if clear == 0:
            best = float(self.blend.calibrated(scores.max())) if len(scores) else 0.0
            return f"No clear audience: no shopper reaches a {how}; the best is {best:.3f}."
        return f"{clear:,} shopper(s) are a clear audience ({how})."

    def items_for_user(
        self, user_id: str, item_ids: Sequence[str], vectors: np.ndarray, n: int = 10, texts: Sequence[str] | None = None
    ) -> list[tuple[str, float]]:
        """The ``n`` new items (given with their vectors, and texts when the model reads them) that suit one shopper best."""
        u = self.user_ids.index(user_id)
        scores = self.scores(vectors, texts=texts)[:, u]
        order = np.argsort(-scores, kind="stable")[:n]
        return [(str(item_ids[i]), float(scores[i])) for i in order]


def segment_table(
    model: AudienceModel, vector: np.ndarray, titles: Mapping[str, str], n: int = 20, include_weak: bool = False,
    text: str | None = None,
) -> pd.DataFrame:
    """An audience segment for a campaign tool: the top ``n`` shoppers at or above the clear-audience
    threshold (both segments), or the top ``n`` whatever their score with ``include_weak`` (or
    when no blend could be fitted, marked "unmeasured"). Columns: user_id, segment, score,
    because_they_bought (titles with cosines)."""
    strong = None if include_weak or model.blend is None else ["clear audience", "new to this category"]
    return reasons_frame(model.audience(vector, n, text=text, segments=strong), titles)


def reasons_frame(table: pd.DataFrame, titles: Mapping[str, str]) -> pd.DataFrame:
    """An audience table (:meth:`AudienceModel.audience`) for people and campaign tools: user_id,
    segment, score, because_they_bought (the purchases behind it as titles with cosines)."""
    return pd.DataFrame(
        {
            "user_id": table["user_id"],
            "segment": table["segment"],
            "score": table["score"].round(4),
            "because_they_bought": [
                " · ".join(f"{titles.get(i, i)} ({sim:.2f})" for i, sim in reasons) for reasons in table["reasons"]
            ],
        }
    ).reset_index(drop=True)


def _vote_matrices(idx: np.ndarray, sims: np.ndarray, powers: Sequence[int], n_items: int) -> list[sparse.csr_matrix]:
    rows = np.repeat(np.arange(len(idx)), idx.shape[1])
    base = np.clip(sims, 0, None).ravel().astype(np.float64)
    return [
        sparse.csr_matrix((base**p, (rows, idx.ravel())), shape=(len(idx), n_items), dtype=np.float32) for p in powers
    ]


def _positive_median(values: np.ndarray) -> float:
    positive = values[values > 0]
    return float(np.median(positive)) if len(positive) else 1.0


def _purchase_matrix(
    interactions: pd.DataFrame, item_ids: Sequence[str], half_life: float
) -> tuple[list[str], sparse.csr_matrix]:
    index = {str(i): n for n, i in enumerate(item_ids)}
    known = interactions[interactions["item_id"].astype(str).isin(index)]
    weights = purchase_weights(known, half_life)
    users = sorted(known["user_id"].astype(str).unique())
    user_index = {u: n for n, u in enumerate(users)}
    rows = known["user_id"].astype(str).map(user_index).to_numpy()
    cols = known["item_id"].astype(str).map(index).to_numpy()
    matrix = sparse.csr_matrix((weights, (rows, cols)), shape=(len(users), len(item_ids)), dtype=np.float32)
    matrix.sum_duplicates()
    return users, matrix


def build_audience(
    interactions: pd.DataFrame,
    item_ids: Sequence[str],
    item_vectors: np.ndarray,
    half_life: float | None = None,
    neighbours: int = DEFAULT_NEIGHBOURS,
    item_categories: Sequence[str | None] | None = None,
    fit: bool = True,
    item_texts: Sequence[str] | None = None,
) -> AudienceModel:
    """An :class:`AudienceModel` from purchases of items whose vectors are given (others are ignored).

    ``item_categories`` (one per item, ``None`` where unknown) feed category affinity and the
    "new to this category" segment; without them the catalog's own clusters stand in.
    ``item_texts`` (one per item) add title-word look-alikes to the blend. With
    ``fit`` the blend is fitted on held-out purchases (:func:`fit_blend`) when there are enough.
    """
    item_ids = [str(i) for i in item_ids]
    vectors = np.asarray(item_vectors, dtype=np.float32)
    if half_life is None:
        half_life = history_half_life(interactions)
    users, matrix = _purchase_matrix(interactions, item_ids, half_life)
    groups, names = _category_codes(item_categories, vectors)
    texts = [str(t) for t in item_texts] if item_texts is not None else None
    model = AudienceModel(users, item_ids, vectors, matrix, neighbours, groups, names, item_texts=texts)
    if fit:
        model.blend = fit_blend(interactions, item_ids, vectors, half_life, neighbours, groups, names, texts)
    return model


def _category_codes(
    item_categories: Sequence[str | None] | None, vectors: np.ndarray
) -> tuple[np.ndarray | None, list[str] | None]:
    """Integer codes of known categories; items without one join their nearest categorised item's."""
    if item_categories is None:
        return None, None
    cats = pd.Series(list(item_categories), dtype=object)
    known = cats.notna() & (cats.astype(str).str.strip() != "")
    if not known.any():
        return None, None
    names = sorted(cats[known].astype(str).unique())
    code = {c: n for n, c in enumerate(names)}
    groups = np.zeros(len(cats), dtype=np.int64)
    groups[known.to_numpy()] = cats[known].astype(str).map(code).to_numpy()
    missing = np.flatnonzero(~known.to_numpy())
    if len(missing):
        idx, _ = top_k_cosine(vectors[missing], vectors[known.to_numpy()], 1)
        groups[missing] = groups[np.flatnonzero(known.to_numpy())[idx[:, 0]]]
    return groups, names


#: Share of the catalog's purchased items held out to fit the blend, and the
#: fewest items and purchases below which no blend is fitted (the weights would be noise).
FIT_SLICE = 0.2
MIN_FIT_ITEMS = 20
MIN_FIT_PURCHASES = 50
#: Negative pairs kept for fitting (subsampled beyond this; the intercept is corrected).
MAX_FIT_PAIRS = 400_000
#: The blend fits on every disjoint slice in turn (5-fold cross-fitting: each purchased item
#: serves once as a pseudo-new one) while their pairs stay under this many (about 130 MB of
#: features); a large shop fits on fewer slices, one at least.
CROSS_FIT_PAIRS = 2_000_000


def fit_slice(interactions: pd.DataFrame, share: float = FIT_SLICE, fold: int = 0) -> list[str]:
    """The pseudo-new items the blend is fitted on: the ``fold``-th of ``1/share`` disjoint
    fixed-seed random slices of the purchased items, each a ``share`` of them. Not the newest ones:
    in a log, an item's first appearance is the earliest of its purchases, so the newest items are
    mostly bought once (Instacart: 1.1 buyers against 2.7 on average), and weights fitted there
    learned that popular look-alikes mean fewer buyers (per-shopper AUC 0.63 against 0.70; BENCHMARKS.md)."""
    items = sorted(interactions["item_id"].astype(str).unique())
    size = int(round(share * len(items)))
    order = np.random.default_rng(0).permutation(len(items))
    return sorted(items[i] for i in order[fold * size : (fold + 1) * size])


def _slice_pairs(
    interactions: pd.DataFrame,
    item_ids: list[str],
    item_vectors: np.ndarray,
    held: list[str],
    half_life: float,
    neighbours: int,
    item_groups: np.ndarray | None,
    group_names: list[str] | None,
    item_texts: Sequence[str] | None,
) -> tuple[tuple[str, ...], np.ndarray, np.ndarray]:
    """The blend's features and "bought it" for every (held-out item, shopper) pair, the parts
    built from the other items' purchases only: ``(names, x (n_pairs, n_features), y)``."""
    position = {i: n for n, i in enumerate(item_ids)}
    held_set = set(held)
    train = interactions[~interactions["item_id"].astype(str).isin(held_set)]
    test = interactions[interactions["item_id"].astype(str).isin(held_set)]
    keep = [n for n, i in enumerate(item_ids) if i not in held_set]
    part = build_audience(
        train, [item_ids[n] for n in keep], item_vectors[keep], half_life, neighbours, fit=False,
        item_texts=[item_texts[n] for n in keep] if item_texts is not None else None,
    )
    part.item_groups, part.group_names = (item_groups[keep] if item_groups is not None else None), group_names
    user_index = {u: n for n, u in enumerate(part.user_ids)}
    test = test[test["user_id"].astype(str).isin(user_index)]
    held_rows = {i: r for r, i in enumerate(held)}
    truth = np.zeros((len(held), len(part.user_ids)), dtype=bool)
    truth[test["item_id"].astype(str).map(held_rows).to_numpy(), test["user_id"].astype(str).map(user_index).to_numpy()] = True
    rows_held = [position[i] for i in held]
    names = part.feature_names()
    x = part.features(item_vectors[rows_held], [item_texts[r] for r in rows_held] if item_texts is not None else None)
    return names, x.reshape(-1, len(names)), truth.ravel()


def fit_blend(
    interactions: pd.DataFrame,
    item_ids: Sequence[str],
    item_vectors: np.ndarray,
    half_life: float | None = None,
    neighbours: int = DEFAULT_NEIGHBOURS,
    item_groups: np.ndarray | None = None,
    group_names: list[str] | None = None,
    item_texts: Sequence[str] | None = None,
) -> Blend | None:
    """Fit the blend's weights on this workspace's own purchases: hold out :func:`fit_slice`
    (a :data:`FIT_SLICE` of the items) with all their purchases (as if they were new), build the parts
    from the rest, and fit a logistic regression of "bought it" on the pair features and their
    pairwise products (:class:`Blend`), on further disjoint slices too while their pairs stay
    under :data:`CROSS_FIT_PAIRS` (cross-fitting: up to all ``1/FIT_SLICE`` of them). The
    clear-audience threshold is measured on the same held-out pairs (:func:`clear_threshold`).
    ``None`` with too few purchases (fewer than :data:`MIN_FIT_ITEMS` items or
    :data:`MIN_FIT_PURCHASES` purchases in the first slice)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import PolynomialFeatures

    if half_life is None:  # the whole log's rule, as the model it is fitted for
        half_life = history_half_life(interactions)
    item_ids = [str(i) for i in item_ids]
    known = set(item_ids)
    interactions = interactions[interactions["item_id"].astype(str).isin(known)]
    held = fit_slice(interactions)
    held_set = set(held)
    in_slice = interactions["item_id"].astype(str).isin(held_set)
    if len(held) < MIN_FIT_ITEMS or in_slice.sum() < MIN_FIT_PURCHASES or in_slice.all():
        return None
    shop = (item_groups, group_names, item_texts)
    names, x, y = _slice_pairs(interactions, item_ids, item_vectors, held, half_life, neighbours, *shop)
    if y.sum() < MIN_FIT_PURCHASES:
        return None
    folds = min(int(round(1 / FIT_SLICE)), max(1, CROSS_FIT_PAIRS // max(len(y), 1)))
    n_items = len(held)
    xs, ys = [x], [y]
    for fold in range(1, folds):
        more = fit_slice(interactions, fold=fold)
        if not more:
            break
        _, x_more, y_more = _slice_pairs(interactions, item_ids, item_vectors, more, half_life, neighbours, *shop)
        xs.append(x_more)
        ys.append(y_more)
        n_items += len(more)
    x, y = np.concatenate(xs), np.concatenate(ys)
    rng = np.random.default_rng(0)
    negatives = np.flatnonzero(~y)
    keep_rate = min(1.0, MAX_FIT_PAIRS / max(len(negatives), 1))
    rows = np.concatenate([np.flatnonzero(y), negatives[rng.random(len(negatives)) < keep_rate]])
    mean, std = x.mean(axis=0), x.std(axis=0).clip(min=1e-6)
    products = PolynomialFeatures(degree=2, include_bias=False)
    design = products.fit_transform(((x[rows] - mean) / std).astype(np.float32))
    # The products standardised too, so the regression's penalty treats every term alike (in
    # place: 400k rows of 152 terms are 240 MB).
    centre, spread = design.mean(axis=0), design.std(axis=0).clip(min=1e-6)
    design -= centre
    design /= spread
    lr = LogisticRegression(max_iter=1000).fit(design, y[rows])
    coef = lr.coef_[0] / spread
    weights, quadratic = _split_terms(coef, products.powers_, len(names))
    # Undo the negative subsampling so probabilities stay calibrated (King & Zeng prior correction).
    intercept = float(lr.intercept_[0] - coef @ centre + np.log(keep_rate))
    blend = Blend(
        names, weights, intercept, float(y.mean()), 0.0, n_items, int(y.sum()),
        quadratic=quadratic, mean=mean.astype(np.float32), std=std.astype(np.float32),
        low=x[rows].min(axis=0), high=x[rows].max(axis=0),
    )
    # Calibrate on a uniform sample of all held-out pairs (unbiased, unlike the fitting rows).
    sample = rng.permutation(len(y))[:MAX_FIT_PAIRS]
    scores = blend.probability(x[sample])
    blend.calibration = isotonic_rates(scores, y[sample])
    blend.threshold = clear_threshold(scores, y[sample])
    return blend


def _split_terms(coef: np.ndarray, powers: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Degree-2 polynomial coefficients (``PolynomialFeatures.powers_`` order) as linear weights
    and a symmetric matrix ``Q`` with ``zᵀQz`` = the sum of the product terms."""
    weights, quadratic = np.zeros(n, np.float32), np.zeros((n, n), np.float32)
    for c, exponent in zip(coef, powers):
        (used,) = np.nonzero(exponent)
        if exponent.sum() == 1:
            weights[used[0]] = c
        elif len(used) == 1:
            quadratic[used[0], used[0]] = c
        else:
            quadratic[used[0], used[1]] = quadratic[used[1], used[0]] = c / 2
    return weights, quadratic


def isotonic_rates(scores: np.ndarray, bought: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Purchase rate as a non-decreasing function of the score (isotonic regression, no knobs):
    knots and rates for :func:`numpy.interp`."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip").fit(scores, bought.astype(float))
    return np.asarray(iso.X_thresholds_, dtype=np.float64), np.asarray(iso.y_thresholds_, dtype=np.float64)


def clear_threshold(scores: np.ndarray, bought: np.ndarray, lift: float = LIFT) -> float:
    """The lowest score from which held-out (item, shopper) pairs were bought at ``lift`` × the
    average rate or more, by isotonic calibration of purchases on scores: every shopper above it
    is at least twice as likely to buy as the average. Above every score (nobody is ever clear)
    when no score reaches it."""
    knots, rates = isotonic_rates(scores, bought)
    good = np.flatnonzero(rates >= lift * bought.mean())
    return float(knots[good[0]]) if len(good) else float(np.nextafter(scores.max(), np.inf))


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


#: Rows of ``audience-eval``: the default, its parts, the LightFM baseline (when installed) and
#: two naive baselines.
EVAL_METHODS = ("coldrec", "graph", "taste", "multi-interest", "profile", "lightfm", "random", "most-active")


def lightfm_available() -> bool:
    """Whether the optional LightFM baseline can run (``pip install -r requirements-audience.txt``)."""
    try:
        import lightfm  # noqa: F401
    except ImportError:
        return False
    return True


def lightfm_scores(
    train: pd.DataFrame, item_texts: dict[str, str], train_items: Sequence[str], new_items: Sequence[str],
    users: Sequence[str], seed: int = 0, epochs: int = 20,
) -> np.ndarray:
    """LightFM hybrid cold-start baseline (Kula 2015): items described only by their title words
    (no per-item identity, so held-out items are as known as any), shoppers by identity, WARP loss,
    the library's default size and learning rate, ``epochs`` passes. Scores ``(n_new, n_users)``."""
    from lightfm import LightFM
    from sklearn.feature_extraction.text import CountVectorizer

    vectorizer = CountVectorizer(binary=True)
    train_features = vectorizer.fit_transform([item_texts[i] for i in train_items]).tocsr().astype(np.float32)
    new_features = vectorizer.transform([item_texts[i] for i in new_items]).tocsr().astype(np.float32)
    user_index = {u: n for n, u in enumerate(users)}
    item_index = {i: n for n, i in enumerate(train_items)}
    pairs = train.drop_duplicates(["user_id", "item_id"])
    matrix = sparse.coo_matrix(
        (np.ones(len(pairs), np.float32), (pairs["user_id"].map(user_index), pairs["item_id"].map(item_index))),
        shape=(len(users), len(train_items)),
    )
    model = LightFM(loss="warp", random_state=seed)
    model.fit(matrix, item_features=train_features, epochs=epochs, num_threads=1)
    _, user_vectors = model.get_user_representations()
    user_bias, _ = model.get_user_representations()
    item_bias, item_vectors = model.get_item_representations(new_features)
    return item_vectors @ user_vectors.T + item_bias[:, None] + user_bias[None, :]


def evaluate_audience(
    items: pd.DataFrame,
    interactions: pd.DataFrame,
    embed: Callable[[list[str]], np.ndarray],
    text_cols: Sequence[str] = ("title",),
    ks: Sequence[int] = (10, 50),
    seeds: int = 3,
    holdout_frac: float = 0.2,
    methods: Sequence[str] | None = None,
    name: str = "interactions",
    category_col: str | None = None,
) -> dict[str, object]:
    """The cold-start protocol behind ``python -m coldrec audience-eval``.

    Per seed, a random ``holdout_frac`` of the items that have interactions is held out with all
    their interactions; everything is built from the rest (the blend is fitted on slices of the
    rest, never on the held-out ones); for each held-out item every user is
    ranked. Reports per-item Recall@K and NDCG@K and per-user ROC AUC over held-out items, averaged
    over seeds, per method (:data:`EVAL_METHODS`; ``lightfm`` only when installed). ``embed`` maps
    texts to unit vectors; only items with interactions are embedded. ``category_col`` gives the
    catalog's categories (held-out items' categories are never read); without it catalog clusters
    stand in. The ``coldrec`` row also reports how often the fitted blend says "no clear
    audience" for a held-out item and the purchase rate of shoppers it calls clear.
    """
    if methods is None:
        methods = [m for m in EVAL_METHODS if m != "lightfm" or lightfm_available()]
    items = items.assign(item_id=items["item_id"].astype(str))
    interactions = interactions.assign(item_id=interactions["item_id"].astype(str), user_id=interactions["user_id"].astype(str))
    interactions = interactions[interactions["item_id"].isin(set(items["item_id"]))]
    bought = sorted(interactions["item_id"].unique())
    texts_by_id = items.drop_duplicates("item_id").set_index("item_id")
    texts = [
        ". ".join(str(texts_by_id.at[i, c]) for c in text_cols if str(texts_by_id.at[i, c]).strip() not in ("", "nan"))
        for i in bought
    ]
    item_texts = dict(zip(bought, texts))
    categories = texts_by_id[category_col].reindex(bought).tolist() if category_col else None
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
        train_items = [bought[i] for i in np.flatnonzero(~held)]
        train_categories = [categories[i] for i in np.flatnonzero(~held)] if categories is not None else None
        model = build_audience(
            train, train_items, vectors[~held], item_categories=train_categories,
            fit=any(m in ("coldrec", "blend") for m in methods), item_texts=[item_texts[i] for i in train_items],
        )
        columns = [user_index[u] for u in model.user_ids]
        test_items = np.flatnonzero(held)
        truth = np.zeros((len(test_items), len(users)), dtype=bool)
        row_of = {item_index[bought[i]]: r for r, i in enumerate(test_items)}
        truth[test["item_id"].map(item_index).map(row_of).to_numpy(), test["user_id"].map(user_index).to_numpy()] = True
        activity = np.zeros(len(users))
        np.add.at(activity, train["user_id"].map(user_index).to_numpy(), 1.0)
        for method in methods:
            if method in ("coldrec", "blend", "graph", "taste", "multi-interest", "profile"):
                partial = model.scores(vectors[test_items], method=method, texts=[texts[i] for i in test_items])
                # Shoppers with no training purchases rank last (nothing is known about them).
                scores = np.full((len(test_items), len(users)), float(partial.min()) - 1 if partial.size else 0.0)
                scores[:, columns] = partial
            elif method == "lightfm":
                scores = lightfm_scores(train, item_texts, train_items, [bought[i] for i in test_items], users, seed)
            elif method == "random":
                scores = rng.random((len(test_items), len(users)))
            elif method == "most-active":
                scores = np.tile(activity, (len(test_items), 1))
            else:
                raise ValueError(f"unknown method {method!r}")
            metrics = _metrics(scores, truth, ks)
            if method == "coldrec" and model.blend is not None:
                metrics.update(_clear_audience_metrics(scores, truth, model.blend))
            per_method[method].append(metrics)
    results = []
    for method, runs in per_method.items():
        row: dict[str, object] = {"method": method}
        for key in runs[0]:
            row[key] = round(float(np.nanmean([r.get(key, np.nan) for r in runs])), 4)
        results.append(row)
    return {
        "dataset": name,
        "n_users": len(users),
        "n_items": len(bought),
        "n_interactions": int(len(interactions)),
        "results": results,
    }


def _clear_audience_metrics(scores: np.ndarray, truth: np.ndarray, blend: Blend) -> dict[str, float]:
    """How the fitted threshold behaves on held-out items: the share of items with no clear
    audience, the purchase rate of (item, shopper) pairs above and below it, the base rate, and
    the calibration error (mean |calibrated probability − purchase rate| over score deciles)."""
    clear = scores >= blend.threshold
    return {
        "no_clear_audience_share": float((~clear.any(axis=1)).mean()),
        "clear_pairs_share": float(clear.mean()),
        "purchase_rate_clear": float(truth[clear].mean()) if clear.any() else float("nan"),
        "purchase_rate_below": float(truth[~clear].mean()) if (~clear).any() else float("nan"),
        "purchase_rate_all": float(truth.mean()),
        "calibration_error": _calibration_error(blend.calibrated(scores).ravel(), truth.ravel()),
    }


def _calibration_error(probabilities: np.ndarray, bought: np.ndarray) -> float:
    deciles = np.array_split(np.argsort(probabilities, kind="stable"), 10)
    return float(np.mean([abs(probabilities[d].mean() - bought[d].mean()) for d in deciles if len(d)]))


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
    "BLEND_FEATURES",
    "EVAL_METHODS",
    "SEGMENTS",
    "AudienceModel",
    "Blend",
    "TasteRidge",
    "fit_taste",
    "catalog_groups",
    "fit_blend",
    "interest_count",
    "lightfm_available",
    "lightfm_scores",
    "fit_slice",
    "history_half_life",
    "shopper_interests",
    "build_audience",
    "clear_threshold",
    "isotonic_rates",
    "evaluate_audience",
    "load_interactions",
    "purchase_weights",
    "segment_table",
]
