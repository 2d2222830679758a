"""Labelling with sign-in on versus off, and five people labelling one queue at once (issue 24).

Both parts run on the demo (data/demo, bundled model), built fresh in a temporary folder.

1. **Paired, sign-in on vs off.** Label next, key 1, through Streamlit's AppTest exactly as
   bench_clicks.py times it (click to the end of the whole-page run): once as a signed-in
   labeller (an ``[auth]`` section in the secrets, ``st.user`` seeded: the role lookup, the claim
   and the conflict check run) and once in local mode, alternating which goes first, ``--pairs``
   times. Same process, same workspace, so the difference is what sign-in adds.
2. **Five sessions at once.** ``--sessions`` threads (a dashboard serves each browser session on
   its own thread over the one workspace, as here), each a signed-in labeller, each doing
   ``--clicks`` Label next clicks: take a card (the queue, then a claim), label it with the first
   suggestion and the label version the card was drawn at. A click's latency is the label plus
   the next card (what the card fragment computes after a key press). Afterwards every label a
   session was told was saved is looked up in the label history (no label lost), and items that
   got labels from two sessions are counted (the claims should leave none).

Usage: python benchmarks/bench_team.py [--pairs 8] [--sessions 5] [--clicks 10]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks._harness import finish, result  # noqa: E402

AUTH = {
    "auth": {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "b" * 32, "client_id": "bench",
             "client_secret": "bench", "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"},
    "coldrec": {"admins": ["lead@bench.test"]},
}


def _p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def _summary(values: list[float]) -> dict[str, float]:
    return {"n": len(values), "median_s": round(statistics.median(values), 3), "p95_s": round(_p95(values), 3),
            "max_s": round(max(values), 3)}


def _queue_page(ws, signed_in: bool):  # noqa: ANN001, ANN201
    from streamlit.testing.v1 import AppTest

    from coldrec import ui

    ui.Workspace.open = classmethod(lambda cls, settings=None, encoder=None: ws)  # type: ignore[method-assign]
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    if signed_in:
        at.secrets = AUTH
        at.user = {"is_logged_in": True, "email": "ana@bench.test"}
    else:
        at.session_state["who"] = "bench"
    at.run()
    at = at.switch_page("pages/queue.py").run()
    if at.exception:
        raise RuntimeError(at.exception[0].message)
    return at


def _key_1(at) -> float:  # noqa: ANN001
    button = next(b for b in at.button if b.label.startswith("1 · "))
    started = time.perf_counter()
    button.click().run()
    elapsed = time.perf_counter() - started
    if at.exception:
        raise RuntimeError(at.exception[0].message)
    return elapsed


def paired(ws, pairs: int) -> dict[str, object]:  # noqa: ANN001
    pages = {False: _queue_page(ws, False), True: _queue_page(ws, True)}
    for at in pages.values():  # warm: the first click of each refits and draws everything once
        _key_1(at)
    times: dict[bool, list[float]] = {False: [], True: []}
    for pair in range(pairs):
        for mode in ((False, True) if pair % 2 == 0 else (True, False)):
            times[mode].append(_key_1(pages[mode]))
    differences = [on - off for on, off in zip(times[True], times[False])]
    return {"local_mode": _summary(times[False]), "signed_in": _summary(times[True]),
            "median_difference_s": round(statistics.median(differences), 3),
            "differences_s": [round(d, 3) for d in differences]}


def simultaneous(ws, sessions: int, clicks: int) -> dict[str, object]:  # noqa: ANN001
    from coldrec import access, claims, labelling
    from coldrec.errors import LabelConflict

    people = [f"labeller{i}@bench.test" for i in range(sessions)]
    with access.local_operator():
        for email in people:
            access.set_role(ws, "lead@bench.test", email, "labeller")
    start = threading.Barrier(sessions)
    latencies: list[float] = []
    saved: dict[str, list[str]] = {p: [] for p in people}
    conflicts: list[str] = []
    errors: list[str] = []
    lock = threading.Lock()

    def card(who: str):  # noqa: ANN202 - (item_id, suggestion, label version) or None
        queue = labelling.queue(ws, "margin", n=20)
        seen = ws.store.label_version()
        mine = claims.next_card(ws, queue["item_id"].tolist(), who)
        if mine is None:
            return None
        row = queue[queue["item_id"] == mine].iloc[0]
        return mine, row["suggestion"], seen

    def session(who: str) -> None:
        try:
            start.wait()
            shown = card(who)
            for _ in range(clicks):
                if shown is None:
                    return
                item_id, suggestion, seen = shown
                began = time.perf_counter()
                try:
                    ws.labels.label(item_id, suggestion, who=who, source="accepted", since=seen)
                    ok = True
                except LabelConflict:
                    ok = False
                shown = card(who)
                elapsed = time.perf_counter() - began
                with lock:
                    latencies.append(elapsed)
                    (saved[who] if ok else conflicts).append(item_id)
        except Exception as exc:  # noqa: BLE001 - reported, not swallowed
            with lock:
                errors.append(f"{who}: {type(exc).__name__}: {exc}")

    threads = [threading.Thread(target=session, args=(p,)) for p in people]
    began = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - began
    history = ws.store.label_history()
    found = {p: set(history.loc[history["who"] == p, "item_id"]) for p in people}
    lost = sum(len(set(saved[p]) - found[p]) for p in people)
    mine = history[history["who"].isin(people)]
    doubled = int((mine.groupby("item_id")["who"].nunique() > 1).sum())
    return {"sessions": sessions, "clicks_each": clicks, "wall_s": round(wall, 2),
            "labels_saved": sum(len(v) for v in saved.values()), "labels_in_history": int(len(mine)),
            "labels_lost": lost, "items_labelled_by_two_sessions": doubled, "conflicts_shown": len(conflicts),
            "errors": errors, "click": _summary(latencies) if latencies else {}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--sessions", type=int, default=5)
    parser.add_argument("--clicks", type=int, default=10)
    args = parser.parse_args()
    from threadpoolctl import threadpool_limits

    from coldrec.config import Settings
    from coldrec.workspace import Workspace

    record = result("team", pairs=args.pairs)
    with tempfile.TemporaryDirectory() as tmp, threadpool_limits(limits=1, user_api="blas"):
        ws = Workspace.open(Settings(db_path=Path(tmp) / "demo.duckdb"))
        try:
            ws.load_demo()
            from coldrec import access

            with access.local_operator():
                access.set_role(ws, "lead@bench.test", "ana@bench.test", "labeller")
            record["paired_key_1"] = paired(ws, args.pairs)
            ws.access.configure(sign_in=True, admins=["lead@bench.test"])
            record["simultaneous"] = simultaneous(ws, args.sessions, args.clicks)
        finally:
            ws.close()
    print(finish(record, ROOT / "benchmarks" / "results" / "team.json"))


if __name__ == "__main__":
    main()
