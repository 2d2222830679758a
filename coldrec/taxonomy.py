"""Category taxonomies: reading path files, picking branches, and probabilities per level.

A path is a string ``"Home > Kitchen > Cookware"``: one node per level, the last segment
is the category's own name. Files are Google's product taxonomy text format (with or
without ``ID - `` prefixes) or any table (CSV, Excel, ...) with a path column or one
column per level. Node identity ignores case: the first spelling seen is kept.

Per-level probabilities: the probability of a node is the sum of the probabilities of
the categories under it, so a prediction can be sure of the department while unsure of
the leaf.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .errors import DataImportError
from .ingest import IngestError, Limits, _decode, _normalise_header, clean_text, read_file, read_table, row_numbers

SEPARATOR = " > "
#: Header names (normalised as in ingest) of a column holding whole paths, preferred in this order.
PATH_COLUMNS = ("path", "category_path", "full_path", "taxonomy", "breadcrumb", "category")
#: A level column: level1, level_1, "Level 1", lvl2, l3 ...
_LEVEL_COLUMN = re.compile(r"^(?:level|lvl|l)_?(\d+)$")
#: Google's "<id> - " prefix.
_ID_PREFIX = re.compile(r"^\d+\s+-\s+")
#: ">" and the breadcrumb arrow "›" copied from web pages both separate levels.
_SPLIT = re.compile(r"[>›]")
#: Suffixes read as one path per line (Google's format); everything else goes to read_table.
_LINE_SUFFIXES = ("", ".txt")
#: Levels a path may have: Google's product taxonomy is 7 deep; 20 leaves room for any real tree
#: while keeping nodes (paths x depth) and names bounded.
MAX_DEPTH = 20
#: A segment becomes a category name, and names are limited to 100 characters.
MAX_SEGMENT_CHARS = 100


def read_taxonomy(data: str | Path | bytes, filename: str | None = None) -> list[str]:
    """Paths ``"A > B > C"`` in file order, duplicates (ignoring case) dropped.

    ``.txt`` files (and bytes without a file name) are read one path per line as in Google's
    ``taxonomy[-with-ids].en-US.txt``: ``#`` comments and blank lines are skipped, a leading
    ``"<id> - "`` is removed. Other formats go through :func:`coldrec.ingest.read_table` and
    need a path column (see ``PATH_COLUMNS``) or level columns (``level1``, ``level_2``, ...);
    empty rows are skipped. Whitespace around and inside segments is normalised. Raises
    :class:`IngestError` naming the file and line (or row and column) of a bad path.
    """
    if isinstance(data, (str, Path)):
        filename = filename or Path(data).name
        data = read_file(data, filename)
    filename = filename or "upload"
    if Path(filename).suffix.lower() in _LINE_SUFFIXES:
        paths = _read_lines(data, filename)
    else:
        paths = _read_table_paths(data, filename)
    if not paths:
        raise IngestError(f"{filename}: no category paths found")
    return [SEPARATOR.join(p) for p in _canonical(paths)]


def _read_lines(data: bytes, filename: str) -> list[tuple[str, ...]]:
    limit = Limits().max_bytes
    if len(data) > limit:
        raise IngestError(f"{filename}: {len(data) / 1e6:.1f} MB is over the {limit / 1e6:.0f} MB limit")
    paths = []
    for number, line in enumerate(_decode(data, filename).splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if len(paths) >= Limits().max_rows:
            raise IngestError(f"{filename}: more than {Limits().max_rows:,} paths (at line {number:,})")
        paths.append(_parse_path(_ID_PREFIX.sub("", line), f"{filename}: line {number}"))
    return paths


def _read_table_paths(data: bytes, filename: str) -> list[tuple[str, ...]]:
    frame = read_table(data, filename)
    headers = {_normalise_header(c): c for c in frame.columns}
    # Row numbers as in ingest: data rows from 1 after the header (blank rows keep their number).
    numbers = [int(i) + 1 for i in frame.index]
    source = next((headers[name] for name in PATH_COLUMNS if name in headers), None)
    if source is not None:
        return [
            _parse_path(value, f"{filename}: row {row_numbers([number], filename)}, column {source!r}")
            for number, value in zip(numbers, frame[source].tolist())
            if clean_text(value)
        ]
    levels = sorted((int(m.group(1)), column) for name, column in headers.items() if (m := _LEVEL_COLUMN.match(name)))
    if len(levels) > MAX_DEPTH:
        raise IngestError(f"{filename}: {len(levels)} level columns, over the {MAX_DEPTH}-level limit")
    if not levels:
        cols = ", ".join(repr(c) for c in list(frame.columns)[:12])
        raise IngestError(
            f"{filename}: no path column found; name a column 'path' (with 'A > B > C') or give one column "
            f"per level ('level1', 'level2', ...). Columns in the file: {cols}"
        )
    paths = []
    for position, number in enumerate(numbers):
        cells = [clean_text(frame[column].iat[position]) for _, column in levels]
        if not any(cells):
            continue
        depth = max(i for i, cell in enumerate(cells) if cell) + 1
        gap = next((i for i in range(depth) if not cells[i]), None)
        if gap is not None:
            raise IngestError(f"{filename}: row {row_numbers([number], filename)}, column {levels[gap][1]!r}: "
                              "empty level between filled ones")
        paths.append(_check_path(tuple(cells[:depth]), f"{filename}: row {row_numbers([number], filename)}"))
    return paths


def _parse_path(value: object, where: str) -> tuple[str, ...]:
    """Segments of one path; an empty, over-long or repeated segment is an error reported at ``where``."""
    raw = str(value)
    levels = raw.count(">") + raw.count("›") + 1
    if levels > MAX_DEPTH:  # counted before splitting: a hostile file must not cost depth x paths
        raise IngestError(f"{where}: {levels} levels, over the {MAX_DEPTH}-level limit")
    if len(raw) > MAX_DEPTH * (MAX_SEGMENT_CHARS + 3):  # longer cannot pass the checks below: stop early
        raise IngestError(f"{where}: a path of {len(raw):,} characters is too long (at most {MAX_DEPTH} levels "
                          f"of {MAX_SEGMENT_CHARS} characters)")
    text = clean_text(raw)
    segments = tuple(clean_text(s) for s in _SPLIT.split(text))
    if not all(segments):
        raise IngestError(f"{where}: empty level in path {text!r}")
    return _check_path(segments, where)


def _check_path(segments: tuple[str, ...], where: str) -> tuple[str, ...]:
    """``segments`` if within the depth and name limits and free of a repeated node (a loop)."""
    if len(segments) > MAX_DEPTH:
        raise IngestError(f"{where}: {len(segments)} levels, over the {MAX_DEPTH}-level limit")
    long = next((s for s in segments if len(s) > MAX_SEGMENT_CHARS), None)
    if long is not None:
        raise IngestError(f"{where}: level {long[:40]!r}… is over {MAX_SEGMENT_CHARS} characters")
    folded = [s.casefold() for s in segments]
    repeated = next((s for i, s in enumerate(segments) if folded[i] in folded[:i]), None)
    if repeated is not None:
        raise IngestError(f"{where}: {repeated!r} appears twice in one path (a loop): {SEPARATOR.join(segments)!r}")
    return segments


def _split(path: str | None) -> tuple[str, ...]:
    """Segments of a path already in memory (no error reporting: empty segments are dropped)."""
    return tuple(s for s in (clean_text(p) for p in _SPLIT.split(path or "")) if s)


def _canonical(paths: Sequence[tuple[str, ...]]) -> list[tuple[str, ...]]:
    """Paths deduplicated ignoring case, every prefix spelled as it was first seen."""
    spelling: dict[tuple[str, ...], str] = {}
    out: dict[tuple[str, ...], tuple[str, ...]] = {}
    for segments in paths:
        key = tuple(s.casefold() for s in segments)
        for depth in range(1, len(key) + 1):
            spelling.setdefault(key[:depth], segments[depth - 1])
        out.setdefault(key, tuple(spelling[key[:d]] for d in range(1, len(key) + 1)))
    return list(out.values())


def branches(paths: Sequence[str], depth: int = 1) -> list[str]:
    """The distinct path prefixes of ``depth`` levels, in order of first appearance (for a branch picker)."""
    if depth < 1:
        raise DataImportError("depth counts levels from 1")
    prefixes = [p[:depth] for p in _canonical([_split(p) for p in paths]) if len(p) >= depth]
    return [SEPARATOR.join(p) for p in dict.fromkeys(prefixes)]


def taxonomy_categories(
    paths: Sequence[str],
    include: Sequence[str] = (),
    leaves_only: bool = True,
    max_depth: int | None = None,
) -> pd.DataFrame:
    """Categories (columns name, path, description) from taxonomy paths.

    ``include`` keeps the nodes under any of the given branches (whole-segment prefix
    match, ignoring case; the branch node itself counts as under it; empty keeps all) and
    raises :class:`DataImportError` for a branch that is not in the taxonomy. Ancestors implied by a
    path are nodes even when not listed. ``max_depth`` cuts paths to that many levels first,
    so the nodes at that depth become the leaves. ``leaves_only`` keeps nodes without
    children. ``name`` is the last segment; names shared (ignoring case) by several kept
    nodes get their parents added, ``"Pans (Kitchen)"`` then ``"Pans (Home > Kitchen)"``,
    until unique. ``description`` is ``None``: the path already gives the prompt its context.
    """
    if max_depth is not None and max_depth < 1:
        raise DataImportError("max_depth counts levels from 1")
    canonical = _canonical([_split(p) for p in paths])
    nodes = dict.fromkeys(p[:d] for p in canonical for d in range(1, len(p) + 1))
    if include:
        wanted = [tuple(s.casefold() for s in _split(b)) for b in include]
        keys = {tuple(s.casefold() for s in n) for n in nodes}
        missing = [b for b, key in zip(include, wanted) if key not in keys]
        if missing:
            raise DataImportError(f"branch(es) not in the taxonomy: {', '.join(repr(b) for b in missing)}")
        nodes = {n: None for n in nodes if any(tuple(s.casefold() for s in n[: len(w)]) == w for w in wanted)}
    if max_depth is not None:
        nodes = dict.fromkeys(n for n in nodes if len(n) <= max_depth)
    if leaves_only:
        parents = {n[:-1] for n in nodes}
        nodes = dict.fromkeys(n for n in nodes if n not in parents)
    kept = list(nodes)
    names = _unique_names(kept)
    return pd.DataFrame({"name": names, "path": [SEPARATOR.join(n) for n in kept], "description": [None] * len(kept)})


def _unique_names(nodes: list[tuple[str, ...]]) -> list[str]:
    """Last segments, with parents added to clashing names until names are unique ignoring case."""
    context = [0] * len(nodes)  # how many parent segments each name shows

    def name(i: int) -> str:
        node, extra = nodes[i], context[i]
        return node[-1] + (f" ({SEPARATOR.join(node[-1 - extra : -1])})" if extra else "")

    while True:
        groups: dict[str, list[int]] = {}
        for i in range(len(nodes)):
            groups.setdefault(name(i).casefold(), []).append(i)
        clashes = [g for g in groups.values() if len(g) > 1]
        grown = False
        for group in clashes:
            for i in group:
                if context[i] < len(nodes[i]) - 1:
                    context[i] += 1
                    grown = True
        if not grown:
            break
    names = [name(i) for i in range(len(nodes))]
    # Only a segment literally named like "X (Y)" can still clash: number the later ones.
    seen: dict[str, int] = {}
    for i, n in enumerate(names):
        count = seen.get(n.casefold(), 0)
        seen[n.casefold()] = count + 1
        if count:
            names[i] = f"{n} {count + 1}"
    return names


def level_matrices(categories: Sequence[str], paths: Sequence[str | None]) -> list[tuple[list[str], np.ndarray]]:
    """Per taxonomy level 1..max depth: node names and a ``(n_categories, n_nodes)`` 0/1 membership matrix.

    A node is named by its path prefix (``"Home > Kitchen"``). Each category row has exactly
    one 1, so ``proba @ matrix`` gives node probabilities whose rows sum to 1. A category
    whose path is shorter than the level (or ``None``/empty: a single-level category named
    by itself) is its own node at deeper levels.
    """
    if len(categories) != len(paths):
        raise ValueError(f"{len(categories)} categories but {len(paths)} paths")
    chains = [_split(p) or (clean_text(c),) for c, p in zip(categories, paths)]
    depth = max((len(c) for c in chains), default=0)
    out = []
    for level in range(1, depth + 1):
        prefixes = [SEPARATOR.join(chain[:level]) for chain in chains]
        index: dict[str, int] = {}
        names: list[str] = []
        columns = []
        for prefix in prefixes:
            key = prefix.casefold()  # nodes match ignoring case, as everywhere in the taxonomy
            if key not in index:
                index[key] = len(names)
                names.append(prefix)
            columns.append(index[key])
        matrix = np.zeros((len(chains), len(names)), dtype=np.float32)
        matrix[np.arange(len(chains)), columns] = 1.0
        out.append((names, matrix))
    return out


def top_per_level(categories: Sequence[str], paths: Sequence[str | None], proba: np.ndarray) -> pd.DataFrame:
    """The most likely node per item and level: columns item (row of ``proba``), level, node, probability.

    ``proba`` is ``(n_items, n_categories)`` over ``categories``; a node's probability is the
    sum over the categories under it (see :func:`level_matrices`). One row per item per level,
    ordered by item then level.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(categories):
        raise ValueError(f"proba must be (n_items, {len(categories)}), got {proba.shape}")
    levels = level_matrices(categories, paths)
    n = len(proba)
    frames = []
    for level, (names, matrix) in enumerate(levels, start=1):
        node_proba = proba @ matrix
        best = node_proba.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
        frames.append(
            pd.DataFrame(
                {
                    "item": np.arange(n),
                    "level": level,
                    "node": [names[j] for j in best],
                    "probability": node_proba[np.arange(n), best],
                }
            )
        )
    if not frames:
        return pd.DataFrame({"item": [], "level": [], "node": [], "probability": []})
    return pd.concat(frames).sort_values(["item", "level"], kind="stable").reset_index(drop=True)


def prediction_path(categories: Sequence[str], paths: Sequence[str | None], proba: np.ndarray) -> pd.DataFrame:
    """The ancestors of each item's most likely category, with the probability of each: columns
    item, level, node, probability (a node's probability is the sum over the categories under it).

    Unlike :func:`top_per_level`, the nodes form one chain ("Home 0.97 › Home > Kitchen 0.91 ›
    Home > Kitchen > Cookware 0.55"), so a prediction reads as sure of the department and unsure
    of the leaf. Probabilities never increase down the chain.
    """
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != 2 or proba.shape[1] != len(categories):
        raise ValueError(f"proba must be (n_items, {len(categories)}), got {proba.shape}")
    n = len(proba)
    leaf = proba.argmax(axis=1) if n else np.zeros(0, dtype=np.int64)
    frames = []
    for level, (names, matrix) in enumerate(level_matrices(categories, paths), start=1):
        node = matrix.argmax(axis=1)[leaf]  # each category row has exactly one 1
        frames.append(
            pd.DataFrame(
                {
                    "item": np.arange(n),
                    "level": level,
                    "node": [names[j] for j in node],
                    "probability": (proba @ matrix)[np.arange(n), node],
                }
            )
        )
    if not frames:
        return pd.DataFrame({"item": [], "level": [], "node": [], "probability": []})
    return pd.concat(frames).sort_values(["item", "level"], kind="stable").reset_index(drop=True)
