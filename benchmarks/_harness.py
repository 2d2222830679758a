"""What every benchmark records with its figures: the machine, its load, the commit; one result shape.

A result is ``{"benchmark", "commit", "date", "machine", "load_average_start", "load_average_end", ...figures}``
(:func:`result` starts it, :func:`finish` closes and writes it). Benchmarks are scripts: they import
this module and ``coldrec``, never the tests.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "benchmarks" / "results"
SHARED = ROOT.parent / "shared" / "datasets"

#: Flags for Debian's Chromium driven headless by Playwright (the browser benchmark and test).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]


def machine() -> dict[str, object]:
    """CPU model, cores, memory, GPU and library versions of this machine (torch only if importable)."""
    cpu = platform.processor()
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                   if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    info: dict[str, object] = {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem_gb, 1),
                               "python": platform.python_version()}
    try:
        import torch
        import transformers

        info.update(gpu=torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
                    torch=torch.__version__, torch_threads=torch.get_num_threads(),
                    transformers=transformers.__version__)
    except ImportError:
        pass
    return info


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages (other work on the machine skews every timing)."""
    return [round(x, 2) for x in os.getloadavg()]


def commit(checkout: Path = ROOT) -> str:
    """The short commit of ``checkout`` (``unknown`` outside git)."""
    out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=checkout, capture_output=True, text=True)
    return out.stdout.strip() or "unknown"


def result(benchmark: str, **figures: object) -> dict[str, object]:
    """A result started now: what ran, where, on which commit, under which load."""
    return {"benchmark": benchmark, "commit": commit(), "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            "machine": machine(), "load_average_start": load_average(), **figures}


def finish(record: dict[str, object], path: Path | None = None) -> str:
    """Close ``record`` (load at the end), write it to ``path`` if given, and return it as JSON text."""
    record["load_average_end"] = load_average()
    text = json.dumps(record, indent=2, ensure_ascii=False, default=str)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text + "\n")
    return text


def free_port() -> int:
    """A free TCP port on localhost."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
