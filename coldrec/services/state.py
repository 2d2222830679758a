"""The workspace's one cache: every value derived from the database and the serving model.

A cached view names what it depends on (:class:`Depends`) and :meth:`State.key` builds its key
from those inputs, here and nowhere else, so two callers of one view cannot key it differently
and a view cannot forget the model. The serving encoder lives here too: :meth:`State.switch_encoder`
replaces it and drops every cached value and held object (the fitted classifier, the item index,
the audience model) in one step, so nothing computed with the old model survives a switch.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from ..encoder import TextEncoder
    from ..store import Store

T = TypeVar("T")


class Depends(enum.Flag):
    """The inputs a cached view is computed from; its key is built from exactly these."""

    MODEL = enum.auto()  #: the serving encoder's name
    ITEMS = enum.auto()  #: the stored items (ids and text)
    LABELS = enum.auto()  #: the label version
    CATEGORIES = enum.auto()  #: names, descriptions, paths and targets
    SETTINGS = enum.auto()  #: settings kept in the database
    REFIT = enum.auto()  #: background refits landed on the fitted classifier
    PURCHASES = enum.auto()  #: the stored purchases
    STORED_VECTORS = enum.auto()  #: how many vectors the embedding cache holds (another process may embed)
    #: Everything a prediction depends on: the key of every view that shows predictions.
    PREDICTIONS = MODEL | ITEMS | LABELS | CATEGORIES | SETTINGS | REFIT


class State:
    """The serving encoder and everything cached from it and the store (shared by every session
    of a dashboard process, so a costly view is computed once)."""

    def __init__(self, store: "Store", encoder: "TextEncoder") -> None:
        self.store = store
        self._encoder = encoder
        #: Guards the cache, the held objects and their hand-offs (reentrant: a build may read a held object).
        self.lock = threading.RLock()
        #: Held while a model is built or switched: a build never straddles a model switch.
        self.model_lock = threading.Lock()
        self._values: dict[str, tuple[tuple[object, ...], object]] = {}
        self._depends: dict[str, Depends] = {}
        self._held: dict[str, object] = {}
        self._refit_epoch = 0

    @property
    def encoder(self) -> "TextEncoder":
        """The model every session is served from."""
        return self._encoder

    def switch_encoder(self, encoder: "TextEncoder") -> None:
        """Serve from ``encoder`` from now on, dropping everything cached or held."""
        with self.model_lock, self.lock:
            self._encoder = encoder
            self._values.clear()
            self._held.clear()

    # -- keys -------------------------------------------------------------------------------
    def key(self, depends: Depends) -> tuple[object, ...]:
        """The current value of each input in ``depends`` (the one place a cache key is built)."""
        store = self.store
        parts: list[object] = []
        if Depends.MODEL in depends:
            parts.append(self._encoder.name)
        if Depends.ITEMS in depends:
            parts.append(store.catalog_fingerprint())
        if Depends.LABELS in depends:
            parts.append(store.label_version())
        if Depends.CATEGORIES in depends:
            parts.append(tuple(map(tuple, store.categories().fillna("").values.tolist())))
        if Depends.SETTINGS in depends:
            parts.append(store.settings_version())
        if Depends.REFIT in depends:
            parts.append(self._refit_epoch)
        if Depends.PURCHASES in depends:
            parts.append(store.interactions_version())
        if Depends.STORED_VECTORS in depends:
            parts.append(store.stats()["cached_vectors"])
        return tuple(parts)

    def version(self) -> tuple[object, ...]:
        """The key of everything a prediction depends on (see :data:`Depends.PREDICTIONS`)."""
        return self.key(Depends.PREDICTIONS)

    def refit_landed(self) -> None:
        """A background refit replaced the fitted classifier: views of predictions are stale."""
        with self.lock:
            self._refit_epoch += 1

    @property
    def refit_epoch(self) -> int:
        """How many background refits have landed on this process's classifier."""
        return self._refit_epoch

    # -- cached values ----------------------------------------------------------------------
    def memo(self, name: str, depends: Depends, build: Callable[[], T], extra: tuple[object, ...] = ()) -> T:
        """``build()``'s result, kept under ``name`` until an input in ``depends`` (or ``extra``,
        the view's own arguments that are not part of its name) changes."""
        key = self._checked_key(name, depends, extra)
        with self.lock:
            hit = self._values.get(name)
            if hit is not None and hit[0] == key:
                return hit[1]  # type: ignore[return-value]
        value = build()
        self.put(name, depends, value, extra, key=key)
        return value

    def put(self, name: str, depends: Depends, value: object, extra: tuple[object, ...] = (),
            key: tuple[object, ...] | None = None) -> None:
        """Keep ``value`` as ``name``'s current value (one computed outside :meth:`memo`), keyed by
        the inputs now (or by ``key``, taken before it was computed)."""
        key = self._checked_key(name, depends, extra) if key is None else key
        with self.lock:
            self._values[name] = (key, value)

    def clear(self) -> None:
        """Forget every cached value (held objects stay): the next view computes afresh."""
        with self.lock:
            self._values.clear()

    def drop(self, name: str) -> None:
        """Forget ``name``'s cached value (the next :meth:`memo` builds it again)."""
        with self.lock:
            self._values.pop(name, None)

    def _checked_key(self, name: str, depends: Depends, extra: tuple[object, ...]) -> tuple[object, ...]:
        with self.lock:
            known = self._depends.setdefault(name, depends)
        if known != depends:  # one view, two keys: the second caller would never hit (a bug)
            raise ValueError(f"cache entry {name!r} is keyed on {known}, not {depends}")
        return (*self.key(depends), *extra)

    # -- held objects (replaced in place, not rebuilt from a key) ------------------------------
    def held(self, name: str) -> object | None:
        """An object a service keeps between calls and updates itself (``None`` after a switch)."""
        with self.lock:
            return self._held.get(name)

    def hold(self, name: str, value: object | None) -> None:
        """Keep (or, with ``None``, drop) a held object."""
        with self.lock:
            if value is None:
                self._held.pop(name, None)
            else:
                self._held[name] = value
