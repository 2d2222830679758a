"""Command line: ``python -m coldrec init | predict | evaluate | audience | embed | sql | stats | ...``.

Errors written for users (:class:`~coldrec.errors.ColdrecError`) print as one ``error:`` line and
exit with status 2; anything else is a bug, logged with its traceback (status 1).
"""

from __future__ import annotations

import argparse
import io
import json
import logging
import os
import re
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from contextvars import ContextVar
from pathlib import Path

from .config import DEFAULT_MODEL_NAME, DEMO_DIR, Settings
from .errors import (
    ColdrecError, ConfigError, DataImportError, NotReadyError, StoreError, StoreLockedError, disk_full_message,
    is_disk_full,
)


def _int_list(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from exc
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected non-negative integers, got {text!r}")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (exposed for tests and docs)."""
    parser = argparse.ArgumentParser(prog="python -m coldrec", description="Cold-start product categorisation.")
    parser.add_argument("--db", help="database file (default: $COLDREC_DB or data/coldrec.duckdb)")
    parser.add_argument("--model", help="Hugging Face id or local folder (default: $COLDREC_MODEL or the bundled model)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: best available)")
    sub = parser.add_subparsers(dest="command", required=True)

    init = sub.add_parser("init", help="create the database from a catalog and categories (default: data/demo)")
    init.add_argument("--catalog", default=str(DEMO_DIR / "catalog.csv"), help="catalog file with a category column")
    init.add_argument("--categories", default=str(DEMO_DIR / "categories.csv"), help="name, description, path")
    init.add_argument("--interactions", help="purchases to load (default: the demo's, with the demo catalog)")
    init.add_argument("--if-missing", action="store_true", help="do nothing when the database already holds data")
    init.add_argument(
        "--merge", action="store_true",
        help="add the catalog (the demo by default) to a database that already holds data (refused without it)",
    )
    init.add_argument("--vectors", metavar="DIR", help="Parquet shards written by `embed`: loaded, not re-embedded")

    predict = sub.add_parser("predict", help="predict categories and similar catalog items for a product file")
    predict.add_argument("file", help="CSV, TSV, Excel, JSON, JSON Lines or Parquet")
    predict.add_argument("-o", "--out", help="output .csv, .json or .xlsx (default: CSV on stdout)")
    predict.add_argument("--save-batch", metavar="NAME", help="also store the items and predictions as upload batch NAME")

    evaluate = sub.add_parser("evaluate", help="few-shot evaluation on a labelled file")
    evaluate.add_argument("data", help="labelled file (any ingest format)")
    evaluate.add_argument("--text-col", action="append", required=True, help="text column (repeatable)")
    evaluate.add_argument("--label-col", required=True)
    evaluate.add_argument("--categories", help="CSV with columns name, description")
    evaluate.add_argument("--shots", type=_int_list, default=[0, 1, 4, 8, 16])
    evaluate.add_argument("--seeds", type=int, default=3)
    evaluate.add_argument("--test-size", type=int, default=2000)
    evaluate.add_argument("--min-per-class", type=int, default=10)
    evaluate.add_argument("--methods", default="coldrec,coldrec-inductive,prototype,tfidf-logreg", help="comma-separated")
    evaluate.add_argument("--cache", help="a DuckDB file kept as an embedding cache between runs (created if missing)")
    evaluate.add_argument("--json", help="write the results here")
    evaluate.add_argument(
        "--active", action="append", metavar="STRATEGY",
        help="active-learning curves instead of the shots protocol: query strategy (repeatable or "
        "comma-separated; 'all' for every one): random, least-confidence, margin, entropy, cluster-margin",
    )
    evaluate.add_argument("--finetune-method", choices=["contrastive", "lora"], help="with coldrec+finetune (default contrastive)")
    evaluate.add_argument("--finetune-epochs", type=int, help="with coldrec+finetune: passes over the support set (default 4)")
    evaluate.add_argument("--finetune-max-minutes", type=float, help="with coldrec+finetune: cap per fit (default 10 on CPU)")
    evaluate.add_argument("--budget", type=int, help="with --active: labels to reach (default 200)")
    evaluate.add_argument("--step", type=int, help="with --active: labels queried per step (default 10)")

    audience = sub.add_parser("audience-eval", help="cold-start audience evaluation (hold out items, rank users)")
    audience.add_argument("--items", required=True, help="items file with item_id and the text column(s)")
    audience.add_argument("--interactions", required=True, help="purchases with user_id, item_id")
    audience.add_argument("--text-col", action="append", default=None, help="text column (repeatable; default title)")
    audience.add_argument("--holdout-frac", type=float, default=0.2)
    audience.add_argument("--k", type=_int_list, default=[10, 50], help="cut-offs, e.g. 10,50")
    audience.add_argument("--seeds", type=int, default=3)
    audience.add_argument("--json", help="write the results here")

    audience.add_argument("--category-col", help="the catalog's category column (default: catalog clusters stand in)")

    segment = sub.add_parser("audience", help="the shoppers a stored product suits, as CSV for a campaign tool")
    segment.add_argument("item_id", help="a stored item's id (catalog or upload)")
    segment.add_argument("--top", type=int, default=50, help="at most this many shoppers (default 50)")
    segment.add_argument(
        "--include-weak", action="store_true",
        help="also list shoppers below the measured clear-audience threshold (marked 'below threshold')",
    )
    segment.add_argument("-o", "--out", help=".csv, .json or .xlsx (default: CSV on stdout)")

    interactions = sub.add_parser("import-interactions", help="load purchases (user_id, item_id, ...) into the database")
    interactions.add_argument("file", help="CSV, Parquet, ... with user_id, item_id, optional timestamp/order_number/quantity")

    export_labels = sub.add_parser("export-labels", help="write the current labels (item_id, title, category, who, source, labelled_at)")
    export_labels.add_argument("-o", "--out", required=True, help=".csv, .json or .xlsx")

    import_labels = sub.add_parser("import-labels", help="apply a labels file (item_id, category) as one undoable action")
    import_labels.add_argument("file")
    import_labels.add_argument("--who", default="cli", help="name recorded with the labels")

    taxonomy = sub.add_parser("import-taxonomy", help="create categories from a taxonomy (Google's format or a CSV of paths)")
    taxonomy.add_argument("file")
    taxonomy.add_argument("--branch", action="append", default=[], help="keep only this branch, e.g. 'Home & Garden > Kitchen & Dining' (repeatable)")
    taxonomy.add_argument("--max-depth", type=int, help="cut paths at this depth")

    queue = sub.add_parser("queue", help="the unlabelled items to label next, most useful first")
    queue.add_argument("--strategy", default="cluster-margin")
    queue.add_argument("--batch", help="only this upload batch")
    queue.add_argument("-n", type=int, default=20)
    queue.add_argument("-o", "--out", help=".csv, .json or .xlsx (default: CSV on stdout)")

    sql = sub.add_parser("sql", help="one read-only SELECT over the views items, labels, predictions, categories")
    sql.add_argument("query", help='e.g. "SELECT category, count(*) FROM labels GROUP BY 1"')
    sql.add_argument("--json", action="store_true", help="print the rows as a JSON list of objects")
    embed = sub.add_parser(
        "embed", help="embed a whole catalog into Parquet shards (item_id, text_hash, model, vector) for init --vectors"
    )
    embed.add_argument("catalog", help="a Parquet file, a folder of Parquet files, or a CSV file")
    embed.add_argument(
        "--ray", metavar="ADDRESS",
        help="run on Ray Data: 'local' starts a cluster on this machine, else a cluster address (default: this process)",
    )
    embed.add_argument("--batch-size", type=int, help="texts per forward pass (default 64 on CPU, 256 on GPU)")
    embed.add_argument("--out", help="an empty folder for the shards (default: data/vectors/<catalog name>)")

    sub.add_parser("stats", help="counts of items, labels, categories and cached vectors")

    finetune = sub.add_parser("finetune", help="fine-tune the model on the current labels; switch to it if the held-out check says better")
    finetune.add_argument("--method", choices=["contrastive", "lora"], default=None, help="default: contrastive")
    finetune.add_argument("--epochs", type=int, default=None, help="passes over the labels (default 4)")
    finetune.add_argument("--max-minutes", type=float, default=None, help="training time cap (default 10 on CPU, none on GPU)")
    finetune.add_argument("--force", action="store_true", help="fine-tune below the labels-per-category rule (the held-out check still decides)")
    finetune.add_argument("--list", action="store_true", help="list the saved versions and which one is active")
    finetune.add_argument("--use", metavar="VERSION", help="switch to a saved version ('base' = the configured model)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status (2 for a refusal with its one-line message, 1 for a bug).

    When the database is held by a running dashboard (DuckDB lets one process write a file), the
    command is handed to that dashboard (:mod:`coldrec.remote`), which runs it on its own open
    workspace and sends back its output and status: a nightly ``predict --save-batch`` works
    while merchandisers label.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env(db_path=args.db, model=args.model, device=args.device)
        try:
            return _COMMANDS[args.command](args, settings)
        except StoreLockedError:
            if _HOSTED.get() is not None:
                raise
            from . import remote

            status = remote.forward(settings.db_path, _absolute_paths(argv, args))
            if status is None:
                raise
            return status
    except KeyboardInterrupt:
        return 130
    except ColdrecError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: keep the traceback (a full disk is not one)
        if is_disk_full(exc):
            where = getattr(exc, "filename", None) or args.db or os.environ.get("COLDREC_DB") or "a file"
            print(f"error: {_one_line(disk_full_message(where))}", file=sys.stderr)
            return 2
        logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
        logging.getLogger("coldrec").exception("unexpected failure in `%s` (a bug; please report it)", args.command)
        return 1


#: Characters a terminal would act on (ANSI escapes, bidirectional overrides) in a message that
#: names a user's file: shown as escapes instead.
_TERMINAL_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")


#: The workspace of the dashboard process when it runs a command for another process.
_HOSTED: ContextVar[object | None] = ContextVar("coldrec_hosted_workspace", default=None)
#: Arguments that name files: made absolute before a command is handed to the dashboard.
_PATH_ARGS = ("file", "out", "catalog", "categories", "interactions", "vectors", "cache")


@contextmanager
def _workspace(settings: Settings) -> Iterator[object]:
    """The workspace a command works on: its own (opened and closed here), or the dashboard's."""
    hosted = _HOSTED.get()
    if hosted is not None:
        yield hosted
        return
    from .workspace import Workspace

    with Workspace.open(settings) as ws:
        yield ws


@contextmanager
def _store(settings: Settings, read_only: bool = False) -> Iterator[object]:
    """The database a command reads or writes: opened here, or the dashboard's open one."""
    hosted = _HOSTED.get()
    if hosted is not None:
        yield hosted.store  # type: ignore[attr-defined]
        return
    from .store import Store

    with Store(settings.db_path, read_only=read_only) as store:
        yield store


def run_hosted(argv: Sequence[str], ws: object) -> tuple[int, bytes, bytes]:
    """Run a command on ``ws`` (a dashboard's open workspace) for another process: its exit
    status, stdout and stderr. One at a time: the output is captured by redirecting this
    process's streams while it runs."""
    out, err = io.BytesIO(), io.BytesIO()
    out_text = io.TextIOWrapper(out, encoding="utf-8", write_through=True)
    err_text = io.TextIOWrapper(err, encoding="utf-8", write_through=True)
    token = _HOSTED.set(ws)
    try:
        with _HOSTED_LOCK, redirect_stdout(out_text), redirect_stderr(err_text):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse's usage errors
                status = exc.code if isinstance(exc.code, int) else 2
    finally:
        _HOSTED.reset(token)
    return status, out.getvalue(), err.getvalue()


_HOSTED_LOCK = threading.Lock()


def _absolute_paths(argv: list[str], args: argparse.Namespace) -> list[str]:
    """``argv`` with the files it names made absolute (the dashboard runs in another folder)."""
    out = list(argv)
    for name in _PATH_ARGS:
        value = getattr(args, name, None)
        if not isinstance(value, str) or not value or Path(value).is_absolute():
            continue
        absolute = str(Path(value).resolve())
        for i, token in enumerate(out):
            if token == value:
                out[i] = absolute
                break
            if token.endswith("=" + value) and token.startswith("-"):
                out[i] = token[: -len(value)] + absolute
                break
    return out


def _one_line(exc: object) -> str:
    text = " ".join(str(exc).split())
    return _TERMINAL_CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _init(args: argparse.Namespace, settings: Settings) -> int:
    from .workspace import Workspace, progress_printer

    demo = Path(args.catalog) == DEMO_DIR / "catalog.csv"
    # Checked before the model loads: a database that holds anything is never added to unasked.
    # "init_pending" is set before the first step and cleared after the last: an init cut short
    # (a kill after the catalog was in, before the demo arrivals or the neighbour table) is run
    # again by `init` or `init --if-missing`, each step being safe to repeat.
    with _store(settings) as store:
        held = _held_data(store)
        pending = store.get_meta("init_pending") == "1"
    if held and args.if_missing and not pending:
        print(f"{settings.db_path} already holds {held}; nothing to do")
        return 0
    if held and not args.merge and not pending:
        what = "the demo shop" if demo else Path(args.catalog).name
        raise StoreError(
            f"{settings.db_path} already holds {held}: init would add {what} to it. Nothing was changed. "
            "Add it anyway with `init --merge`, or choose another database with --db or COLDREC_DB."
        )
    with _workspace(settings) as ws:
        ws.store.set_meta("init_pending", "1", bump=False)
        if args.vectors:
            from .batch_embed import load_vectors

            read, added = load_vectors(ws.store, args.vectors, ws.encoder.name, ws.encoder.dim)
            print(f"{read:,} vectors read from {args.vectors} ({added:,} new in the cache)")
        counts = ws.imports.init_catalog(
            args.catalog,
            args.categories,
            progress=progress_printer("embedding catalog"),
            interactions=args.interactions or (DEMO_DIR / "interactions.csv" if demo else None),
        )
        # The demo starts with its new arrivals uploaded, so every page has something to show.
        arrivals = ws.add_demo_arrivals(progress=progress_printer("predicting new arrivals")) if demo else 0
        printers: dict[str, Callable[[int, int], None]] = {}
        ws.vectors.prepare(progress=lambda step, done, total: printers.setdefault(step, progress_printer(step))(done, total))
        ws.store.set_meta("init_pending", "0", bump=False)
    print(
        f"{settings.db_path}: {counts['categories']} categories, {counts['items']} catalog items, "
        f"{counts['labels']} new labels, {counts['interactions']} purchases"
        + (f", {arrivals} new arrivals uploaded as batch {Workspace.DEMO_BATCH!r}" if arrivals else "")
    )
    return 0


def _held_data(store: object) -> str:
    """What a database holds, in words ("16 categories, 448 items, 3,420 purchases"); "" when empty."""
    stats = store.stats()  # type: ignore[attr-defined]
    parts = [(stats["categories"], "categories"), (stats["catalog_items"] + stats["uploaded_items"], "items"),
             (stats["interactions"], "purchases")]
    return ", ".join(f"{n:,} {word}" for n, word in parts if n)


def _predict(args: argparse.Namespace, settings: Settings) -> int:
    from .export import to_csv_bytes, write_table
    from .ingest import load_items
    from .workspace import progress_printer

    items = load_items(args.file, limits=settings.upload_limits())
    progress = progress_printer("embedding") if args.out else None
    with _workspace(settings) as ws:
        # A saved batch applies the rule as it is stored; the dashboard's own model is never
        # switched for one command it runs for another process.
        if not args.save_batch and _HOSTED.get() is None:
            ws.models.apply_language_rule(extra_texts=items["title"].tolist(), store=False)
        if args.save_batch:
            batch, warnings = ws.predictor.upload_and_predict(items, args.save_batch, who="cli", progress=progress)
            for warning in warnings:
                print(f"warning: {_one_line(warning)}", file=sys.stderr)
        else:
            batch = ws.predictor.predict(items, progress=progress)
    frame = batch.frame().drop(columns=["top3_json"])
    if args.out and args.out.lower().endswith(".json"):
        frame["neighbour_ids"] = frame["neighbour_ids"].str.split()
    if args.out:
        write_table(frame, args.out)
        unsure = int(frame["unsure"].sum())
        print(f"{len(frame)} predictions ({unsure} unsure) written to {args.out}")
    else:
        sys.stdout.write(to_csv_bytes(frame).decode("utf-8-sig"))
    return 0


def _active_strategies(values: Sequence[str] | None) -> list[str]:
    """``--active`` values (repeated and/or comma-separated, ``all``) as strategy names."""
    from .active import STRATEGIES

    names = [v.strip() for value in values or [] for v in value.split(",") if v.strip()]
    if "all" in names:
        return list(STRATEGIES)
    unknown = [n for n in names if n not in STRATEGIES]
    if unknown or not names:
        raise ConfigError(f"unknown --active strategy {unknown or names}; valid: {', '.join(STRATEGIES)} (or all)")
    return list(dict.fromkeys(names))


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from .evaluate import active_label_counts, load_labelled
    from .ingest import read_table

    strategies: list[str] = []
    if args.active is not None:
        strategies = _active_strategies(args.active)
        args.budget = 200 if args.budget is None else args.budget
        args.step = 10 if args.step is None else args.step
        active_label_counts(args.budget, args.step)  # validates before the slow part
    elif args.budget is not None or args.step is not None:
        raise ConfigError("--budget and --step need --active STRATEGY")
    data = load_labelled(args.data, args.text_col, args.label_col, args.min_per_class)
    descriptions: dict[str, str] = {}
    if args.categories:
        cats = read_table(args.categories)
        if "name" not in cats.columns:
            raise DataImportError(f"{args.categories}: needs columns name, description")
        descriptions = dict(zip(cats["name"].astype(str), cats.get("description", cats["name"]).astype(str)))
    print(f"{data.name}: {len(data.texts):,} items, {len(data.classes)} classes", file=sys.stderr)
    encoder, rule = _encoder_for(data.texts, settings)
    print(f"model: {encoder.name} ({rule})", file=sys.stderr)
    cache = None
    if args.cache:
        from .store import Store

        cache = Store(args.cache)
    try:
        return _run_evaluate(args, data, encoder, strategies, descriptions, cache, rule)
    finally:
        if cache is not None:
            cache.close()


def _encoder_for(texts: Sequence[str], settings: Settings) -> tuple[object, str]:
    """The encoder a workspace holding ``texts`` would use (``COLDREC_MODEL``, else
    ``COLDREC_ENCODER``, else the language rule of :mod:`coldrec.language`) and why."""
    from . import language
    from .encoder import bundled_source, load_encoder

    if settings.model:
        return load_encoder(settings.model, settings.device), "COLDREC_MODEL"
    if settings.encoder in language.CHOICES:
        return load_encoder(bundled_source(settings.encoder), settings.device), f"COLDREC_ENCODER={settings.encoder}"
    mix = language.script_mix(list(texts)[:: max(1, len(texts) // language.SAMPLE)])
    return load_encoder(bundled_source(mix.choice), settings.device), mix.reason


def _run_evaluate(args: argparse.Namespace, data: object, encoder: object, strategies: list[str],
                  descriptions: dict[str, str], cache: object | None, rule: str = "") -> int:
    from .evaluate import run_active_learning, run_evaluation

    if strategies:
        result = run_active_learning(
            data,
            encoder,
            strategies,
            budget=args.budget,
            step=args.step,
            seeds=args.seeds,
            test_size=args.test_size,
            descriptions=descriptions,
            log=lambda message: print(message, file=sys.stderr, flush=True),
            cache=cache,
        )
        _write_json({**result, "model_rule": rule}, args.json)
        return 0
    result = run_evaluation(
        data,
        encoder,
        shots=args.shots,
        seeds=args.seeds,
        test_size=args.test_size,
        descriptions=descriptions,
        methods=[m.strip() for m in args.methods.split(",") if m.strip()],
        log=lambda message: print(message, file=sys.stderr, flush=True),
        cache=cache,
        finetune_options={k: v for k, v in {"method": args.finetune_method, "epochs": args.finetune_epochs,
                                            "max_minutes": args.finetune_max_minutes}.items() if v is not None},
    )
    _write_json({**result, "model_rule": rule}, args.json)
    return 0


def _write_json(result: dict[str, object], path: str | None) -> None:
    """The result document to ``path``, or to stdout without one."""
    text = json.dumps(result, indent=2)
    if path:
        Path(path).write_text(text + "\n")
    else:
        print(text)


def _audience_eval(args: argparse.Namespace, settings: Settings) -> int:
    from .audience import evaluate_audience, load_interactions
    from .encoder import load_encoder
    from .ingest import OPERATOR_FILES, read_table

    text_cols = args.text_col or ["title"]
    items = read_table(args.items, limits=OPERATOR_FILES)
    missing = [c for c in ["item_id", *text_cols, *([args.category_col] if args.category_col else [])] if c not in items.columns]
    if missing:
        raise DataImportError(f"{args.items}: column(s) {missing} not found; columns are {list(items.columns)}")
    interactions = load_interactions(args.interactions)
    encoder = load_encoder(settings.model, settings.device)
    result = evaluate_audience(
        items, interactions, lambda texts: encoder.encode(texts), text_cols=text_cols, ks=args.k,
        seeds=args.seeds, holdout_frac=args.holdout_frac, name=Path(args.interactions).name,
        category_col=args.category_col,
    )
    _write_json(result, args.json)
    return 0


def _audience(args: argparse.Namespace, settings: Settings) -> int:
    from .export import to_csv_bytes, write_table

    if args.top < 1:
        raise ConfigError(f"--top must be at least 1, got {args.top}")
    from .services.audience import check_audience_request

    if not Path(settings.db_path).is_file():
        raise NotReadyError(f"No purchases yet: there is no database at {settings.db_path}")
    with _store(settings, read_only=True) as store:
        check_audience_request(store, args.item_id)  # before the model loads
    with _workspace(settings) as ws:
        table, verdict = ws.audience.segment(args.item_id, args.top, args.include_weak)
    print(verdict, file=sys.stderr)  # stdout stays pure CSV for the campaign tool
    if args.out:
        write_table(table, args.out)
        print(f"{len(table):,} shoppers written to {args.out}", file=sys.stderr)
    else:
        sys.stdout.buffer.write(to_csv_bytes(table))
    return 0


def _import_interactions(args: argparse.Namespace, settings: Settings) -> int:
    from .audience import load_interactions

    with _store(settings) as store:
        frame = load_interactions(args.file, known_items=store.items()["item_id"].tolist())
        added = store.add_interactions(frame.rename(columns={"timestamp": "ts"}))
    print(f"{added:,} new purchases ({len(frame) - added:,} already stored) imported into {settings.db_path}")
    return 0


def _embed(args: argparse.Namespace, settings: Settings) -> int:
    from .batch_embed import embed_catalog
    from .config import DATA_DIR
    from .workspace import progress_printer

    out = Path(args.out) if args.out else DATA_DIR / "vectors" / Path(args.catalog).stem
    summary = embed_catalog(
        args.catalog, out, model=settings.model, device=settings.device, batch_size=args.batch_size,
        ray_address=args.ray, progress=progress_printer("embedding"),
    )
    print(
        f"{summary.rows:,} rows embedded with {summary.model} ({summary.engine}, {summary.seconds:.1f} s) into "
        f"{summary.shards} shard(s) in {summary.out}; load them with: python -m coldrec init --catalog "
        f"{args.catalog} --categories CATEGORIES --vectors {summary.out}"
    )
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:

    with _store(settings) as store:
        print(json.dumps({"database": str(settings.db_path), **store.stats()}, indent=2))
    return 0


def _model_name(settings: Settings) -> str:
    """The name predictions are stored under for the configured model (as :func:`load_encoder` names it)."""
    if settings.model is None:
        return DEFAULT_MODEL_NAME
    path = Path(settings.model).expanduser()
    return str(path.resolve()) if path.is_dir() else settings.model


def _sql(args: argparse.Namespace, settings: Settings) -> int:
    from .sqlbox import result_summary, run_readonly

    if not Path(settings.db_path).is_file():
        raise StoreError(f"no database at {settings.db_path}; run `python -m coldrec init` first")
    with _store(settings, read_only=True) as store:
        result = run_readonly(store, _model_name(settings), args.query)
    frame = result.frame
    if args.json:
        print(frame.to_json(orient="records", date_format="iso", force_ascii=False))
    else:
        print(frame.to_csv(index=False), end="")
    if result.truncated_by == "rows":
        print(f"(truncated at 1,000 rows: {len(frame):,} rows shown)", file=sys.stderr)
    elif result.truncated:
        print(f"({result_summary(result)})", file=sys.stderr)
    return 0


def _export_labels(args: argparse.Namespace, settings: Settings) -> int:
    from .export import write_table
    from .labelling import LABEL_EXPORT_COLUMNS

    with _store(settings) as store:
        labels = store.labels()[LABEL_EXPORT_COLUMNS]
    write_table(labels, args.out)
    print(f"{len(labels):,} labels written to {args.out}")
    return 0


def _import_labels(args: argparse.Namespace, settings: Settings) -> int:
    from .ingest import OPERATOR_FILES
    from .labelling import import_labels

    with _workspace(settings) as ws:  # the operator's own file: the wide limits
        changed = import_labels(ws, args.file, Path(args.file).name, who=args.who, limits=OPERATOR_FILES)
    print(f"{changed:,} labels changed in {settings.db_path}")
    return 0


def _import_taxonomy(args: argparse.Namespace, settings: Settings) -> int:
    from .labelling import import_taxonomy

    with _workspace(settings) as ws:
        count = import_taxonomy(ws, args.file, Path(args.file).name, args.branch, args.max_depth)
    print(f"{count:,} categories imported into {settings.db_path}")
    return 0


def _queue(args: argparse.Namespace, settings: Settings) -> int:
    from .export import to_csv_bytes, write_table
    from .labelling import queue

    with _workspace(settings) as ws:
        frame = queue(ws, args.strategy, args.batch, n=args.n)
    if args.out:
        write_table(frame, args.out)
    else:
        sys.stdout.buffer.write(to_csv_bytes(frame))
    return 0


def _finetune(args: argparse.Namespace, settings: Settings) -> int:
    from . import finetune, versions

    with _workspace(settings) as ws:
        active = ws.store.get_meta("model_version") or ""
        if args.list:
            for card in versions.list_versions(versions.models_dir(settings.db_path)):
                mark = "*" if card["name"] == active else " "
                print(f"{mark} {card['name']}  {card['method']}  labels {card['labels_used']}  held-out accuracy "
                      f"{card['accuracy_before']:.3f} -> {card['accuracy_after']:.3f}  {card['date']}")
            print(f"{'*' if not active else ' '} base  {ws.encoder.name.split('+')[0] if active else ws.encoder.name}")
            return 0
        if args.use:
            finetune.switch_version(ws, None if args.use == "base" else args.use)
            print(f"switched to {ws.encoder.name}; embedding items not yet cached for it")
            ws.predictor.embed_all()
            return 0
        last = [""]

        def progress(phase: str, done: int, total: int) -> None:
            step = f"{phase}: {done:,}/{total:,}"
            if phase != last[0] or done == total or done % max(1, total // 10) == 0:
                last[0] = phase
                print(step, file=sys.stderr, flush=True)

        options = {k: v for k, v in {"method": args.method, "epochs": args.epochs, "max_minutes": args.max_minutes}.items()
                   if v is not None}
        card = finetune.improve_model(ws, progress=progress, force=args.force, **options)  # Ctrl-C: nothing switched
    verdict = "now active" if card["better"] else "kept the previous model (not shown to be better on held-out labels)"
    print(f"{card['name']}: held-out accuracy {card['accuracy_before']:.3f} -> {card['accuracy_after']:.3f} on "
          f"{card['held_out']} labels; {card['steps']} steps in {card['train_seconds']:.0f} s; {verdict}")
    print(finetune.comparison_text(card))
    return 0


_COMMANDS = {
    "init": _init,
    "predict": _predict,
    "evaluate": _evaluate,
    "audience-eval": _audience_eval,
    "audience": _audience,
    "import-interactions": _import_interactions,
    "export-labels": _export_labels,
    "import-labels": _import_labels,
    "import-taxonomy": _import_taxonomy,
    "queue": _queue,
    "sql": _sql,
    "embed": _embed,
    "stats": _stats,
    "finetune": _finetune,
}
