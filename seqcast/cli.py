"""The seqcast command line: train forecasters and image classifiers (tracked in MLflow, registered, promoted
only when better), keep series in the store, retrain on a schedule, and serve forecasts over REST."""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import typing
from dataclasses import Field, fields

import seqcast
from pipelines.forecasting.train_config import AUTO, TrainConfig, check_value
from pipelines.process import import_tensorflow_quietly, quiet_libraries

# the registry's image classifiers (models/builders.py, task "classify"; a test keeps the two the same)
IMAGE_VARIANTS = ("cnn", "small_cnn")


def _has_champion(name: str) -> bool:
    """For --if-missing: say so and skip when NAME already has a champion."""
    from pipelines import tracking
    from pipelines.tracking.registry import CHAMPION, version_by_alias

    champion = version_by_alias(tracking.configure(), name, CHAMPION)
    if champion is not None:
        print(f"{name} already has @{CHAMPION} (version {champion.version}); skipping training")
    return champion is not None


def _print_registration(outcome) -> None:
    from pipelines.tracking.registry import BELOW_BASELINE

    if outcome.promoted:
        decision = "promoted"
    elif outcome.decision == BELOW_BASELINE:
        decision = (
            "not promoted: its backtest is worse than a free forecast's (naive, seasonal naive or drift) on the "
            "same folds; @champion stays (--promote-anyway to serve it all the same)"
        )
    elif outcome.decision == "kept champion":
        decision = "not promoted (@champion stays)"
    else:
        decision = f"not promoted ({outcome.decision}; @champion stays)"
    print(f"registered {outcome.name}: version {outcome.version}, {decision}")


def _is_pattern(name: str) -> bool:
    return any(c in name for c in "*?[")


def _load_training_data(args: argparse.Namespace):
    """(series, panel, source): one series, or a panel (several or patterned --series, or a long --data file)."""
    from pipelines.forecasting.data import is_long_table, load_panel, load_series, read_table

    if args.series is not None:
        store = _open_store()
        if len(args.series) == 1 and not _is_pattern(args.series[0]):
            series = store.series(args.series[0])
            window = series.meta["window"]
            print(
                f"data: series {args.series[0]}, {window['count']} stored values from {window['first']} to "
                f"{window['last']}"
            )
            return series, None, None
        names = store.names(args.series)
        print(f"data: {len(names)} stored series matching {' '.join(args.series)}")
        return None, list(store.panel(names)), "store:" + ",".join(args.series)
    path = args.data
    if path.lower().endswith((".csv", ".parquet", ".pq")) and is_long_table(read_table(path)):
        panel = load_panel(path, time_col=args.time_col, value_col=args.value_col)
        print(f"data: {len(panel)} series from {path}")
        return None, panel, path
    return load_series(args.data, time_col=args.time_col, value_col=args.value_col), None, None


def _trial_mapper(workers: int):
    """Where a panel search runs its trials: ``workers`` processes (> 1), or the Ray cluster at
    SEQCAST_RAY_ADDRESS; None: in this process. A pool's fork server starts loading now, beside this process."""
    from pipelines.settings import get_settings

    ray_address = get_settings().ray_address
    if workers <= 1 and not ray_address:
        return None
    from pipelines.retraining.fanout import map_on, start_pool_server

    start_pool_server(workers, ray_address)
    where = f"the Ray cluster at {ray_address}" if ray_address else f"{workers} worker processes"
    print(f"search trials: on {where}")
    return map_on(workers, ray_address)


def cmd_train(args: argparse.Namespace) -> int:
    # bad data, like a skipped --if-missing, answers before TensorFlow's seconds of import
    from pipelines.forecasting.data import DataError

    if args.if_missing and _has_champion(args.name):
        return 0
    try:
        series, panel, source = _load_training_data(args)
    except (DataError, LookupError, RuntimeError, OSError) as exc:
        print(f"error: {exc.args[0] if isinstance(exc, LookupError) else exc}", file=sys.stderr)
        return 2
    map_trials = None
    if panel is not None and args.variant == AUTO:
        map_trials = _trial_mapper(args.workers)
    import_tensorflow_quietly()
    from pipelines.forecasting.pipeline import train_and_register, train_panel_and_register

    config = train_config(args)
    verbose = args.verbose
    try:
        if panel is not None:
            more = {"map_trials": map_trials} if map_trials is not None else {}
            outcome = train_panel_and_register(
                panel, config, args.name, source=source, verbose=verbose, promote_anyway=args.promote_anyway, **more
            )
        else:
            outcome = train_and_register(series, config, args.name, verbose=verbose, promote_anyway=args.promote_anyway)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run id: {outcome.run_id}")
    print(f"variant: {outcome.variant}")
    if panel is not None:
        keys = ["series_count", "test_mase", "network_mase", *(k for k in outcome.metrics if k.startswith("baseline_"))]
        keys += [k for k in outcome.metrics if k.startswith("served_by_")]
    else:
        keys = ["test_mase", "test_smape", "test_mae", "test_rmse", "baseline_seasonal_naive_mase"]
    for key in keys:
        value = outcome.metrics[key]
        print(
            f"{key}: {int(value)}" if key == "series_count" or key.startswith("served_by_") else f"{key}: {value:.4f}"
        )
    if outcome.champion_score is not None:
        print(f"champion_mase (same backtest): {outcome.champion_score:.4f}")
    _print_registration(outcome)
    return 0


def _open_store():
    from pipelines.settings import get_settings
    from pipelines.store import SeriesStore

    return SeriesStore.from_settings(get_settings())


def cmd_ingest(args: argparse.Namespace) -> int:
    """A CSV/Parquet file into the store: all of it in one transaction, or nothing (an error names the file's
    column and row, a kill leaves the store as it was). A long table (a series column: series, unique_id or
    item_id) stores each series under its own name."""
    from pipelines.forecasting.data import DataError, is_long_table, pick_columns, read_table, split_long_table
    from pipelines.store import FileRows, IngestError, check_name

    current = args.name
    long = False
    try:
        frame = read_table(args.data)
        long = args.series_col is not None or is_long_table(frame)
        if long and args.name is not None:
            raise DataError(
                f"{args.data} holds many series (a series column); leave NAME out to store each under its own name"
            )
        if not long and args.name is None:
            raise DataError(f"give NAME: {args.data} holds one series (no series, unique_id or item_id column)")
        parts = split_long_table(frame, args.series_col) if long else {args.name: frame}
        for name in parts:  # every name before anything is read further
            check_name(name)
        tables = {}
        for current, part in parts.items():
            time_col, value_col = pick_columns(part, args.time_col, args.value_col)
            if time_col is None:
                raise DataError(f"no time column among {', '.join(map(str, part.columns))}; name it with --time-col")
            # a part's index is its rows' positions in the file's table: the row numbers the messages give
            tables[current] = FileRows(part[time_col], part[value_col], part.index.to_numpy(), (time_col, value_col))
        current = None
        results = _open_store().ingest(tables, freq=args.freq)
    except IngestError as exc:
        print(f"error: {f'series {exc.series!r}: ' if args.name is None else ''}{exc}", file=sys.stderr)
        return 2
    except DataError as exc:
        where = f"series {current!r}: " if args.name is None and current is not None else ""
        print(f"error: {where}{exc}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for r in results:
        print(f"{r.series}: {r.inserted} inserted, {r.updated} updated, {r.unchanged} unchanged")
    if long:
        print(
            f"total: {len(results)} series, {sum(r.inserted for r in results)} inserted, "
            f"{sum(r.updated for r in results)} updated, {sum(r.unchanged for r in results)} unchanged"
        )
    return 0


def cmd_series(args: argparse.Namespace) -> int:
    from pipelines.store import SeriesNotFound

    try:
        summaries = _open_store().summaries(args.name)
    except SeriesNotFound as exc:
        print(f"error: {exc.args[0]}", file=sys.stderr)
        return 2
    except RuntimeError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not summaries:
        print("no series stored; add one with: seqcast ingest NAME --data PATH")
    for s in summaries:
        first = s.first.isoformat() if s.first is not None else "-"
        last = s.last.isoformat() if s.last is not None else "-"
        print(f"{s.name}\tfreq {s.freq}\t{s.length} values\t{first} .. {last}")
    return 0


def cmd_db(args: argparse.Namespace) -> int:
    from pipelines.store import db

    store = _open_store()  # opening applies the migrations
    print(
        f"series store at revision {db.current(store.engine)} (newest {db.head()}): {store.engine.url.render_as_string()}"
    )
    return 0


def cmd_train_images(args: argparse.Namespace) -> int:
    if args.if_missing and _has_champion(args.name):
        return 0
    import_tensorflow_quietly()
    from pipelines.vision.data import ImageDataError, load_images
    from pipelines.vision.pipeline import GridError, ImageTrainConfig, parse_grid, train_images_and_register

    try:
        grid = parse_grid(args.grid) if args.grid else None
        data = load_images(args.data)
    except (GridError, ImageDataError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    overrides = {
        k: getattr(args, k)
        for k in ("variant", "epochs", "seed", "learning_rate", "l2", "dropout", "batch_size", "augment", "split_seed")
        if getattr(args, k) is not None
    }
    try:
        config = ImageTrainConfig(**overrides)
        outcome = train_images_and_register(data, config, args.name, grid=grid, verbose=0 if args.quiet else 2)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run id: {outcome.run_id}")
    print(f"variant: {outcome.variant}")
    print(
        f"data: {data.name}, {len(data)} images of {data.input_shape[0]}x{data.input_shape[1]} {data.color_mode}, "
        f"{len(data.labels)} classes"
    )
    for cell in outcome.grid:
        print(
            f"grid eta={cell['eta']:g} lambda={cell['lambda']:g}: train_accuracy {cell['train_accuracy']:.4f}, "
            f"val_accuracy {cell.get('best_val_accuracy', float('nan')):.4f}, test_accuracy {cell['test_accuracy']:.4f}"
        )
    for key in ("train_accuracy", "best_val_accuracy", "test_accuracy", "test_loss"):
        if key in outcome.metrics:
            print(f"{key}: {outcome.metrics[key]:.4f}")
    if outcome.champion_score is not None:
        print(f"champion_accuracy (same test split): {outcome.champion_score:.4f}")
    _print_registration(outcome)
    return 0


@contextlib.contextmanager
def _stop_on_signals():
    """SIGTERM and Ctrl-C set the yielded event: a pass finishes the series in flight, starts no more, exits."""
    import signal
    import threading

    stop = threading.Event()

    def handler(signum, _frame):
        if stop.is_set():  # a second Ctrl-C: stop now
            raise KeyboardInterrupt
        print(f"{signal.Signals(signum).name}: finishing the series in flight, then stopping", file=sys.stderr)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for sig, restore in previous.items():
            signal.signal(sig, restore)


def _print_result(result) -> None:
    scores = ""
    if result.challenger_mase is not None:
        champion = "none" if result.champion_mase is None else f"{result.champion_mase:.4f}"
        scores = f" (MASE {result.challenger_mase:.4f} vs champion {champion}"
        change = result.relative_change
        scores += f", {change:+.1%})" if change is not None else ")"
    version = f" version {result.version}" if result.version else ""
    panel = f", a panel of {result.data_window['series']} series" if "series" in result.data_window else ""
    print(f"{result.name}:{version} {result.decision}{scores} [{result.seconds:.1f} s{panel}]", flush=True)


def _print_pass(summary) -> int:
    counts = ", ".join(f"{n} {status}" for status, n in summary.counts.items())
    print(
        f"pass {summary.run_id}: {len(summary.results)} series in {summary.seconds:.1f} s on {summary.engine}: {counts}"
    )
    if summary.stopped:
        print("stopped before every series ran; the next pass takes them up")
    if summary.failed:
        print(f"failed: {', '.join(summary.failed)}", file=sys.stderr)
        return 1
    return 0


def _settings_for_pass(args: argparse.Namespace):
    """The settings, with a pool's workers already starting (:func:`start_pool_server`) while this process loads
    MLflow and the pass's code."""
    from pipelines.retraining.fanout import start_pool_server
    from pipelines.settings import get_settings

    settings = get_settings()
    start_pool_server(settings.pass_workers(args.workers), settings.ray_address)
    return settings


def cmd_retrain(args: argparse.Namespace) -> int:
    settings = _settings_for_pass(args)
    from mlflow.exceptions import MlflowException

    from pipelines.retraining.passes import UnknownModels, run_pass
    from pipelines.store.lease import LeaseHeld

    try:
        with _stop_on_signals() as stop:
            summary = run_pass(
                None if args.all else args.name,
                settings=settings,
                workers=args.workers,
                min_new_points=args.min_new_points,
                stop=stop,
                progress=_print_result,
            )
    except UnknownModels as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except LeaseHeld as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 3
    # the pass failed (PassFailed: its run ended FAILED with the reason), or the store or tracking server is down
    except (RuntimeError, MlflowException) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return _print_pass(summary)


def cmd_scheduler(args: argparse.Namespace) -> int:
    settings = _settings_for_pass(args)
    from pipelines.retraining.scheduler import run_scheduler

    try:
        with _stop_on_signals() as stop:
            run_scheduler(settings, stop, workers=args.workers, min_new_points=args.min_new_points, on_pass=_print_pass)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import_tensorflow_quietly()  # the app loads it anyway; here, its start-up lines are held back
    import shutil
    import tempfile

    import uvicorn

    from pipelines.settings import get_settings
    from service.logs import log_config

    settings = get_settings()
    metrics_dir = None  # several workers: one folder for their Prometheus metrics (service/monitoring.py)
    if args.workers > 1 and settings.prometheus_multiproc_dir is None:
        metrics_dir = tempfile.mkdtemp(prefix="seqcast-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # the workers' settings and prometheus-client read it
    # uvloop + httptools (uvicorn[standard]); per-request access lines are off by default: /metrics counts
    # every request, and at hundreds of requests per second the log line costs more than the forecast.
    # The grace period bounds shutdown: requests still running after it are cancelled and the process exits.
    # Each worker is a process with its own app: its own model cache, alias poller and batcher.
    try:
        uvicorn.run(
            "service.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            log_config=log_config(settings.log_format, access_log=args.access_log),
            loop="uvloop",
            http="httptools",
            access_log=False,  # the app writes its own (service/errors.py: duration, request id, no query values)
            timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)),
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "mlflow",
        "ui",
        "--backend-store-uri",
        settings.tracking_uri,
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    if settings.mlflow_tracking_uri is None:
        command += ["--default-artifact-root", settings.artifact_root.as_uri()]
    os.execv(sys.executable, command)
    return 0  # pragma: no cover


def _pass_options(parser: argparse.ArgumentParser) -> None:
    """What a retraining pass takes, the same for `retrain` and `scheduler`."""
    parser.add_argument(
        "--workers", type=int, help="series trained at once (default: SEQCAST_RETRAIN_WORKERS, else the core count)"
    )
    parser.add_argument(
        "--min-new-points",
        dest="min_new_points",
        type=int,
        help="skip a series with fewer new observations since its champion's data "
        "(default: SEQCAST_RETRAIN_MIN_NEW_POINTS, 1)",
    )


class _HelpFormatter(argparse.HelpFormatter):
    """Every option's help ends with its default, unless the help already says it (or there is none to say)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        help = action.help or ""
        flag = action.nargs == 0  # --quiet and the like: their default is not giving them
        if flag or "default" in help or action.default in (None, argparse.SUPPRESS) or action.required:
            return help
        return f"{help} (default: %(default)s)"


def _field_type(f: Field, kind: type) -> typing.Callable[[str], object]:
    """Read an option's text as the field's type, then check it against the field's own rule (train_config)."""

    def parse(text: str) -> object:
        try:
            value = kind(text)
        except ValueError:
            what = {int: "a whole number", float: "a number"}.get(kind, kind.__name__)
            raise argparse.ArgumentTypeError(f"{text!r} is not {what}") from None
        try:
            check_value(f.name, value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None
        return value

    parse.__name__ = kind.__name__  # argparse names the type in some messages
    return parse


def _train_config_options(parser: argparse.ArgumentParser) -> None:
    """One option per TrainConfig field with ``help`` metadata (pipelines/forecasting/train_config.py): the
    dataclass is the one list; its metadata gives the help, the default's words and the choices."""
    hints = typing.get_type_hints(TrainConfig)
    for f in fields(TrainConfig):
        if not f.metadata:
            continue
        kind = next(t for t in typing.get_args(hints[f.name]) or (hints[f.name],) if t is not type(None))
        default = f.metadata["default"] or f.default
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            type=_field_type(f, kind),
            default=f.default,
            choices=f.metadata["choices"],
            metavar=None if f.metadata["choices"] else f.name.upper(),
            help=f"{f.metadata['help']} (default: {default})",
        )


def train_config(args: argparse.Namespace) -> TrainConfig:
    """The TrainConfig that ``seqcast train``'s options ask for."""
    return TrainConfig(**{f.name: getattr(args, f.name) for f in fields(TrainConfig) if f.metadata})


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqcast", description=__doc__, formatter_class=_HelpFormatter)
    parser.add_argument("--version", action="version", version=f"%(prog)s {seqcast.__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str, description: str | None = None) -> argparse.ArgumentParser:
        return sub.add_parser(name, help=help, description=description or help, formatter_class=_HelpFormatter)

    train = command("train", "train a forecaster, track it in MLflow, register it, promote if better")
    source = train.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--data",
        help="CSV/Parquet path or a built-in (sine_noise, manybody, wineind, ...); a long file with a series column "
        "(series,timestamp,value) trains one panel model across its series",
    )
    source.add_argument(
        "--series",
        action="append",
        help="a series in the store (seqcast ingest / POST /v1/series/NAME/observations); a pattern ('sales-*') or "
        "the option repeated trains one panel model across every matching series",
    )
    train.add_argument("--name", required=True, help="registered model name")
    _train_config_options(train)
    _column_options(train)
    train.add_argument(
        "--workers",
        type=_positive_int,
        default=1,
        help="a panel's --variant auto: search trials run at once on a process pool; 1: in this process; "
        "with SEQCAST_RAY_ADDRESS set: on that Ray cluster",
    )
    # how much training prints: 0 nothing per epoch, 1 a progress bar per fit, 2 a line per epoch of every
    # network fitted (--variant auto's trials too)
    progress = train.add_mutually_exclusive_group()
    progress.add_argument("--quiet", dest="verbose", action="store_const", const=0, help="no per-epoch progress bar")
    progress.add_argument(
        "--verbose",
        dest="verbose",
        action="store_const",
        const=2,
        help="a line per epoch of every network fitted, --variant auto's trials included",
    )
    train.set_defaults(verbose=1)
    train.add_argument("--if-missing", action="store_true", help="skip when NAME already has a champion")
    train.add_argument(
        "--promote-anyway",
        dest="promote_anyway",
        action="store_true",
        help="move @champion to the new version even when its backtest loses to the champion or to a free forecast",
    )
    train.set_defaults(func=cmd_train)

    images = command(
        "train-images",
        "train a CNN image classifier, track it in MLflow, register it, promote if more accurate",
        "Train a CNN classifier on a held-out 20% stratified split; @champion moves only on a strictly "
        "higher test accuracy. --grid runs one nested MLflow run per (eta, lambda) cell, logs train/test accuracy "
        "heatmaps on the parent run and registers the cell with the best validation accuracy.",
    )
    images.add_argument(
        "--data",
        required=True,
        help="digits (built-in), an .npz with x and y (or keras.datasets' x_train/y_train), "
        "or a folder with one sub-folder of PNG/JPEG files per class",
    )
    images.add_argument("--name", required=True, help="registered model name")
    # the choices are listed, not enforced here: ImageTrainConfig.check names them, the one check for every caller
    images.add_argument(
        "--variant",
        metavar="{" + ",".join(IMAGE_VARIANTS) + "}",
        help="cnn: a CIFAR-style stack; small_cnn: the small grid-search network (default: cnn)",
    )
    images.add_argument(
        "--epochs", type=int, help="training epochs, early stopping on the validation loss (default: 100)"
    )
    images.add_argument("--seed", type=int, help="seed of the initial weights (default: 42)")
    images.add_argument(
        "--learning-rate", dest="learning_rate", type=float, help="eta, with cosine decay (default: 0.002)"
    )
    images.add_argument("--l2", type=float, help="lambda: L2 weight penalty (default: 0)")
    images.add_argument("--dropout", type=float, help="dropout fraction (default: 0.2)")
    images.add_argument("--batch-size", dest="batch_size", type=int, help="images per training batch (default: 32)")
    images.add_argument(
        "--augment", type=float, help="random shifts up to this fraction of the size; 0: none (default: 0.1)"
    )
    images.add_argument("--split-seed", dest="split_seed", type=int, help="seed of the test split (default: 0)")
    images.add_argument(
        "--grid",
        help="eta=V,V,...,lambda=V,V,... e.g. eta=0.001,0.01,lambda=0.0001,0.001; a key left out keeps "
        "--learning-rate / --l2 (default: no grid, one run)",
    )
    images.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    images.add_argument("--if-missing", action="store_true", help="skip when NAME already has a champion")
    images.set_defaults(func=cmd_train_images)

    ingest = command("ingest", "store a CSV/Parquet series (or a long table of many) in the series store")
    ingest.add_argument(
        "name",
        nargs="?",
        help="series name (letters, digits, '_', '.', '-'); left out for a long table (series,timestamp,value), "
        "whose series are stored under their own names",
    )
    ingest.add_argument("--data", required=True, help="CSV or Parquet path, read as train reads it")
    _column_options(ingest)
    ingest.add_argument(
        "--series-col", dest="series_col", help="a long table's series column (default: series, unique_id or item_id)"
    )
    ingest.add_argument("--freq", help="pandas frequency (D, h, MS, ...) (default: inferred from the first batch)")
    ingest.set_defaults(func=cmd_ingest)

    series = command("series", "list the stored series, or describe one")
    series.add_argument("name", nargs="?", help="a stored series (default: list them all)")
    series.set_defaults(func=cmd_series)

    database = command("db", "the series store's schema")
    database.add_argument("action", choices=["upgrade"], help="upgrade: apply the migrations (an older store is kept)")
    database.set_defaults(func=cmd_db)

    retrain = command(
        "retrain",
        "one retraining pass: challengers vs champions on the latest backtest, promoted only if better",
        "For each series with a registered forecaster: train a challenger with the champion's recipe on "
        "the stored series, score both on the same latest backtest folds, register it, and move @champion only if "
        "its MASE is lower by SEQCAST_RETRAIN_MARGIN (default 2%). Fanned out over a process pool, or a Ray "
        "cluster when SEQCAST_RAY_ADDRESS is set. Exit status: 0 done, 1 a series or the pass failed (named), "
        "2 an unknown --name, 3 another pass is running.",
    )
    which = retrain.add_mutually_exclusive_group(required=True)
    which.add_argument("--name", action="append", help="a registered model (repeat for several)")
    which.add_argument("--all", action="store_true", help="every forecasting model with a @champion")
    _pass_options(retrain)
    retrain.set_defaults(func=cmd_retrain)

    scheduler = command(
        "scheduler", "run retraining passes on SEQCAST_RETRAIN_CRON until stopped (SIGTERM finishes in-flight work)"
    )
    _pass_options(scheduler)
    scheduler.set_defaults(func=cmd_scheduler)

    serve = command("serve", "the REST service")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="port to listen on")
    serve.add_argument("--access-log", action="store_true", help="log one line per request")
    serve.add_argument(
        "--workers", type=_positive_int, default=1, help="worker processes, each with its own model cache"
    )
    serve.set_defaults(func=cmd_serve)

    ui = command("ui", "the MLflow UI on the configured tracking store")
    ui.add_argument("--host", default="127.0.0.1", help="address to listen on")
    ui.add_argument("--port", type=int, default=5000, help="port to listen on")
    ui.set_defaults(func=cmd_ui)
    return parser


def _column_options(parser: argparse.ArgumentParser) -> None:
    """Which columns of a CSV/Parquet file hold the times and the values, the same for `train` and `ingest`."""
    parser.add_argument(
        "--time-col",
        dest="time_col",
        help="the time column (default: timestamp, time, date, ds or datetime, whichever is there; none: a plain index)",
    )
    parser.add_argument(
        "--value-col",
        dest="value_col",
        help="the value column (default: value, y or values, whichever is there, else the one column left)",
    )


def main(argv: list[str] | None = None) -> int:
    quiet_libraries()
    # each command loads TensorFlow itself, only once it needs it: --help, ingest, db, ui and a skipped
    # --if-missing start without its seconds of import; retraining loads it in whichever process trains
    args = build_parser().parse_args(argv)
    _configure_logging()
    return args.func(args)


def _configure_logging() -> None:
    """Every command logs in SEQCAST_LOG_FORMAT (text or JSON lines), set up before TensorFlow is imported."""
    from pipelines.logs import configure_logging
    from pipelines.settings import get_settings

    configure_logging(get_settings().log_format)


if __name__ == "__main__":
    sys.exit(main())
