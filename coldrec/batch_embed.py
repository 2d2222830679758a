"""Embed a whole catalog into Parquet shards, in this process or on a Ray cluster.

``embed_catalog`` reads a catalog (a Parquet file, a folder of Parquet files, or a CSV file)
and writes shards of ``(item_id, text_hash, model, vector)``; ``load_vectors`` puts such
shards into a workspace's embedding cache (DuckDB reads the Parquet itself), so
``init --vectors DIR`` never re-embeds them. Rows are prepared exactly as ``init`` prepares
them (:func:`coldrec.ingest.prepare_items`, :func:`coldrec.ingest.item_text`), so the text
hashes match and every vector is found.

On Ray (an optional extra, ``requirements-scale.txt``) the same :class:`EmbedBatch` callable
runs in Ray Data's ``map_batches``: one model per actor, one actor per GPU (``num_gpus=1``)
when the cluster has GPUs, else one single-threaded actor per CPU.
"""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from .encoder import ProgressFn, embed_texts, load_encoder, text_hash
from . import errors
from .errors import ColdrecError, ConfigError, DataImportError, IngestError
from .ingest import item_text, prepare_items

#: Rows handed to one embedding call: several forward batches, so length-sorting within the
#: call removes most padding while every actor still gets work on a small catalog.
BATCHES_PER_CALL = 8
#: Rows per shard written in-process (Ray writes one shard per block).
ROWS_PER_SHARD = 100_000
SHARD_COLUMNS = ("item_id", "text_hash", "model", "vector")


def shard_schema(dim: int) -> pa.Schema:
    """Schema of a vector shard; the fixed-size list records the dimension in the file."""
    return pa.schema(
        [
            ("item_id", pa.string()),
            ("text_hash", pa.string()),
            ("model", pa.string()),
            ("vector", pa.list_(pa.float32(), dim)),
        ]
    )


class EmbedBatch:
    """Catalog rows in, vector rows out; loads the model once (per Ray actor, or per process).

    ``batch`` is a pandas frame of raw catalog columns; ids, titles and descriptions are
    taken as ``init`` takes them, so items without an id get the same content ids.
    """

    def __init__(
        self,
        model: str | None = None,
        device: str | None = None,
        batch_size: int | None = None,
        backend: str | None = None,
        filename: str = "catalog",
    ) -> None:
        self.encoder = load_encoder(model, device, batch_size=batch_size, backend=backend)
        self.filename = filename

    def __call__(self, batch: pd.DataFrame) -> pa.Table:
        """Embed one batch of rows (identical texts once) as a table in :func:`shard_schema`.

        Row numbers in messages follow ``batch``'s index (in-process: the file's rows).
        """
        items = prepare_items(batch, self.filename, id_prefix="CAT")
        texts = [item_text(t, d) for t, d in zip(items["title"], items["description"])]
        vectors = np.ascontiguousarray(embed_texts(self.encoder, texts), dtype=np.float32)
        dim = self.encoder.dim
        return pa.table(
            {
                "item_id": pa.array(items["item_id"].tolist(), pa.string()),
                "text_hash": pa.array([text_hash(t) for t in texts], pa.string()),
                "model": pa.array([self.encoder.name] * len(texts), pa.string()),
                "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), dim),
            },
            schema=shard_schema(dim),
        )


@dataclass(frozen=True)
class EmbedSummary:
    """What :func:`embed_catalog` wrote."""

    rows: int
    shards: int
    model: str
    out: Path
    seconds: float
    engine: str


def _catalog_format(path: Path) -> str:
    """``parquet`` (a file or a folder of them) or ``csv`` (comma-separated); anything else is refused."""
    if path.is_dir():
        if not any(path.rglob("*.parquet")):
            raise IngestError(f"{path}: the folder holds no .parquet files")
        return "parquet"
    if not path.is_file():
        raise IngestError(f"{path}: no such file or folder")
    suffix = path.suffix.lower()
    if suffix in (".parquet", ".pq"):
        return "parquet"
    if suffix == ".csv":
        return "csv"
    raise IngestError(f"{path.name}: embed reads Parquet (a file or a folder) or CSV, not {suffix or 'this file'}")


def _csv_options(path: Path) -> tuple[object, object]:
    """pyarrow CSV options that read every column as text (as ``init`` does) and allow quoted newlines."""
    import pyarrow.csv as pacsv

    with path.open("rb") as fh:
        header = pacsv.open_csv(fh).schema.names
    parse = pacsv.ParseOptions(newlines_in_values=True)
    convert = pacsv.ConvertOptions(column_types={name: pa.string() for name in header}, strings_can_be_null=False)
    return parse, convert


def _read_batches(path: Path, fmt: str, rows: int) -> Iterator[pd.DataFrame]:
    """The catalog as pandas frames of at most ``rows`` rows, read lazily."""
    import pyarrow.dataset as ds

    if fmt == "csv":
        parse, convert = _csv_options(path)
        source = ds.dataset(str(path), format=ds.CsvFileFormat(parse_options=parse, convert_options=convert))
    else:
        source = ds.dataset(str(path), format="parquet")
    offset = 0
    for record_batch in source.to_batches(batch_size=rows):
        if record_batch.num_rows:
            frame = record_batch.to_pandas()
            frame.index = pd.RangeIndex(offset, offset + len(frame))  # so messages name the file's rows
            offset += len(frame)
            yield frame


def _prepare_out(out: Path) -> None:
    """Create ``out``; refuse one that already holds shards (mixing two runs would be silent)."""
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} is a file, not a folder")
    if out.is_dir() and any(out.rglob("*.parquet")):
        raise ConfigError(f"--out {out} already holds Parquet shards; choose an empty folder or delete them first")
    out.mkdir(parents=True, exist_ok=True)


def embed_catalog(
    catalog: str | Path,
    out: str | Path,
    model: str | None = None,
    device: str | None = None,
    batch_size: int | None = None,
    backend: str | None = None,
    ray_address: str | None = None,
    progress: ProgressFn | None = None,
) -> EmbedSummary:
    """Embed every row of ``catalog`` into Parquet shards under ``out``.

    ``ray_address`` ``None`` runs in this process; ``"local"`` starts a Ray cluster on this
    machine (or uses the one already started in this process); anything else is the address
    of a running cluster (``ray://host:10001`` or ``host:6379``).
    """
    path, out = Path(catalog), Path(out)
    fmt = _catalog_format(path)
    if batch_size is not None and batch_size < 1:
        raise ConfigError(f"--batch-size must be at least 1, got {batch_size}")
    # Resolved here, not in each actor: a remote actor does not see this process's environment.
    backend = backend or os.environ.get("COLDREC_BACKEND") or "torch"
    _prepare_out(out)
    started = time.perf_counter()
    if ray_address is None:
        rows, shards, name = _embed_in_process(path, fmt, out, model, device, batch_size, backend, progress)
        engine = "in-process"
    else:
        rows, shards, name = _embed_on_ray(path, fmt, out, model, device, batch_size, backend, ray_address)
        engine = f"ray ({ray_address})"
    return EmbedSummary(rows, shards, name, out, time.perf_counter() - started, engine)


def _embed_in_process(
    path: Path,
    fmt: str,
    out: Path,
    model: str | None,
    device: str | None,
    batch_size: int | None,
    backend: str | None,
    progress: ProgressFn | None,
) -> tuple[int, int, str]:
    embed = EmbedBatch(model, device, batch_size, backend, path.name)
    encoder = embed.encoder
    total = _count_rows(path, fmt) if progress is not None else 0
    rows = shards = in_shard = 0
    writer: pq.ParquetWriter | None = None
    try:
        for frame in _read_batches(path, fmt, BATCHES_PER_CALL * encoder.batch_size):  # type: ignore[attr-defined]
            table = embed(frame)
            if writer is None or in_shard >= ROWS_PER_SHARD:
                if writer is not None:
                    writer.close()
                writer = pq.ParquetWriter(out / f"part-{shards:05d}.parquet", table.schema)
                shards, in_shard = shards + 1, 0
            writer.write_table(table)
            rows += len(frame)
            in_shard += table.num_rows
            if progress is not None:
                progress(rows, total)
    finally:
        if writer is not None:
            writer.close()
    if rows == 0:
        raise IngestError(f"{path.name}: the catalog has no rows")
    return rows, shards, encoder.name


def _count_rows(path: Path, fmt: str) -> int:
    import pyarrow.dataset as ds

    if fmt == "parquet":
        return ds.dataset(str(path), format="parquet").count_rows()
    parse, convert = _csv_options(path)
    return ds.dataset(str(path), format=ds.CsvFileFormat(parse_options=parse, convert_options=convert)).count_rows()


def _embed_on_ray(
    path: Path,
    fmt: str,
    out: Path,
    model: str | None,
    device: str | None,
    batch_size: int | None,
    backend: str | None,
    address: str,
) -> tuple[int, int, str]:
    try:
        import ray
    except ImportError as exc:
        raise ConfigError("--ray needs Ray Data: pip install -r requirements-scale.txt") from exc
    # Load once here first: a bad model fails before a cluster starts, and the ONNX export
    # (if any) is cached before the actors look for it.
    load_encoder(model, "cpu", batch_size=batch_size, backend=backend)
    started_here = not ray.is_initialized()
    if started_here:
        ray.init(address=None if address == "local" else address, include_dashboard=False, log_to_driver=False)
    try:
        resources = ray.cluster_resources()
        gpus = int(resources.get("GPU", 0)) if backend != "onnx-int8" and device in (None, "cuda") else 0
        actors = gpus or max(1, int(resources.get("CPU", 1)))
        if fmt == "csv":
            parse, convert = _csv_options(path)
            data = ray.data.read_csv(str(path), parse_options=parse, convert_options=convert, num_cpus=0)
        else:
            data = ray.data.read_parquet(str(path), num_cpus=0)
        # Each actor gets one CPU (so torch runs single-threaded in it) or one GPU.
        per_actor = {"num_gpus": 1} if gpus else {"num_cpus": 1}
        chunk = BATCHES_PER_CALL * (batch_size or (256 if gpus else 64))
        # Blocks are what actors share out: one block per call, so a small file is split too.
        data = data.repartition(target_num_rows_per_block=chunk)
        vectors = data.map_batches(
            EmbedBatch,
            fn_constructor_kwargs={"model": model, "device": "cuda" if gpus else "cpu", "batch_size": batch_size,
                                   "backend": backend, "filename": path.name},
            batch_size=chunk,
            batch_format="pandas",
            # From one actor up to one per CPU/GPU, with reads and writes reserving no CPU: a
            # pool holding every CPU at the start leaves none for Ray's file listing, which waits forever.
            compute=ray.data.ActorPoolStrategy(min_size=1, max_size=actors),
            **per_actor,
        )
        vectors.write_parquet(str(out), ray_remote_args={"num_cpus": 0})
    except Exception as exc:  # a user's error raised inside an actor arrives wrapped by Ray
        # Ray Data keeps only the text of the actor's traceback (a UserCodeException): the
        # user's message is its last line, "coldrec.errors.<Class>: <message>".
        found = re.findall(r"coldrec\.errors\.(\w+): (.+)", str(exc))
        cls = getattr(errors, found[-1][0], None) if found else None
        if isinstance(cls, type) and issubclass(cls, ColdrecError):
            # A Ray batch does not know where it starts in the file.
            where = " (on Ray, rows are counted from the start of one block of the file)" if cls is IngestError else ""
            raise cls(found[-1][1].strip() + where) from exc
        raise
    finally:
        if started_here:
            ray.shutdown()
    files = sorted(out.rglob("*.parquet"))
    summary = _shard_summary(files)
    if summary.rows == 0:
        raise IngestError(f"{path.name}: the catalog has no rows")
    return summary.rows, len(files), ",".join(summary.models)


@dataclass(frozen=True)
class ShardSummary:
    """What a folder of vector shards holds, read from the files' schemas and model column."""

    files: list[Path]
    models: list[str]
    dim: int
    rows: int


def _shard_summary(files: list[Path]) -> ShardSummary:
    models: set[str] = set()
    dims: set[int] = set()
    rows = 0
    for file in files:
        try:
            meta = pq.ParquetFile(file)
        except Exception as exc:  # pyarrow raises ArrowInvalid, OSError...: the user needs the file named
            raise DataImportError(f"{file}: not a readable Parquet file ({str(exc).splitlines()[0]})") from exc
        schema = meta.schema_arrow
        missing = [c for c in SHARD_COLUMNS if c not in schema.names]
        vector_type = schema.field("vector").type if "vector" in schema.names else None
        if missing or not pa.types.is_fixed_size_list(vector_type):
            raise DataImportError(
                f"{file}: not a coldrec vector shard (needs columns {', '.join(SHARD_COLUMNS)} with a "
                "fixed-size vector); write shards with `python -m coldrec embed`"
            )
        dims.add(vector_type.list_size)  # type: ignore[union-attr]
        models.update(str(m) for m in pq.read_table(file, columns=["model"]).column("model").unique().to_pylist())
        rows += meta.metadata.num_rows
    return ShardSummary(files, sorted(models), dims.pop() if len(dims) == 1 else -1, rows)


def load_vectors(store: object, folder: str | Path, model: str, dim: int) -> tuple[int, int]:
    """Put the shards under ``folder`` into ``store``'s embedding cache; returns (rows read, new vectors).

    Refuses (:class:`DataImportError`, nothing written) shards of another model or dimension:
    vectors of one model are meaningless to another.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataImportError(f"--vectors {folder}: no such folder")
    files = sorted(folder.rglob("*.parquet"))
    if not files:
        raise DataImportError(
            f"--vectors {folder}: no Parquet shards in it; write them with `python -m coldrec embed CATALOG --out {folder}`"
        )
    summary = _shard_summary(files)
    if summary.models != [model] or summary.dim != dim:
        found = ", ".join(repr(m) for m in summary.models) or "none"
        raise DataImportError(
            f"--vectors {folder}: the shards hold vectors of model {found} (dimension {summary.dim}), but this "
            f"workspace uses {model!r} (dimension {dim}); run init with the model the shards were made with "
            "(--model, COLDREC_BACKEND) or embed the catalog again"
        )
    added = store.import_embedding_shards(files)  # type: ignore[attr-defined]
    return summary.rows, added
