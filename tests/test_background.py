"""Background: one owner of coldrec's threads, one task per key, cancellation and close."""

from __future__ import annotations

import logging
import threading

from coldrec.background import Background


def test_one_task_per_key_while_it_runs():
    background = Background()
    release = threading.Event()
    runs = []

    def work(cancelled: threading.Event) -> None:
        runs.append(1)
        release.wait(5)

    assert background.start("search", work) is True
    assert background.start("search", work) is False  # asked again while running: nothing started
    assert background.running("search")
    release.set()
    background.wait("search", 5)
    assert not background.running("search") and runs == [1]
    assert background.start("search", work) is True  # a finished key runs again
    background.close()


def test_close_cancels_and_joins_every_task():
    background = Background()
    stopped = []

    def work(cancelled: threading.Event) -> None:
        while not cancelled.wait(0.01):
            pass
        stopped.append(threading.current_thread().name)

    background.start("a", work)
    background.start("b", work)
    background.close(timeout=5)
    assert sorted(stopped) == ["coldrec: a", "coldrec: b"]
    assert not background.running("a") and not background.running("b")


def test_a_failing_task_is_logged_and_frees_its_key(caplog):
    background = Background()

    def work(cancelled: threading.Event) -> None:
        raise RuntimeError("boom")

    with caplog.at_level(logging.ERROR, logger="coldrec"):
        background.start("broken", work)
        background.wait("broken", 5)
    assert "background task 'broken' failed" in caplog.text and "boom" in caplog.text
    assert not background.running("broken")


def test_closing_a_workspace_stops_its_refit(workspace, monkeypatch):
    import coldrec.services.predictor as predictor_module

    monkeypatch.setattr(predictor_module, "EXACT_MAX_ITEMS", 0)  # a large workspace: refits in the background
    workspace.predictor.classifier()
    workspace.close()
    assert not workspace.background.running("refit")


def test_a_task_waits_at_its_yield_points_while_a_click_is_served():
    import time

    background = Background()
    steps = []

    def work(cancelled: threading.Event) -> None:
        for step in range(3):
            background.yield_to_foreground(cancelled)
            steps.append(step)

    with background.foreground():
        with background.foreground():  # nested clicks (a prediction inside a label's rerun)
            background.start("refit", work)
            time.sleep(0.3)
        time.sleep(0.2)
        assert steps == []  # held at its first yield point while any click is in progress
    background.wait("refit", 5)
    assert steps == [0, 1, 2]
    background.close()


def test_a_cancelled_task_stops_waiting_and_a_thread_never_waits_for_itself():
    background = Background()
    cancelled = threading.Event()
    with background.foreground():
        background.yield_to_foreground()  # the click's own thread: returns at once
        waiter = threading.Thread(target=background.yield_to_foreground, args=(cancelled,))
        waiter.start()
        waiter.join(0.3)
        assert waiter.is_alive()
        cancelled.set()
        waiter.join(2)
        assert not waiter.is_alive()
    background.close()
