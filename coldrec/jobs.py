"""One long task at a time in a background thread that the server process owns.

The dashboard keeps one :class:`JobRunner` per process (a cached resource), so a job survives
page reloads and reruns: any session can read its progress or cancel it. The task gets a
:class:`JobContext` to report ``(phase, done, total)`` and to ask whether it was cancelled.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

from .background import Background
from .errors import ColdrecError, NotReadyError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobStatus:
    """A consistent copy of a job's state (what a page renders)."""

    title: str
    #: ``running``, ``done``, ``failed`` or ``cancelled``.
    state: str
    phase: str = "starting"
    done: int = 0
    total: int = 0
    started: float = 0.0
    finished: float | None = None
    phase_started: float = 0.0
    result: object = None
    #: The message of a failure the user should read (a :class:`ColdrecError`), or "internal error".
    error: str = ""
    cancel_requested: bool = False

    @property
    def running(self) -> bool:
        return self.state == "running"

    @property
    def elapsed_s(self) -> float:
        """Seconds since the job started (until it finished)."""
        return (self.finished or time.time()) - self.started

    @property
    def eta_s(self) -> float | None:
        """Seconds left in the current phase at its pace so far (``None`` before the first step)."""
        if not self.running or self.done <= 0 or self.total <= 0:
            return None
        spent = time.time() - self.phase_started
        return spent / self.done * max(0, self.total - self.done)


class JobContext:
    """Handed to a running task: report progress, check for cancellation."""

    def __init__(self, runner: "JobRunner") -> None:
        self._runner = runner

    def progress(self, phase: str, done: int, total: int) -> None:
        """The task is at ``done`` of ``total`` steps of ``phase``."""
        self._runner._update(phase, done, total)

    def cancelled(self) -> bool:
        """Whether someone asked to cancel (the task should stop and leave things as they were)."""
        status = self._runner.status()
        return bool(status and status.cancel_requested)


class JobRunner:
    """Runs at most one task at a time in a daemon thread and keeps the last one's status."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._status: JobStatus | None = None
        self._background = Background()

    def start(self, title: str, task: Callable[[JobContext], object], cancelled_errors: tuple[type, ...] = ()) -> None:
        """Start ``task(context)`` in the background. ``cancelled_errors``: exceptions that mean the
        task stopped because it was cancelled. Raises :class:`NotReadyError` while another runs."""
        with self._lock:
            if self._status is not None and self._status.running:
                raise NotReadyError(f"{self._status.title!r} is still running: wait for it or cancel it")
            now = time.time()
            self._status = JobStatus(title=title, state="running", started=now, phase_started=now)
            self._background.start("job", lambda _: self._run(task, cancelled_errors))

    def _run(self, task: Callable[[JobContext], object], cancelled_errors: tuple[type, ...]) -> None:
        try:
            result = task(JobContext(self))
            self._finish("done", result=result)
        except cancelled_errors:
            self._finish("cancelled")
        except ColdrecError as exc:
            self._finish("failed", error=str(exc))
        except Exception:  # a bug: keep the traceback in the log, tell the user less
            log.exception("background job failed")
            self._finish("failed", error="internal error (the server log has the details)")

    def _finish(self, state: str, result: object = None, error: str = "") -> None:
        with self._lock:
            assert self._status is not None
            self._status = replace(self._status, state=state, finished=time.time(), result=result, error=error)

    def _update(self, phase: str, done: int, total: int) -> None:
        with self._lock:
            if self._status is None:
                return
            status = self._status
            phase_started = status.phase_started if phase == status.phase else time.time()
            self._status = replace(status, phase=phase, done=done, total=total, phase_started=phase_started)

    def status(self) -> JobStatus | None:
        """The running or last job's status (``None`` before the first)."""
        with self._lock:
            return self._status

    def cancel(self) -> bool:
        """Ask the running job to stop; returns whether one was running."""
        with self._lock:
            if self._status is None or not self._status.running:
                return False
            self._status = replace(self._status, cancel_requested=True)
            return True

    def wait(self, timeout: float | None = None) -> JobStatus | None:
        """Block until the current job ends (or ``timeout``); its status."""
        self._background.wait("job", timeout)
        return self.status()
