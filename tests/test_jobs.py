"""The background job runner: one job at a time, progress, cancel, errors."""

from __future__ import annotations

import threading

import pytest

from coldrec.errors import ModelError, NotReadyError
from coldrec.jobs import JobRunner


class Stop(Exception):
    pass


def test_one_job_at_a_time_with_progress_and_result() -> None:
    runner = JobRunner()
    assert runner.status() is None
    go = threading.Event()

    def task(job):  # noqa: ANN001, ANN202
        job.progress("training", 1, 4)
        go.wait(10)
        job.progress("training", 2, 4)
        return {"answer": 42}

    runner.start("fit", task)
    with pytest.raises(NotReadyError, match="still running"):
        runner.start("another", lambda job: None)
    status = runner.status()
    assert status.running and status.title == "fit" and status.elapsed_s >= 0
    go.set()
    done = runner.wait(10)
    assert done.state == "done" and done.result == {"answer": 42} and (done.done, done.total) == (2, 4)
    assert done.eta_s is None and done.finished is not None
    runner.start("again", lambda job: "ok")  # a finished job frees the runner
    assert runner.wait(10).result == "ok"


def test_eta_follows_the_pace_of_the_current_phase() -> None:
    runner = JobRunner()
    go = threading.Event()

    def task(job):  # noqa: ANN001, ANN202
        job.progress("re-embedding items", 5, 10)
        go.wait(10)

    runner.start("fit", task)
    while runner.status().done < 5:
        pass
    status = runner.status()
    assert status.phase == "re-embedding items" and status.eta_s is not None and status.eta_s >= 0
    go.set()
    runner.wait(10)


def test_cancel_reaches_the_task_and_is_reported_as_cancelled() -> None:
    runner = JobRunner()
    started = threading.Event()

    def task(job):  # noqa: ANN001, ANN202
        started.set()
        while not job.cancelled():
            pass
        raise Stop

    assert not runner.cancel()  # nothing running
    runner.start("fit", task, cancelled_errors=(Stop,))
    started.wait(10)
    assert runner.cancel()
    assert runner.wait(10).state == "cancelled"


def test_a_user_error_keeps_its_message_and_a_bug_does_not_leak() -> None:
    runner = JobRunner()
    runner.start("fit", lambda job: (_ for _ in ()).throw(ModelError("model 'x' could not be loaded")))
    failed = runner.wait(10)
    assert failed.state == "failed" and failed.error == "model 'x' could not be loaded"
    runner.start("fit", lambda job: 1 / 0)
    bug = runner.wait(10)
    assert bug.state == "failed" and "internal error" in bug.error and "ZeroDivision" not in bug.error
