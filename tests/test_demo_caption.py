"""The demo's onboarding caption and README state the purchase count the demo really loads.

``data/demo/interactions.csv`` has 3,466 rows, 46 of them exact repeats, which the import drops:
``coldrec init`` and ``stats`` report 3,420 purchases, so "Load the demo" must not promise 3,466.
"""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pandas as pd

from coldrec import ui

PROJECT = Path(__file__).resolve().parent.parent


def _loaded_purchases() -> int:
    return len(pd.read_csv(PROJECT / "data" / "demo" / "interactions.csv", dtype=str).drop_duplicates())


def _stated(text: str) -> set[int]:
    return {int(n.replace(",", "")) for n in re.findall(r"([\d,]+) purchases by 160 shoppers", text)}


def test_demo_caption_states_the_purchases_the_demo_loads() -> None:
    assert _stated(inspect.getsource(ui.start_here)) == {_loaded_purchases()}


def test_readme_states_the_purchases_the_demo_loads() -> None:
    assert _stated((PROJECT / "README.md").read_text()) == {_loaded_purchases()}
