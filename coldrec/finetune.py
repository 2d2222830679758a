"""Fine-tune the encoder on the merchandisers' labels and keep the result as a model version.

Two methods share one training loop written on transformers (no sentence-transformers
trainer: that needs ``accelerate`` + ``datasets`` and its own model wrapper, while this loop
reuses the encoder's own pooling and tokenizer and is ~60 lines):

- ``contrastive``: every weight is trained with a supervised in-batch contrastive loss
  (SetFit's idea of learning from same/different-category pairs, but every pair in a batch
  counts, so one forward pass yields B² pairs instead of B). Each category's prompt
  (``category_prompt``) joins the batch as an extra labelled anchor, so the categories'
  zero-shot vectors move with their examples.
- ``lora``: the same loss, but only low-rank adapters on the attention query/value
  projections are trained (``peft``); the saved version is the small adapter.

Training reads labelled items only: adapting the encoder to the catalogue's own titles without
labels first (unsupervised SimCSE, issue 23) was measured, and every variant tried lost at every
k from 4 on both Flipkart title sets (BENCHMARKS.md, "Unsupervised adaptation on the workspace's
texts").

A version is a folder ``<models dir>/<name>/`` (``data/models`` beside the database) with the
weights or adapter and ``card.json`` (base model, method, labels used, date, held-out accuracy
before/after). Its encoder's ``name`` -- the embedding-cache key -- ends with ``+<name>``, so
every version keeps its own cached vectors and switching back re-embeds nothing.
"""

from __future__ import annotations

import copy
import json
import math
import shutil
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .encoder import Encoder, TextEncoder, load_encoder
from .errors import ModelError, NotReadyError
from .versions import CARD, active_encoder, concrete, list_versions, load_version, models_dir, read_card

METHODS = ("contrastive", "lora")
#: What ``finetune`` runs unless told otherwise (the better one measured, BENCHMARKS.md).
DEFAULT_METHOD = "contrastive"
#: Passes over the labelled items (each item is an anchor once per pass).
DEFAULT_EPOCHS = 4
#: Wall-clock cap of one fit on a CPU; on a GPU there is none unless asked for.
CPU_MAX_MINUTES = 10.0
#: Items per step. 32 is the usual contrastive batch for MiniLM on a CPU-sized memory budget.
BATCH_SIZE = 32
#: Softmax temperature of the contrastive loss: sentence-transformers' default scale of 20.
TEMPERATURE = 0.05
#: Learning rates: SetFit's default for the whole body; LoRA's paper range for adapters.
LEARNING_RATE = {"contrastive": 2e-5, "lora": 5e-4}
#: Training reads at most this many tokens per text: a title and the start of its description
#: (the rest costs CPU time and adds little to what separates categories). Embedding still
#: reads the model's full length.
TRAIN_MAX_TOKENS = 64
#: Share of each category's labels held out to check a new version before switching to it.
HOLDOUT_SHARE = 0.2
#: A category needs this many labels before any of them is held out.
MIN_LABELS_TO_HOLD_OUT = 5
#: Fewer held-out labels than this cannot tell two models apart: no fine-tuning.
MIN_HELD_OUT = 10
#: Mean labels per category from which fine-tuning is offered. Below it the held-out check has
#: under 3 labels per category to judge by, and on Flipkart fine-tuning did not beat the frozen
#: model at 4 per category (BENCHMARKS.md, "Fine-tuning the encoder"; nor, on a CPU, at 16 or 32).
MIN_LABELS_PER_CATEGORY = 16


#: ``progress(phase, done, total)`` while a fit or a re-embedding runs.
PhaseProgress = Callable[[str, int, int], None]


class Cancelled(Exception):
    """A fine-tuning run was cancelled; nothing was switched."""


@dataclass
class FitResult:
    """A fine-tuned network and what it took."""

    method: str
    model: object  # the trained torch module (a peft model for LoRA)
    steps: int
    planned_steps: int
    seconds: float
    #: True when the time cap ended training before the planned epochs.
    capped: bool


def _device_type(device: str) -> str:
    return device.split(":")[0]


def fit(
    encoder: Encoder,
    texts: Sequence[str],
    labels: Sequence[str],
    anchors: dict[str, str] | None = None,
    method: str = DEFAULT_METHOD,
    epochs: int = DEFAULT_EPOCHS,
    max_minutes: float | None = None,
    progress: PhaseProgress | None = None,
    cancelled: Callable[[], bool] | None = None,
    seed: int = 0,
) -> FitResult:
    """Fine-tune a copy of ``encoder``'s network on labelled ``texts`` (the encoder is untouched).

    ``anchors`` maps a label to its category prompt, added to each batch holding that label.
    Training stops after ``epochs`` passes or ``max_minutes`` (default: 10 on a CPU, none on a
    GPU). ``cancelled()`` is checked every step; when true, :class:`Cancelled` is raised.
    """
    import torch

    if method not in METHODS:
        raise ModelError(f"unknown fine-tuning method {method!r}; valid methods: {', '.join(METHODS)}")
    if len(texts) != len(labels) or len(set(labels)) < 2:
        raise NotReadyError("fine-tuning needs labelled examples of at least two categories")
    if max_minutes is None and encoder.device == "cpu":
        max_minutes = CPU_MAX_MINUTES
    deadline = time.perf_counter() + max_minutes * 60 if max_minutes else math.inf
    started = time.perf_counter()
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)

    net = copy.deepcopy(encoder._model).float()  # train in fp32; the live encoder keeps serving
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        # r=8 with alpha=16 on query/value: the LoRA paper's setting for BERT-sized encoders.
        net = get_peft_model(net, LoraConfig(r=8, lora_alpha=16, lora_dropout=0.1, target_modules=["query", "value"]))
    net.train()
    params = [p for p in net.parameters() if p.requires_grad]
    optimiser = torch.optim.AdamW(params, lr=LEARNING_RATE[method], weight_decay=0.01)

    classes = sorted(set(labels))
    class_of = {c: i for i, c in enumerate(classes)}
    y = np.array([class_of[label] for label in labels])
    anchors = {c: t for c, t in (anchors or {}).items() if c in class_of}
    steps_per_epoch = math.ceil(len(texts) / BATCH_SIZE)
    planned = max(1, epochs) * steps_per_epoch
    warmup = max(1, planned // 10)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimiser, lambda s: min(1.0, (s + 1) / warmup) * max(0.0, (planned - s) / max(1, planned - warmup))
    )
    autocast = _device_type(encoder.device) == "cuda"
    step = 0
    capped = False
    for _ in range(max(1, epochs)):
        order = rng.permutation(len(texts))
        for start in range(0, len(order), BATCH_SIZE):
            if cancelled is not None and cancelled():
                raise Cancelled("fine-tuning was cancelled")
            if time.perf_counter() > deadline:
                capped = True
                break
            idx = order[start : start + BATCH_SIZE]
            batch_y = list(y[idx])
            present = [c for c in sorted(set(batch_y)) if classes[c] in anchors]
            # Items and the (short) prompts go through separately: one padded batch would pad
            # every prompt to the longest description.
            parts = [[texts[i] for i in idx]] + ([[anchors[classes[c]] for c in present]] if present else [])
            vecs = torch.cat([_embed_for_training(encoder, net, part, autocast) for part in parts])
            loss = contrastive_loss(vecs, torch.tensor(batch_y + present, device=vecs.device))
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimiser.step()
            scheduler.step()
            step += 1
            if progress is not None:
                # One fixed total per stage (a re-estimated one jumped: 1/9, 2/6, 7/7): the
                # planned steps. A time cap may end the stage before it; the card says so.
                progress("training", step, planned)
        if capped:
            break
    net.eval()
    return FitResult(method, net, step, planned, time.perf_counter() - started, capped)


def _embed_for_training(encoder: Encoder, net, texts: list[str], autocast: bool):  # noqa: ANN001, ANN202 - torch
    """Unit vectors of ``texts`` from the network being trained (gradients kept)."""
    import torch

    enc = encoder._tokenizer(  # type: ignore[operator]
        texts, padding=True, truncation=True, max_length=min(TRAIN_MAX_TOKENS, encoder.max_length), return_tensors="pt"
    ).to(encoder.device)
    with torch.autocast("cuda", dtype=torch.bfloat16, enabled=autocast):
        hidden = net(**enc).last_hidden_state
    return torch.nn.functional.normalize(encoder._pool(hidden.float(), enc["attention_mask"]), dim=1)


def contrastive_loss(vectors, labels, temperature: float = TEMPERATURE):  # noqa: ANN001, ANN201 - torch tensors
    """Supervised contrastive loss (Khosla et al. 2020) over unit ``vectors``: each row is pulled
    towards the rows with its label and pushed from the others, every pair in the batch counted."""
    import torch

    sim = vectors @ vectors.T / temperature
    n = len(labels)
    self_mask = torch.eye(n, dtype=torch.bool, device=vectors.device)
    sim = sim.masked_fill(self_mask, float("-inf"))
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    positive = (labels[:, None] == labels[None, :]) & ~self_mask
    has_positive = positive.any(dim=1)
    if not has_positive.any():
        return (vectors * 0).sum()  # nothing to pull together in this batch
    per_row = -(log_prob.masked_fill(~positive, 0.0).sum(dim=1)) / positive.sum(dim=1).clamp(min=1)
    return per_row[has_positive].mean()


def tuned_encoder(base: Encoder, result: FitResult, name: str) -> Encoder:
    """An :class:`Encoder` over the fine-tuned network (LoRA adapters merged for speed)."""
    net = result.model
    if result.method == "lora":
        net = copy.deepcopy(net).merge_and_unload()  # type: ignore[attr-defined]
    dtype = next(base._model.parameters()).dtype  # type: ignore[attr-defined]
    return Encoder(
        name=name, dim=base.dim, device=base.device, pooling=base.pooling, max_length=base.max_length,
        batch_size=base.batch_size, _tokenizer=base._tokenizer, _model=net.to(dtype).eval(),  # type: ignore[attr-defined]
        _lock=threading.Lock(),
    )


def finetune_for_evaluation(
    encoder: TextEncoder,
    texts: Sequence[str],
    labels: Sequence[str],
    anchors: dict[str, str],
    seed: int = 0,
    **options: object,
) -> tuple[Encoder, FitResult]:
    """What ``evaluate --methods coldrec+finetune`` runs per seed and k: fit on the support set and
    return the fine-tuned encoder (never saved) with the fit's figures."""
    encoder = concrete(encoder)
    if not isinstance(encoder, Encoder) or getattr(encoder, "backend", "torch") != "torch":
        raise ModelError("coldrec+finetune needs a torch transformer encoder (load_encoder), not a substitute")
    result = fit(encoder, texts, labels, anchors, seed=seed, **options)  # type: ignore[arg-type]
    return tuned_encoder(encoder, result, f"{encoder.name}+eval-{result.method}-{seed}"), result


# -- versions on disk ----------------------------------------------------------------------


def version_name(method: str, now: datetime | None = None) -> str:
    """A new version's folder name: ``ft-<UTC date-time>-<method>``."""
    now = now or datetime.now(timezone.utc)
    return f"ft-{now:%Y%m%d-%H%M%S}-{method}"


def save_version(folder: Path, result: FitResult, base: Encoder, card: dict[str, object], merge: bool = False) -> Path:
    """Write the weights (or the LoRA adapter unless ``merge``), tokenizer and ``card.json`` to
    ``folder``, atomically: a half-written folder is never a version."""
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    adapter = result.method == "lora" and not merge
    net = result.model if adapter or result.method != "lora" else copy.deepcopy(result.model).merge_and_unload()  # type: ignore[attr-defined]
    net.save_pretrained(tmp)  # type: ignore[attr-defined]
    base._tokenizer.save_pretrained(tmp)  # type: ignore[attr-defined]
    full = {**card, "method": result.method, "weights": "adapter" if adapter else "full", "pooling": base.pooling, "max_length": base.max_length,
            "steps": result.steps, "planned_steps": result.planned_steps, "capped": result.capped,
            "train_seconds": round(result.seconds, 1)}
    (tmp / CARD).write_text(json.dumps(full, indent=2) + "\n")
    tmp.rename(folder)
    return folder


def remove_stale_saves(directory: Path) -> list[str]:
    """Delete the ``ft-*.tmp`` folders a killed save left under ``directory`` (about 90 MB each);
    returns their names. Call it only while holding the database for writing: a save in progress
    belongs to the process that holds it, so none can be running then."""
    removed = []
    if not directory.is_dir():
        return removed
    for folder in directory.glob("ft-*.tmp"):
        if folder.is_dir() and not folder.is_symlink():
            shutil.rmtree(folder, ignore_errors=True)
            removed.append(folder.name)
    return removed


# -- improving a workspace's model ----------------------------------------------------------


def holdout_split(labels: Sequence[str], seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Train and held-out row numbers: per category with at least 5 labels, 20% (at least one)
    held out at random; smaller categories train only."""
    rng = np.random.default_rng(seed)
    labels = np.asarray(labels, dtype=object)
    held: list[int] = []
    for c in sorted(set(labels)):
        rows = np.flatnonzero(labels == c)
        if len(rows) >= MIN_LABELS_TO_HOLD_OUT:
            held.extend(rng.choice(rows, size=max(1, round(HOLDOUT_SHARE * len(rows))), replace=False).tolist())
    mask = np.zeros(len(labels), dtype=bool)
    mask[held] = True
    return np.flatnonzero(~mask), np.flatnonzero(mask)


def readiness(ws) -> dict[str, object]:  # noqa: ANN001 - Workspace
    """Whether fine-tuning is offered now, and why (what the page and CLI say first)."""
    labels = ws.store.labels()
    n_categories = len(ws.store.category_names())
    per_category = len(labels) / n_categories if n_categories else 0.0
    _, held = holdout_split(labels["category"].tolist()) if len(labels) else (None, [])
    encoder = concrete(ws.encoder)
    if getattr(encoder, "backend", "torch") in ("numpy", "pair"):
        reason = ("the multilingual model (Universal Sentence Encoder, numpy) cannot be fine-tuned, alone or paired "
                  "with MiniLM; fine-tuning is offered for all-MiniLM-L6-v2 and other torch transformer models "
                  "(choose one above)")
    elif not isinstance(encoder, Encoder) or getattr(encoder, "backend", "torch") != "torch":
        reason = "the current model cannot be fine-tuned (it is not a torch transformer encoder; unset COLDREC_BACKEND)"
    elif n_categories < 2 or labels["category"].nunique() < 2:
        reason = "label examples of at least two categories first"
    elif per_category < MIN_LABELS_PER_CATEGORY:
        reason = (f"your categories average {per_category:.1f} labels; fine-tuning needs {MIN_LABELS_PER_CATEGORY} "
                  "per category, because with fewer it did not beat the frozen model (BENCHMARKS.md) and too few "
                  "labels could be held out to check it, so label more first")
    elif len(held) < MIN_HELD_OUT:
        reason = f"only {len(held)} labels could be held out to check the result; it needs {MIN_HELD_OUT}"
    else:
        reason = ""
    return {"ready": not reason, "reason": reason, "labels": len(labels), "categories": n_categories,
            "labels_per_category": round(per_category, 1), "held_out": len(held)}


def held_out_correct(
    ws, encoder: TextEncoder, texts: list[str], labels: list[str], train, held,  # noqa: ANN001 - Workspace
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Per held-out label: whether the default predictor with ``encoder``'s vectors (cached in the
    store) predicts it, the held-out items in its graph. ``progress(done, total)`` counts the
    texts still to embed (one fixed total)."""
    from .classify import category_prompt
    from .encoder import embed_texts
    from .estimator import ColdStartClassifier

    cats = ws.store.categories()
    prompts = embed_texts(encoder, [category_prompt(n, d, p) for n, d, p in cats[["name", "description", "path"]]
                                    .itertuples(index=False)], cache=ws.store)
    vectors = embed_texts(encoder, texts, cache=ws.store, progress=progress)
    model = ColdStartClassifier().fit(  # the product's predictor, the held-out items in its graph
        vectors[train], [labels[i] for i in train], categories=cats["name"].tolist(), prompt_vectors=prompts,
        unlabelled=vectors[held],
    )
    predicted = np.array(model.categories)[model.predict_proba(vectors[held]).argmax(axis=1)]
    return predicted == np.array([labels[i] for i in held], dtype=object)


#: A new version is adopted only when the paired test says it is better at this level (one-sided).
ADOPT_P_VALUE = 0.05


def comparison_text(card: dict[str, object]) -> str:
    """The paired test of a card in words: "12 held-out labels right only with the new model, 3 only
    with the old (exact McNemar, one-sided p = 0.018); accuracy difference +3.0 points, 95% interval
    +0.6 to +5.4". Empty for a card written before the test was recorded."""
    if "gained" not in card:
        return ""
    low, high = card["difference_interval"]  # type: ignore[misc]
    return (f"{card['gained']} held-out labels right only with the new model, {card['lost']} only with the old "
            f"(exact McNemar, one-sided p = {float(card['p_value']):.3f}; adopted below {ADOPT_P_VALUE}); accuracy "
            f"difference {100 * (float(card['accuracy_after']) - float(card['accuracy_before'])):+.1f} points, 95% interval "
            f"{100 * float(low):+.1f} to {100 * float(high):+.1f}")


def paired_comparison(before: np.ndarray, after: np.ndarray) -> dict[str, object]:
    """Exact McNemar test of two models on the same held-out labels (``before``/``after``: per
    label, right or wrong). Only the discordant labels count: ``gained`` (the new model right,
    the old wrong) against ``lost``. ``p_value`` is the one-sided exact binomial probability of at
    least ``gained`` of the ``gained + lost`` discordant labels going the new model's way if both
    models were equally good; ``better`` when it is under :data:`ADOPT_P_VALUE`. ``interval``: a
    95% interval of the accuracy difference (after - before), Agresti-Min's paired Wald interval
    (half a label added to each cell), so one label's gain on 300 reads "+0.3 points, -0.9 to +1.5"."""
    before, after = np.asarray(before, dtype=bool), np.asarray(after, dtype=bool)
    n = len(before)
    gained, lost = int(np.sum(after & ~before)), int(np.sum(before & ~after))
    discordant = gained + lost
    p_value = sum(math.comb(discordant, k) for k in range(gained, discordant + 1)) / 2**discordant if discordant else 1.0
    m, b, c = n + 2, lost + 0.5, gained + 0.5
    diff = (c - b) / m
    half = 1.96 * math.sqrt(max((b + c) - (c - b) ** 2 / m, 0.0)) / m
    return {"held_out": n, "gained": gained, "lost": lost, "p_value": round(float(p_value), 4),
            "difference": round((gained - lost) / n, 4) if n else 0.0,
            "interval": [round(diff - half, 4), round(diff + half, 4)],
            "better": bool(gained > lost and p_value < ADOPT_P_VALUE)}


def improve_model(
    ws,  # noqa: ANN001 - Workspace
    method: str = DEFAULT_METHOD,
    epochs: int = DEFAULT_EPOCHS,
    max_minutes: float | None = None,
    progress: PhaseProgress | None = None,
    cancelled: Callable[[], bool] | None = None,
    force: bool = False,
    actor: str | None = None,
) -> dict[str, object]:
    """Fine-tune the workspace's model on its labels, save a version, and switch to it when the
    held-out check says it is better.

    20% of each category's labels (with 5+) are held out; the rest train, with the category
    prompts as extra anchors. The default predictor's answers on the held-out labels are compared
    with the current and the new model by an exact McNemar test (:func:`paired_comparison`). The
    version is saved either way (its card holds the counts, p-value and interval); only one the
    test calls better is re-embedded for every item and made active, and the previous
    one stays on disk and in the cache. ``force`` skips the readiness rule (not the held-out check).
    A cancelled run (:class:`Cancelled`) saves and switches nothing. Returns the card.
    """
    from .ingest import item_text

    ws.access.require(actor, "model")
    state = readiness(ws)
    if not state["ready"] and not (force and state["held_out"] >= MIN_HELD_OUT and isinstance(concrete(ws.encoder), Encoder)):
        raise NotReadyError(f"fine-tuning is not offered yet: {state['reason']}")
    base: Encoder = concrete(ws.encoder)  # type: ignore[assignment]
    labels_frame = ws.store.labels()
    texts = [item_text(t, d) for t, d in zip(labels_frame["title"], labels_frame["description"])]
    labels = labels_frame["category"].tolist()
    train, held = holdout_split(labels)
    cats = ws.store.categories()
    from .classify import category_prompt

    anchors = {n: category_prompt(n, d, p) for n, d, p in cats[["name", "description", "path"]].itertuples(index=False)}
    before = held_out_correct(ws, base, texts, labels, train, held)
    result = fit(base, [texts[i] for i in train], [labels[i] for i in train], anchors, method=method, epochs=epochs,
                 max_minutes=max_minutes, progress=progress, cancelled=cancelled)
    name = version_name(method)
    current = str(ws.store.get_meta("model_version") or "")
    base_model = base.name.split("+ft-")[0]
    tuned = tuned_encoder(base, result, f"{base_model}+{name}")
    # The check embeds every labelled text with the new model: its progress counts those texts.
    to_embed = len(set(texts))
    if progress is not None:
        progress("checking on held-out labels", 0, to_embed)
    after = held_out_correct(ws, tuned, texts, labels, train, held,
                             progress=(lambda done, total: progress("checking on held-out labels", min(done, to_embed),
                                                                    to_embed)) if progress else None)
    if progress is not None:
        progress("checking on held-out labels", to_embed, to_embed)
    if cancelled is not None and cancelled():
        raise Cancelled("fine-tuning was cancelled")
    test = paired_comparison(before, after)
    better = bool(test["better"])
    card = {
        "base_model": base_model, "base_source": ws.models.base_source(), "trained_from": current or base_model,
        "labels_used": len(train), "held_out": len(held), "categories": int(len(set(labels))),
        "epochs": epochs, "device": base.device, "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "accuracy_before": round(float(np.mean(before)), 4), "accuracy_after": round(float(np.mean(after)), 4),
        "better": better, "gained": test["gained"], "lost": test["lost"], "p_value": test["p_value"],
        "difference_interval": test["interval"],
    }
    # Adapters trained on top of a fine-tuned version are saved merged, so every version loads
    # from its card's base model alone.
    folder = save_version(models_dir(ws.settings.db_path) / name, result, base, card, merge=current.startswith("ft-"))
    card = {**read_card(folder), "name": name}
    if better:
        items = ws.store.items()
        descriptions = items["description"].fillna("")
        from .encoder import embed_texts

        embed_texts(tuned, [item_text(t, d) for t, d in zip(items["title"], descriptions)], cache=ws.store,
                    progress=(lambda done, total: progress("re-embedding items", done, total)) if progress else None)
        if cancelled is not None and cancelled():
            raise Cancelled("fine-tuning was cancelled (the version is saved; the active model is unchanged)")
        switch_version(ws, name, encoder=tuned, actor=actor)
    return card


def switch_version(ws, name: str | None, encoder: Encoder | None = None, actor: str | None = None) -> None:  # noqa: ANN001 - Workspace
    """Make version ``name`` (``None`` = the configured base model) the workspace's model for every
    session; vectors already cached for it are reused."""
    ws.access.require(actor, "model")
    if name:
        folder = models_dir(ws.settings.db_path) / name
        if not (folder / CARD).is_file():
            raise ModelError(f"model version {name!r} is not in {folder.parent}")
        encoder = encoder or load_version(folder, ws.settings.device)
    else:
        encoder = encoder or load_encoder(ws.models.base_source(), ws.settings.device)
    ws.models.use_encoder(encoder, actor=actor)
    ws.store.set_meta("model_version", name or "")


__all__ = [
    "Cancelled", "DEFAULT_METHOD", "FitResult", "METHODS", "active_encoder", "contrastive_loss", "fit",
    "finetune_for_evaluation", "comparison_text", "held_out_correct", "improve_model", "paired_comparison", "list_versions",
    "load_version", "models_dir", "read_card",
    "readiness", "save_version", "switch_version", "tuned_encoder",
]
