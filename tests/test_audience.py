"""Audiences: interaction import, recency weights, ranking with reasons, the cold-start protocol."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from coldrec.audience import (
    LIFT,
    clear_threshold,
    build_audience,
    evaluate_audience,
    fit_blend,
    interest_count,
    lightfm_available,
    load_interactions,
    purchase_weights,
    segment_table,
    shopper_interests,
)
from coldrec.ingest import IngestError
from tests.conftest import unit_rows


def test_interactions_are_read_with_synonyms_and_types():
    data = b"Customer,SKU,Order,Qty,Date\nu1,A,1,2,2026-01-02\nu1,B,2,1,2026-02-03\n"
    frame = load_interactions(data, "p.csv", known_items=["A", "B"])
    assert frame["user_id"].tolist() == ["u1", "u1"] and frame["order_number"].tolist() == [1, 2]
    assert str(frame["timestamp"].dtype).startswith("datetime64")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"user,price\nu1,3\n", "missing column(s) item_id"),
        (b"user_id,item_id,quantity\nu1,A,two\n", "'quantity' is not a number in row(s) 2 (row 1 is the header)"),
        (b"user_id,item_id,timestamp\nu1,A,yesterday-ish\n", "not a date/time in row(s) 2 (row 1 is the header)"),
        (b"user_id,item_id\nu1,A\nu2,ZZZ\n", "column 'item_id' are not in the catalog: 'ZZZ' (row(s) 3 (row 1 is the header))"),
        (b"user_id,item_id\nu1,\n", "empty user or item id in row(s) 2 (row 1 is the header)"),
        (b"", "empty"),
    ],
)
def test_bad_interaction_files_are_rejected_clearly(data, message):
    with pytest.raises(IngestError) as err:
        load_interactions(data, "purchases.csv", known_items=["A"])
    assert message in str(err.value) and "purchases.csv" in str(err.value)


def test_recency_weights_halve_per_half_life_and_grow_with_quantity():
    frame = pd.DataFrame({"user_id": ["u", "u", "u"], "item_id": ["a", "b", "c"], "order_number": [10, 9, 8]})
    np.testing.assert_allclose(purchase_weights(frame, half_life=1.0), [1.0, 0.5, 0.25])
    with_qty = purchase_weights(frame.assign(quantity=[1, 3, 1]), half_life=1.0)
    assert with_qty[1] / with_qty[0] == pytest.approx(0.5 * np.log1p(3) / np.log1p(1))


def _toy():
    # Items on two axes: kitchen (x) and pets (y). u1 buys kitchen, u2 pets, u3 both.
    vectors = np.array([[1, 0], [0.95, 0.31], [0, 1], [0.31, 0.95]], dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    frame = pd.DataFrame(
        {"user_id": ["u1", "u1", "u2", "u2", "u3"], "item_id": ["pan", "pot", "leash", "bowl", "pot"]}
    )
    return build_audience(frame, ["pan", "pot", "leash", "bowl"], vectors), vectors


def test_a_kitchen_item_goes_to_kitchen_buyers_with_the_reason():
    model, _ = _toy()
    new = np.array([0.99, 0.1], dtype=np.float32)
    new /= np.linalg.norm(new)
    top = model.top_users(new, n=3)
    assert [u for u, _, _ in top][:2] == ["u1", "u3"]
    assert top[0][2][0][0] == "pan"  # u1's closest purchase is the reason


def test_items_for_a_user_rank_their_kind_first():
    model, _ = _toy()
    new = np.array([[0, 1], [1, 0]], dtype=np.float32)
    assert model.items_for_user("u2", ["pet-new", "kitchen-new"], new, n=2)[0][0] == "pet-new"
    assert model.items_for_user("u1", ["pet-new", "kitchen-new"], new, n=2)[0][0] == "kitchen-new"


def test_cold_start_protocol_scores_far_above_random_when_content_drives_purchases():
    rng = np.random.default_rng(0)
    n_topics, per_topic, dim = 6, 40, 24
    centres = unit_rows(rng, n_topics, dim)
    vectors, topic = [], []
    for t in range(n_topics):
        pts = centres[t] + 0.3 * rng.normal(size=(per_topic, dim))
        vectors.append(pts / np.linalg.norm(pts, axis=1, keepdims=True))
        topic += [t] * per_topic
    vectors = np.vstack(vectors).astype(np.float32)
    topic = np.array(topic)
    item_ids = [f"i{n}" for n in range(len(topic))]
    rows = []
    for u in range(90):
        likes = rng.choice(n_topics, size=2, replace=False)
        for i in rng.choice(np.flatnonzero(np.isin(topic, likes)), size=25, replace=False):
            rows.append({"user_id": f"u{u}", "item_id": item_ids[i]})
    interactions = pd.DataFrame(rows)
    items = pd.DataFrame({"item_id": item_ids, "title": item_ids})
    lookup = dict(zip(item_ids, vectors))
    result = evaluate_audience(items, interactions, lambda texts: np.vstack([lookup[t] for t in texts]), seeds=2)
    by = {r["method"]: r for r in result["results"]}
    assert set(by) == {"coldrec", "graph", "taste", "multi-interest", "profile", "random", "most-active"} | (
        {"lightfm"} if lightfm_available() else set()
    )
    assert result["n_users"] == 90 and result["n_interactions"] == len(interactions)
    # Users buy 25 of the 80 items in their two topics, which content cannot tell apart: the best
    # possible per-user AUC is about (32 + 11/2) / 43 = 0.87 here.
    assert by["coldrec"]["auc"] > 0.75 and by["random"]["auc"] == pytest.approx(0.5, abs=0.05)
    assert by["coldrec"]["recall@10"] > 2 * by["random"]["recall@10"]  # ceiling here is about 0.33
    assert by["coldrec"]["recall@10"] > by["most-active"]["recall@10"] + 0.1
    for r in result["results"]:
        assert {"recall@10", "ndcg@10", "recall@50", "ndcg@50", "auc"} <= set(r)
    # The blend was fitted inside each training split (never on the held-out items) and its
    # clear audience buys far more often than everyone else.
    assert by["coldrec"]["purchase_rate_clear"] > 2 * by["coldrec"]["purchase_rate_all"]
    assert by["coldrec"]["auc"] >= by["graph"]["auc"] - 0.02


def test_workspace_builds_audiences_from_stored_purchases(workspace):
    assert workspace.audience.model() is None
    workspace.imports.import_interactions(b"user_id,item_id\nu1,C1\nu1,C2\nu2,P1\n", "p.csv")
    model = workspace.audience.model()
    assert model is not None and model.user_ids == ["u1", "u2"]
    with pytest.raises(IngestError, match="not in the catalog"):
        workspace.imports.import_interactions(b"user_id,item_id\nu3,NOPE\n", "bad.csv")
    assert workspace.store.stats()["interactions"] == 3


def test_category_affinity_is_the_share_of_purchases_per_category(workspace):
    workspace.imports.import_interactions(b"user_id,item_id\nu1,C1\nu1,C2\nu1,F1\nu1,P1\nu2,P1\n", "p.csv")
    affinity = workspace.store.category_affinity("u1").set_index("category")
    assert affinity.loc["Cookware", "purchases"] == 2 and affinity.loc["Cookware", "share"] == 0.5
    assert affinity["share"].sum() == 1.0 and list(affinity.index)[0] == "Cookware"


def _unit(*rows):
    v = np.array(rows, dtype=np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_multi_interest_scores_a_new_item_by_the_shoppers_matching_interest():
    # Three orthogonal kinds: kitchen, pets, garden. "mixed" bought five kitchen items and two
    # pet items; "garden" bought garden items only. A new pet item matches mixed's second interest.
    kitchen = [[1, 0.1 * i, 0, 0] for i in range(5)]
    pets = [[0, 0, 1, 0.1 * i] for i in range(2)]
    garden = [[0, 1, 0, 0.1 * i] for i in range(4)]
    vectors = _unit(*kitchen, *pets, *garden)
    ids = [f"k{i}" for i in range(5)] + ["p0", "p1"] + [f"g{i}" for i in range(4)]
    frame = pd.DataFrame(
        {"user_id": ["mixed"] * 7 + ["garden"] * 4, "item_id": ids[:7] + ids[7:]}
    )
    model = build_audience(frame, ids, vectors, fit=False)
    centroids, owner, share = shopper_interests(model.purchases, model.item_vectors)
    mixed = model.user_ids.index("mixed")
    assert (owner == mixed).sum() == interest_count(7) == 2  # kitchen and pets
    np.testing.assert_allclose(sorted(share[owner == mixed]), [2 / 7, 5 / 7], atol=1e-6)
    new_pet = _unit([0, 0, 1, 0.05])
    interest = model.scores(new_pet, method="multi-interest")[0]
    profile = model.scores(new_pet, method="profile")[0]
    assert interest[mixed] > 0.99  # the pet interest, not the kitchen-heavy average
    assert profile[mixed] < 0.6
    assert interest[mixed] > interest[model.user_ids.index("garden")]


def test_taste_ridge_is_the_textbook_ridge_at_the_cross_validated_penalty():
    # Items spread over 8 directions; "organic" bought every catalog item leaning along the
    # first axis, "budget" every item leaning against it: a new item along that axis suits "organic".
    from coldrec.audience import fit_taste

    rng = np.random.default_rng(0)
    vectors = unit_rows(rng, 60, 8)
    ids = [f"i{n}" for n in range(60)]
    frame = pd.DataFrame(
        [{"user_id": "organic", "item_id": ids[i]} for i in np.flatnonzero(vectors[:, 0] > 0.2)]
        + [{"user_id": "budget", "item_id": ids[i]} for i in np.flatnonzero(vectors[:, 0] < -0.2)]
    )
    model = build_audience(frame, ids, vectors, fit=False)
    new = _unit([0.9, 0.3, -0.3, 0, 0, 0, 0.1, 0])
    taste = model.scores(new, method="taste")[0]
    organic, budget = model.user_ids.index("organic"), model.user_ids.index("budget")
    assert taste[organic] > 0.5 > taste[budget]
    # The same numbers as the textbook ridge W = (XᵀX + λI)⁻¹ Xᵀ Y at the chosen penalty
    # (the features: embedding and a constant; full rank, so no truncation).
    x = np.hstack([vectors, np.ones((60, 1))]).astype(np.float64)
    y = (model.purchases.T.toarray() > 0).astype(np.float64)
    w = np.linalg.solve(x.T @ x + model.taste.penalty * np.eye(9), x.T @ y)
    np.testing.assert_allclose(taste, (np.hstack([new, [[1.0]]]) @ w)[0], atol=1e-4)
    # And the penalty is the generalised cross-validation minimum, computed here from the hat matrix.
    def gcv(penalty: float) -> float:
        hat = x @ np.linalg.solve(x.T @ x + penalty * np.eye(9), x.T)
        return float(((y - hat @ y) ** 2).sum() / (1 - np.trace(hat) / 60) ** 2)

    from coldrec.audience import TASTE_PENALTIES

    assert model.taste.penalty == min(TASTE_PENALTIES, key=gcv)
    assert fit_taste(x, model.purchases).penalty == model.taste.penalty


def test_taste_ridge_with_title_words_and_fewer_directions_than_items():
    # A brand word the embedding does not carry: "acme" buyers are one shopper; with title
    # words the ridge finds them. A rank below the item count still ranks them first.
    from coldrec.audience import fit_taste

    rng = np.random.default_rng(1)
    vectors = unit_rows(rng, 80, 16)
    ids = [f"i{n}" for n in range(80)]
    texts = [("acme " if n % 4 == 0 else "") + f"thing{n}" for n in range(80)]
    frame = pd.DataFrame(
        [{"user_id": "fan", "item_id": ids[n]} for n in range(0, 80, 4)]
        + [{"user_id": f"other{n % 5}", "item_id": ids[n]} for n in range(80) if n % 4]
    )
    model = build_audience(frame, ids, vectors, fit=False, item_texts=texts)
    new = unit_rows(rng, 1, 16)
    fan = model.user_ids.index("fan")
    assert np.argmax(model.scores(new, method="taste", texts=["acme novelty"])[0]) == fan
    assert np.argmax(model.scores(new, method="taste", texts=["plain novelty"])[0]) != fan
    features = model._item_features(vectors, texts)
    small = fit_taste(features, model.purchases, rank=40)
    assert small.basis.shape == (80, 40) and small.projection.shape == (features.shape[1], 40)


def _world(content_driven: bool, seed: int = 0, n_users: int = 120, n_items: int = 300):
    """Synthetic shop: items in 6 topics; shoppers like two topics and differ in how much they buy.
    Content-driven: they buy only from their topics. Otherwise: items at random (same volumes)."""
    rng = np.random.default_rng(seed)
    centres = np.eye(6, 16) + 0.05 * rng.normal(size=(6, 16))
    topic = rng.integers(0, 6, n_items)
    vectors = centres[topic] + 0.25 * rng.normal(size=(n_items, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"i{n}" for n in range(n_items)]
    rows = []
    for u in range(n_users):
        volume = int(rng.integers(5, 40))
        pool = np.flatnonzero(np.isin(topic, rng.choice(6, 2, replace=False))) if content_driven else np.arange(n_items)
        for i in rng.choice(pool, size=min(volume, len(pool)), replace=False):
            rows.append({"user_id": f"u{u}", "item_id": ids[i]})
    return pd.DataFrame(rows), ids, vectors


def _effect(blend, features: np.ndarray, columns: list[int]) -> float:
    """How much the blend's logit moves when these feature columns are shuffled across pairs."""
    flat = features.reshape(-1, features.shape[-1])
    shuffled = flat.copy()
    shuffled[:, columns] = flat[np.random.default_rng(0).permutation(len(flat))][:, columns]
    return float(np.mean(np.abs(blend.logit(shuffled) - blend.logit(flat))))


def test_the_fitted_blend_finds_the_known_drivers_and_is_calibrated():
    from coldrec.audience import BLEND_FEATURES

    content = [n for n, f in enumerate(BLEND_FEATURES) if f.startswith(("vote", "share", "interest", "affinity", "taste"))]
    activity = [BLEND_FEATURES.index("activity")]
    frame, ids, vectors = _world(content_driven=True)
    blend = fit_blend(frame, ids, vectors)
    x = build_audience(frame, ids, vectors, fit=False).features(vectors[:50])
    random_frame, ids, vectors = _world(content_driven=False)
    blind = fit_blend(random_frame, ids, vectors)
    blind_x = build_audience(random_frame, ids, vectors, fit=False).features(vectors[:50])
    # Content-driven shoppers: what they bought decides; volume matters too.
    assert _effect(blend, x, content) > 1.0 and _effect(blend, x, activity) > 0.2
    # Buying at random: content explains little beyond volume, activity still does.
    assert _effect(blind, blind_x, content) < _effect(blend, x, content) / 3
    assert _effect(blind, blind_x, activity) > 0.2
    # The clear-audience threshold is a probability inside the range it was measured on.
    assert 0 < blend.threshold < 1
    # A small shop (one slice gives few pairs) fits on all five disjoint slices: every item once.
    assert blend.n_items == 5 * round(0.2 * len(set(frame["item_id"])))


def test_the_blend_is_the_logistic_regression_it_fitted():
    # Blend.logit (z·w + zᵀQz, no n² products built) equals sklearn's regression on the products.
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import PolynomialFeatures

    from coldrec.audience import Blend, _split_terms

    rng = np.random.default_rng(0)
    z = rng.normal(size=(2000, 4))
    y = rng.random(2000) < 1 / (1 + np.exp(-(z[:, 0] * z[:, 1] - z[:, 2] ** 2 + z[:, 3])))
    products = PolynomialFeatures(degree=2, include_bias=False)
    lr = LogisticRegression(max_iter=1000).fit(products.fit_transform(z), y)
    weights, quadratic = _split_terms(lr.coef_[0], products.powers_, 4)
    blend = Blend(("a", "b", "c", "d"), weights, float(lr.intercept_[0]), 0.5, 0.5, 1, 1, quadratic=quadratic)
    np.testing.assert_allclose(blend.logit(z), lr.decision_function(products.transform(z)), rtol=1e-4, atol=1e-4)
    assert np.allclose(quadratic, quadratic.T) and quadratic[0, 1] > 0.3 and quadratic[2, 2] < -0.5


def _twins(seed: int = 0, n_users: int = 150, n_pairs: int = 150):
    """A shop where each product has a near-identical twin (cosine ≈ 0.99) and shoppers buy both
    or neither: only the very nearest look-alike tells who buys (a sharp vote)."""
    rng = np.random.default_rng(seed)
    base = np.eye(5, 16)[rng.integers(0, 5, n_pairs)] + 0.6 * rng.normal(size=(n_pairs, 16))
    base /= np.linalg.norm(base, axis=1, keepdims=True)
    vectors = np.vstack([base, base + 0.05 * rng.normal(size=base.shape)])
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"a{i}" for i in range(n_pairs)] + [f"b{i}" for i in range(n_pairs)]
    rows = []
    for u in range(n_users):
        for i in rng.choice(n_pairs, size=int(rng.integers(3, 15)), replace=False):
            rows += [{"user_id": f"u{u}", "item_id": ids[i]}, {"user_id": f"u{u}", "item_id": ids[n_pairs + i]}]
    return pd.DataFrame(rows), ids, vectors


def _noisy_topics(seed: int = 0, n_users: int = 150, n_items: int = 300):
    """A shop where shoppers buy within one of four topics, but each product's vector is noisy:
    any one look-alike says little, many together say the topic (a flat vote)."""
    rng = np.random.default_rng(seed)
    topic = rng.integers(0, 4, n_items)
    vectors = np.eye(4, 16)[topic] + 0.5 * rng.normal(size=(n_items, 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"i{n}" for n in range(n_items)]
    rows = []
    for u in range(n_users):
        pool = np.flatnonzero(topic == rng.integers(0, 4))
        for i in rng.choice(pool, size=int(rng.integers(5, 30)), replace=False):
            rows.append({"user_id": f"u{u}", "item_id": ids[i]})
    return pd.DataFrame(rows), ids, vectors


def _held_out_aucs(frame, ids, vectors):
    """Per-shopper AUC on a fifth of the items held out with their purchases: the fitted blend,
    and the flat (similarity¹) and sharp (similarity⁸) look-alike votes alone."""
    from coldrec.audience import _user_auc

    held = np.random.default_rng(0).permutation(len(ids))[: len(ids) // 5]
    held_ids = {ids[i] for i in held}
    keep = [i for i in range(len(ids)) if ids[i] not in held_ids]
    model = build_audience(frame[~frame["item_id"].isin(held_ids)], [ids[i] for i in keep], vectors[keep])
    test = frame[frame["item_id"].isin(held_ids) & frame["user_id"].isin(model.user_ids)]
    truth = np.zeros((len(held), len(model.user_ids)), dtype=bool)
    row = {ids[i]: r for r, i in enumerate(held)}
    truth[test["item_id"].map(row), test["user_id"].map({u: n for n, u in enumerate(model.user_ids)})] = True
    x = model.features(vectors[held])
    names = model.feature_names()
    auc = lambda scores: float(np.mean(_user_auc(scores, truth)))  # noqa: E731
    return auc(model.scores(vectors[held])), auc(x[..., names.index("vote_p1")]), auc(x[..., names.index("vote_p8")])


def test_each_shop_gets_the_similarity_power_its_purchases_reward():
    # No power is fixed in advance: the blend weighs all of them on the shop's own held-out
    # purchases, so it matches the sharp vote where twins decide and the flat one where topics do.
    blend, flat, sharp = _held_out_aucs(*_twins())
    assert sharp > flat + 0.05 and blend >= sharp - 0.01
    blend, flat, sharp = _held_out_aucs(*_noisy_topics())
    assert flat > sharp and blend >= flat - 0.01


def test_the_half_life_is_the_median_shoppers_history():
    from coldrec.audience import history_half_life

    orders = pd.DataFrame({"user_id": ["a"] * 3 + ["b"] * 2 + ["c"], "item_id": list("xyzxyz"), "order_number": [1, 5, 10, 3, 4, 7]})
    assert history_half_life(orders) == 2.0  # histories of 10, 2 and 1 orders: median 2
    days = pd.DataFrame(
        {"user_id": ["a", "a", "b", "b"], "item_id": list("xyxy"), "timestamp": pd.to_datetime(["2026-01-01", "2026-01-31", "2026-02-01", "2026-02-11"])}
    )
    assert history_half_life(days) == 20.0  # 30 and 10 days
    np.testing.assert_allclose(purchase_weights(days), [0.5 ** 1.5, 1.0, 0.5 ** 0.5, 1.0])
    assert history_half_life(pd.DataFrame({"user_id": ["a"], "item_id": ["x"]})) == 1.0


def test_no_clear_audience_below_the_measured_threshold():
    frame, ids, vectors = _world(content_driven=True)
    # One extra dimension that no catalog item uses: a product unlike anything the shop sells.
    vectors = np.hstack([vectors, np.zeros((len(vectors), 1), np.float32)])
    model = build_audience(frame, ids, vectors)
    assert model.blend is not None
    alien = np.zeros(17, np.float32)
    alien[-1] = 1.0
    familiar = vectors[0]
    assert (model.audience(alien, None)["segment"] == "below threshold").all()
    assert model.verdict(alien).startswith("No clear audience")
    table = model.audience(familiar, None)
    clear = table[table["segment"] != "below threshold"]
    bar = LIFT * model.blend.base_rate  # scores shown are calibrated purchase probabilities
    assert len(clear) >= 5 and (clear["score"] >= bar).all()
    assert (table.loc[table["segment"] == "below threshold", "score"] < bar).all()
    assert "clear audience" in model.verdict(familiar)
    export = segment_table(model, alien, {}, n=10)
    assert export.empty and list(export.columns) == ["user_id", "segment", "score", "because_they_bought"]
    assert len(segment_table(model, alien, {}, n=10, include_weak=True)) == 10


def test_without_enough_purchases_scores_are_unmeasured_not_strong():
    model, vectors = _toy()
    assert model.blend is None
    table = model.audience(vectors[0])
    assert set(table["segment"]) == {"unmeasured"} and "Too few purchases" in model.verdict(vectors[0])


def test_new_to_category_lists_shoppers_who_never_bought_it_with_reasons():
    # Tea and coffee look alike (cosine 0.9). 80 hot-drink shoppers buy 2-11 of the 30 teas and
    # 40 coffees at random, so some never happened to buy tea although they are as likely to as
    # the rest; 200 others buy garden and toys. A new tea's cross-category audience: the
    # hot-drink shoppers without a tea.
    rng = np.random.default_rng(3)
    centres = np.eye(4, 16)
    centres[1] = 0.9 * centres[0] + np.sqrt(1 - 0.81) * np.eye(4, 16)[1]
    names = ["Tea", "Coffee", "Garden", "Toys"]
    topic = np.repeat(np.arange(4), [30, 40, 60, 60])
    vectors = centres[topic] + 0.1 * rng.normal(size=(len(topic), 16))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    ids = [f"i{n}" for n in range(len(topic))]
    rows = []
    for u in range(280):
        kinds = [0, 1] if u < 80 else [2, 3]
        for i in rng.choice(np.flatnonzero(np.isin(topic, kinds)), size=int(rng.integers(2, 12)), replace=False):
            rows.append({"user_id": f"u{u}", "item_id": ids[i]})
    frame = pd.DataFrame(rows)
    model = build_audience(frame, ids, vectors, item_categories=[names[t] for t in topic])
    new_tea = _unit(centres[0] + 0.1 * centres[1])[0]
    assert model.category_of(new_tea) == "Tea"
    segment = model.new_to_category(new_tea, n=50)
    tea_buyers = set(frame.loc[frame["item_id"].isin(ids[:30]), "user_id"])
    hot_drinks = {f"u{u}" for u in range(80)}
    assert len(segment) >= 3 and set(segment["user_id"]) <= hot_drinks - tea_buyers
    assert (segment["score"] >= LIFT * model.blend.base_rate).all()  # calibrated probability
    for reasons in segment["reasons"]:  # what they bought instead: coffee
        assert 1 <= len(reasons) <= 3 and all(topic[ids.index(i)] == 1 for i, _ in reasons)
    table = model.audience(new_tea, None)
    assert set(table.loc[table["segment"] == "clear audience", "user_id"]) <= tea_buyers
    assert not set(table.loc[table["segment"] != "below threshold", "user_id"]) - hot_drinks


@pytest.mark.skipif(not lightfm_available(), reason="LightFM is optional: pip install -r requirements-audience.txt")
def test_lightfm_row_is_measured_when_installed():
    frame, ids, vectors = _world(content_driven=True)
    titles = [f"topic{np.argmax(v[:6])} item{n}" for n, v in enumerate(vectors)]
    items = pd.DataFrame({"item_id": ids, "title": titles})
    lookup = dict(zip(titles, vectors))
    result = evaluate_audience(items, frame, lambda texts: np.vstack([lookup[t] for t in texts]), seeds=1)
    by = {r["method"]: r for r in result["results"]}
    # Titles name the topic, so a real hybrid model ranks buyers well above chance.
    assert by["lightfm"]["auc"] > 0.6 and by["lightfm"]["recall@10"] > by["random"]["recall@10"]


def test_the_clear_threshold_is_where_held_out_pairs_buy_at_twice_the_average():
    # Pairs scoring above 0.8 are bought at rate 0.2, the rest at 0.02: the average is 0.056, so
    # pairs are bought at twice the average (0.112) or more exactly from 0.8 up.
    rng = np.random.default_rng(0)
    scores = rng.random(200_000)
    bought = rng.random(200_000) < np.where(scores > 0.8, 0.2, 0.02)
    t = clear_threshold(scores, bought)
    assert t == pytest.approx(0.8, abs=0.01)
    assert bought[scores >= t].mean() >= LIFT * bought.mean() > bought[scores < t].mean()
    # Nobody is ever clear when no score is bought at twice the average.
    assert clear_threshold(scores, np.arange(200_000) % 20 == 0) > scores.max()


@pytest.fixture
def shop(monkeypatch, tmp_path, tiny_model_dir):
    """A database (tiny model) with 120 catalog items in three kinds and 90 shoppers' purchases."""
    from coldrec.cli import main

    kinds = {"Cookware": ["steel pan", "cast iron skillet", "wok"], "Footwear": ["leather boot", "sneaker", "sandal"],
             "Tea": ["green tea", "black tea", "herbal tea"]}
    rows, rng = [], np.random.default_rng(0)
    for category, words in kinds.items():
        for n in range(40):
            rows.append({"item_id": f"{category[:1]}{n}", "title": f"{words[n % 3]} {n}", "category": category})
    catalog = pd.DataFrame(rows)
    catalog.to_csv(tmp_path / "catalog.csv", index=False)
    pd.DataFrame({"name": list(kinds), "description": ["pots and pans", "shoes", "tea leaves"]}).to_csv(
        tmp_path / "categories.csv", index=False
    )
    purchases = []
    for u in range(90):
        pool = catalog[catalog["category"] == list(kinds)[u % 3]]["item_id"].tolist()
        for i in rng.choice(pool, size=int(rng.integers(5, 15)), replace=False):
            purchases.append({"user_id": f"s{u}", "item_id": i})
    pd.DataFrame(purchases).to_csv(tmp_path / "purchases.csv", index=False)
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "shop.duckdb"))
    monkeypatch.setenv("COLDREC_MODEL", str(tiny_model_dir))
    monkeypatch.setenv("COLDREC_DEVICE", "cpu")
    assert main(["init", "--catalog", str(tmp_path / "catalog.csv"), "--categories", str(tmp_path / "categories.csv"),
                 "--interactions", str(tmp_path / "purchases.csv")]) == 0
    return tmp_path, pd.DataFrame(purchases)


def test_cli_audience_writes_the_clear_segment_as_csv(shop, capsys):
    import io

    from coldrec.cli import main

    tmp_path, purchases = shop
    capsys.readouterr()
    assert main(["audience", "T4", "--top", "8"]) == 0
    captured = capsys.readouterr()
    table = pd.read_csv(io.StringIO(captured.out.lstrip("\ufeff")))
    assert list(table.columns) == ["user_id", "segment", "score", "because_they_bought"]
    assert 1 <= len(table) <= 8 and set(table["segment"]) <= {"clear audience", "new to this category"}
    tea_fans = {f"s{u}" for u in range(2, 90, 3)}  # shoppers u % 3 == 2 buy tea
    assert set(table["user_id"]) <= tea_fans
    assert "clear audience" in captured.err and table["score"].is_monotonic_decreasing
    assert main(["audience", "T4", "--top", "200", "--include-weak", "-o", str(tmp_path / "all.csv")]) == 0
    everyone = pd.read_csv(tmp_path / "all.csv", encoding="utf-8-sig")
    assert len(everyone) == 90 and "below threshold" in set(everyone["segment"])


def test_cli_audience_explains_missing_items_and_purchases(shop, tmp_path, capsys, monkeypatch, tiny_model_dir):
    from coldrec.cli import main

    assert main(["audience", "NOPE"]) == 2
    assert "No item with id 'NOPE'" in capsys.readouterr().err
    monkeypatch.setenv("COLDREC_DB", str(tmp_path / "empty.duckdb"))
    assert main(["audience", "T4"]) == 2
    assert "No purchases yet" in capsys.readouterr().err


def test_two_sessions_scoring_at_once_fit_the_taste_ridge_once(monkeypatch):
    import threading
    import time

    import coldrec.audience as audience

    vectors = _unit(*[[1, 0.1 * i, 0, 0] for i in range(4)], *[[0, 0, 1, 0.1 * i] for i in range(4)])
    ids = [f"i{n}" for n in range(8)]
    frame = pd.DataFrame({"user_id": ["a"] * 4 + ["b"] * 4, "item_id": ids})
    model = build_audience(frame, ids, vectors, fit=False)
    fits = []
    real_fit = audience.fit_taste

    def slow_fit(*args, **kwargs):  # noqa: ANN002, ANN003, ANN202
        fits.append(1)
        time.sleep(0.2)  # long enough for the second session to ask meanwhile
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(audience, "fit_taste", slow_fit)
    results = []
    threads = [threading.Thread(target=lambda: results.append(model.taste_scores(vectors[:1]))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(fits) == 1 and len(results) == 2
    np.testing.assert_allclose(results[0], results[1])
