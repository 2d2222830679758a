"""Several labellers on one queue: each gets a card nobody else is looking at (issue 24).

A card shown to a signed-in labeller is claimed by them for :data:`CLAIM_SECONDS` (renewed while
they keep it open; one card each), and the others' queues skip it. A claim only steers who sees
what: a label given anyway is still checked against the labels given since the card was drawn
(:class:`~coldrec.errors.LabelConflict`). Local mode (no sign-in) claims nothing: one person.
"""

from __future__ import annotations

from collections.abc import Sequence

#: How long a card stays reserved for the person looking at it without a click.
CLAIM_SECONDS = 120


def next_card(ws: object, item_ids: Sequence[str], who: str) -> str | None:
    """The first of ``item_ids`` (the queue, best first) that nobody else has claimed, now claimed
    by ``who``; ``None`` when others hold them all. In local mode, or for someone who may not label
    (a viewer), simply the first."""
    if not ws.access.sign_in or not ws.access.allows(who, "label"):  # type: ignore[attr-defined]
        return str(item_ids[0]) if len(item_ids) else None  # one person, or a viewer: nothing to reserve
    return ws.store.claim_first([str(i) for i in item_ids], who, CLAIM_SECONDS)  # type: ignore[attr-defined]


def release(ws: object, who: str) -> None:
    """Give up ``who``'s card (skipped, or they left the queue)."""
    if ws.access.sign_in:  # type: ignore[attr-defined]
        ws.store.release_claims(who)  # type: ignore[attr-defined]


__all__ = ["CLAIM_SECONDS", "next_card", "release"]
