"""The one owner of coldrec's background threads.

Work that must not hold up a click (a large workspace's refit, the near-duplicate search at
100k items, a fine-tuning job) runs through a :class:`Background`: one task per key at a time
(asking again while it runs is a no-op), each with a cancellation event it can poll, and
:meth:`Background.close` cancels and joins them all, so a workspace closes without a thread
still reading it. Nothing else in coldrec starts a thread that outlives its call (a call may split
its own work over a pool it joins before returning, as ``VectorIndex.load_checked`` does).

Clicks come first: while a caller is inside :meth:`Background.foreground` (a label being shown,
a prediction), a task that calls :meth:`Background.yield_to_foreground` between its steps waits
there. Lowering the thread's priority is not enough: numpy's OpenBLAS serialises concurrent
matrix products, so a click's small product waited for the refit's large ones (a 2,000-row
product took 1.0-4.9 s instead of 0.011 s beside a thread multiplying 200,000 rows, niced or not;
BENCHMARKS.md, "Labels while a refit is pending").
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator

log = logging.getLogger("coldrec")


class Background:
    """Daemon threads keyed by what they compute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, tuple[threading.Thread, threading.Event]] = {}
        self._busy: dict[int, int] = {}  # thread id -> how deep it is inside foreground()
        self._idle = threading.Condition(self._lock)

    @contextlib.contextmanager
    def foreground(self) -> Iterator[None]:
        """While open (a click's work), tasks wait at their next :meth:`yield_to_foreground`."""
        me = threading.get_ident()
        with self._lock:
            self._busy[me] = self._busy.get(me, 0) + 1
        try:
            yield
        finally:
            with self._lock:
                self._busy[me] -= 1
                if not self._busy[me]:
                    del self._busy[me]
                if not self._busy:
                    self._idle.notify_all()

    def yield_to_foreground(self, cancelled: threading.Event | None = None) -> None:
        """Called by a task between steps: wait while any caller is inside :meth:`foreground`
        (returns at once otherwise, or when ``cancelled`` is set). A foreground call made by a
        task's own thread does not wait for itself."""
        me = threading.get_ident()
        with self._lock:
            while (len(self._busy) - (me in self._busy)) and not (cancelled is not None and cancelled.is_set()):
                self._idle.wait(0.5)  # a timeout, so a cancel is noticed without a notify

    def start(self, key: str, work: Callable[[threading.Event], object]) -> bool:
        """Run ``work(cancelled)`` in a thread unless a task under ``key`` is still running.

        ``cancelled`` is set by :meth:`cancel` or :meth:`close`; long work should poll it.
        An exception in ``work`` is logged with its traceback (it is a bug or the task's own
        error to report through its result). Returns whether a thread was started.
        """
        with self._lock:
            running = self._tasks.get(key)
            if running is not None and running[0].is_alive():
                return False
            cancelled = threading.Event()

            def run() -> None:
                try:
                    work(cancelled)
                except BaseException:  # noqa: BLE001 - a thread's failure must reach the log
                    log.exception("background task %r failed", key)
                finally:
                    with self._lock:
                        if self._tasks.get(key, (None,))[0] is threading.current_thread():
                            del self._tasks[key]

            thread = threading.Thread(target=run, name=f"coldrec: {key}", daemon=True)
            self._tasks[key] = (thread, cancelled)
            thread.start()
            return True

    def running(self, key: str) -> bool:
        """Whether a task under ``key`` is running."""
        with self._lock:
            task = self._tasks.get(key)
            return task is not None and task[0].is_alive()

    def cancel(self, key: str) -> bool:
        """Ask the task under ``key`` to stop; returns whether one was running."""
        with self._lock:
            task = self._tasks.get(key)
        if task is None:
            return False
        task[1].set()
        return True

    def wait(self, key: str, timeout: float | None = None) -> None:
        """Block until the task under ``key`` ends (or ``timeout``)."""
        with self._lock:
            task = self._tasks.get(key)
        if task is not None:
            task[0].join(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Cancel every task and wait for them (at most ``timeout`` seconds each)."""
        with self._lock:
            tasks = list(self._tasks.values())
        for _, cancelled in tasks:
            cancelled.set()
        with self._lock:
            self._idle.notify_all()
        for thread, _ in tasks:
            if thread is not threading.current_thread():
                thread.join(timeout)


__all__ = ["Background"]
