"""The one owner of coldrec's background threads.

Work that must not hold up a click (a large workspace's refit, the near-duplicate search at
100k items, a fine-tuning job) runs through a :class:`Background`: one task per key at a time
(asking again while it runs is a no-op), each with a cancellation event it can poll, and
:meth:`Background.close` cancels and joins them all, so a workspace closes without a thread
still reading it. Nothing else in coldrec starts a thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger("coldrec")


class Background:
    """Daemon threads keyed by what they compute."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._tasks: dict[str, tuple[threading.Thread, threading.Event]] = {}

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
        for thread, _ in tasks:
            if thread is not threading.current_thread():
                thread.join(timeout)


__all__ = ["Background"]
