"""CLI commands while the dashboard runs: the dashboard process serves them over a local socket.

DuckDB lets one process open a database file for writing (DuckDB 2.0 still has no multi-process
writer, and a read-only open is refused while another process writes). So the process that holds
the file serves the others: the dashboard listens on a Unix socket whose name is derived from the
database's path, and a CLI command that finds the database locked sends its arguments there
instead of failing. The dashboard runs it on its own open workspace (the same store, model and
caches: one source of predictions for both) and sends back the exit status and output, so
``predict --save-batch`` of a nightly feed lands while merchandisers label, with nothing lost.

Only the same user may connect: the socket is created mode 0600 and the peer's uid is checked.
One command runs at a time.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import struct
import sys
import tempfile
import threading
from pathlib import Path

#: Largest request accepted (arguments only; files are read from disk by path).
MAX_REQUEST_BYTES = 1 << 20


def socket_path(db_path: str | Path) -> Path:
    """Where the process holding ``db_path`` listens (in the temp folder: socket paths are limited
    to about 100 characters, database paths are not)."""
    digest = hashlib.sha256(str(Path(db_path).resolve()).encode("utf-8")).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"coldrec-{os.getuid()}-{digest}.sock"


def serve(ws: object) -> bool:
    """Serve CLI commands for ``ws``'s database from a background task of ``ws`` (stopped when it
    closes). Returns whether it listens (not for an in-memory database, or when the socket
    cannot be created)."""
    db = str(ws.store.path)  # type: ignore[attr-defined]
    if db == ":memory:" or not db:
        return False
    path = socket_path(db)
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        try:
            path.unlink()  # a stale socket of a process that died: this process holds the database now
        except FileNotFoundError:
            pass
        old_umask = os.umask(0o177)
        try:
            server.bind(str(path))
        finally:
            os.umask(old_umask)
        server.listen(4)
        server.settimeout(0.2)  # how soon the loop sees a cancellation (close waits for it)
    except OSError:
        server.close()
        return False

    def loop(cancelled: threading.Event) -> None:
        try:
            while not cancelled.is_set():
                try:
                    conn, _ = server.accept()
                except TimeoutError:
                    continue
                with conn:
                    _answer(conn, ws)
        finally:
            server.close()
            try:
                path.unlink()
            except OSError:
                pass

    ws.background.start("cli-server", loop)  # type: ignore[attr-defined]
    return True


def _answer(conn: socket.socket, ws: object) -> None:
    from .cli import run_hosted

    conn.settimeout(None)
    if not _same_user(conn):
        return
    try:
        request = json.loads(_read_all(conn, MAX_REQUEST_BYTES))
        argv = request["argv"]
        if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
            raise ValueError("argv must be a list of strings")
    except (ValueError, KeyError, TypeError):
        _send(conn, {"status": 2, "stdout": "", "stderr": _b64(b"error: a malformed request to the dashboard\n")})
        return
    from .access import local_operator

    with local_operator():  # the dashboard's own OS user, who may open the database file anyway
        status, out, err = run_hosted(argv, ws)
    _send(conn, {"status": status, "stdout": _b64(out), "stderr": _b64(err)})


def forward(db_path: str | Path, argv: list[str]) -> int | None:
    """Run ``argv`` in the process serving ``db_path``; print its output here and return its exit
    status, or ``None`` when no process serves it (the lock belongs to another CLI command)."""
    path = socket_path(db_path)
    if not path.exists():
        return None
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        client.connect(str(path))
    except OSError:
        client.close()
        return None
    with client:
        print("(the dashboard holds this database: running the command there)", file=sys.stderr)
        client.sendall(json.dumps({"argv": argv}).encode("utf-8"))
        client.shutdown(socket.SHUT_WR)
        reply = json.loads(_read_all(client, None))
    sys.stdout.flush()
    sys.stdout.buffer.write(base64.b64decode(reply["stdout"]))
    sys.stdout.flush()
    sys.stderr.buffer.write(base64.b64decode(reply["stderr"]))
    sys.stderr.flush()
    return int(reply["status"])


def _same_user(conn: socket.socket) -> bool:
    try:
        _, uid, _ = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i")))
    except (OSError, AttributeError):  # no SO_PEERCRED (not Linux): the socket's mode 0600 still applies
        return True
    return uid == os.getuid()


def _read_all(conn: socket.socket, limit: int | None) -> bytes:
    chunks, size = [], 0
    while chunk := conn.recv(65536):
        size += len(chunk)
        if limit is not None and size > limit:
            raise ValueError("request too large")
        chunks.append(chunk)
    return b"".join(chunks)


def _send(conn: socket.socket, reply: dict[str, object]) -> None:
    try:
        conn.sendall(json.dumps(reply).encode("utf-8"))
    except OSError:  # the client went away
        pass


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


__all__ = ["MAX_REQUEST_BYTES", "forward", "serve", "socket_path"]
