"""The ``seqcast`` command line: one entry per pipeline, each a thin caller of ``pipelines/``."""

from __future__ import annotations

import argparse
import os
import sys
import warnings


def _quiet_libraries() -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # MLflow nags about input examples and type hints our models-from-code flavour does not use
    warnings.filterwarnings("ignore", category=UserWarning, module=r"mlflow\..*")


def cmd_train(args: argparse.Namespace) -> int:
    from pipelines.data import DataError, load_series
    from pipelines.pipeline import train_and_register
    from pipelines.training import TrainConfig

    if args.if_missing:
        from pipelines import tracking
        from pipelines.registry import CHAMPION, version_by_alias

        champion = version_by_alias(tracking.configure(), args.name, CHAMPION)
        if champion is not None:
            print(f"{args.name} already has @{CHAMPION} (version {champion.version}); skipping training")
            return 0
    try:
        series = load_series(args.data, time_col=args.time_col, value_col=args.value_col)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    overrides = {k: getattr(args, k) for k in ("lookback", "horizon", "season", "epochs", "seed", "units", "depth",
                                             "activation", "dropout", "learning_rate", "folds") if getattr(args, k) is not None}
    config = TrainConfig(variant=args.variant, **overrides)
    try:
        outcome = train_and_register(series, config, args.name, verbose=0 if args.quiet else 1)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"run id: {outcome.run_id}")
    print(f"variant: {outcome.variant}")
    for key in ("test_mase", "test_smape", "test_mae", "test_rmse", "baseline_seasonal_naive_mase"):
        print(f"{key}: {outcome.metrics[key]:.4f}")
    if outcome.champion_score is not None:
        print(f"champion_mase (same backtest): {outcome.champion_score:.4f}")
    decision = "promoted" if outcome.promoted else "not promoted (@champion stays)"
    print(f"registered {outcome.name}: version {outcome.version}, {decision}")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    uvicorn.run("service.app:create_app", factory=True, host=args.host, port=args.port, log_level="info")
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from pipelines.settings import get_settings

    settings = get_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", settings.tracking_uri,
               "--host", args.host, "--port", str(args.port)]
    if settings.mlflow_tracking_uri is None:
        command += ["--default-artifact-root", settings.artifact_root.as_uri()]
    os.execv(sys.executable, command)
    return 0  # pragma: no cover


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seqcast", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="train a forecaster, track it in MLflow, register it, promote if better")
    train.add_argument("--data", required=True, help="CSV/Parquet path or a built-in (sine_noise, manybody, wineind, ...)")
    train.add_argument("--name", required=True, help="registered model name")
    train.add_argument("--variant", default="lstm", help="simple_rnn | lstm | gru | dense_gru | one_step | auto")
    train.add_argument("--lookback", type=int)
    train.add_argument("--horizon", type=int)
    train.add_argument("--season", type=int)
    train.add_argument("--epochs", type=int)
    train.add_argument("--seed", type=int)
    train.add_argument("--units", type=int)
    train.add_argument("--depth", type=int)
    train.add_argument("--activation")
    train.add_argument("--dropout", type=float)
    train.add_argument("--learning-rate", dest="learning_rate", type=float)
    train.add_argument("--folds", type=int, help="backtest folds (rolling origin)")
    train.add_argument("--time-col", dest="time_col")
    train.add_argument("--value-col", dest="value_col")
    train.add_argument("--quiet", action="store_true", help="no per-epoch progress bar")
    train.add_argument("--if-missing", action="store_true", help="skip when NAME already has a champion")
    train.set_defaults(func=cmd_train)

    serve = sub.add_parser("serve", help="the REST service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.set_defaults(func=cmd_serve)

    ui = sub.add_parser("ui", help="the MLflow UI on the configured tracking store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(func=cmd_ui)
    return parser


def main(argv: list[str] | None = None) -> int:
    _quiet_libraries()
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
