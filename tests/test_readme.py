"""The README's "Use from Python" example runs as written, with the real bundled model."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import numpy as np
import pandas as pd

from coldrec import ui

PROJECT = Path(__file__).resolve().parent.parent

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_python_example_runs_and_predicts_what_it_says(real_encoder, monkeypatch, capsys):
    text = README.read_text()
    block = re.search(r"<!-- readme-example -->\s*```python\n(.*?)```", text, re.S)
    assert block, "the README lost its Python example"
    namespace: dict[str, object] = {}
    exec(compile(block.group(1), "README.md", "exec"), namespace)  # noqa: S102 - our own README
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "['Cookware' 'Footwear' 'Toys']"
    assert printed[1] == "['Cookware']"
    proba = namespace["proba"]
    assert np.allclose(np.asarray(proba).sum(axis=1), 1.0, atol=1e-5)
    why = namespace["why"]
    assert why.category == "Cookware" and len(why.top) == 3 and why.evidence


# -- the demo caption and README state the purchases the demo loads (46 of its rows are exact repeats) --
def _loaded_purchases() -> int:
    return len(pd.read_csv(PROJECT / "data" / "demo" / "interactions.csv", dtype=str).drop_duplicates())


def _stated(text: str) -> set[int]:
    return {int(n.replace(",", "")) for n in re.findall(r"([\d,]+) purchases by 160 shoppers", text)}


def test_demo_caption_states_the_purchases_the_demo_loads() -> None:
    assert _stated(inspect.getsource(ui.start_here)) == {_loaded_purchases()}


def test_readme_states_the_purchases_the_demo_loads() -> None:
    assert _stated((PROJECT / "README.md").read_text()) == {_loaded_purchases()}
