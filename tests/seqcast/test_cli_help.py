"""The ``seqcast`` command line's help, --version and option checks; TrainConfig's fields as train's one option list.

Everything here parses arguments only: no training, no store, no MLflow (a few seconds in all)."""

from __future__ import annotations

import importlib.metadata
import re
import shlex
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest

from pipelines.forecasting.train_config import FORECAST_VARIANTS, TrainConfig
from seqcast.cli import IMAGE_VARIANTS, build_parser, main, train_config

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = ["train", "train-images", "ingest", "series", "db", "retrain", "scheduler", "serve", "ui"]
# options a user must give: their help names no default
REQUIRED = {
    "train": {"--data", "--series", "--name"},
    "train-images": {"--data", "--name"},
    "ingest": {"--data"},
    "retrain": {"--name", "--all"},
}
FLAGS = {"--quiet", "--verbose", "--if-missing", "--promote-anyway", "--access-log", "--all", "--version"}


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main([*argv, "--help"])
    assert exit_.value.code == 0
    out, err = capsys.readouterr()
    assert err == ""
    return out


def option_helps(text: str) -> dict[str, str]:
    """Each argument (``--option``, or a positional's name) -> its help, from the help's "positional arguments"
    and "options" sections: the help follows the invocation after two spaces or on the lines indented below."""
    helps: dict[str, str] = {}
    current, in_section = None, False
    for line in text.splitlines():
        if not line.startswith(" "):
            in_section, current = line in ("positional arguments:", "options:"), None
        elif in_section and re.match(r"^  \S", line):
            invocation, _, help = line[2:].partition("  ")
            names = [t.rstrip(",") for t in invocation.split() if t.startswith("-")] or invocation.split()[:1]
            current = names[-1]
            helps[current] = help.strip()
        elif in_section and current is not None:
            helps[current] = f"{helps[current]} {line.strip()}".strip()
    return helps


def test_top_level_help_lists_every_command_in_plain_text(capsys):
    text = help_text(capsys)
    assert text.startswith("usage: seqcast [-h] [--version] COMMAND ...\n")
    for command in COMMANDS:
        assert re.search(rf"^    {command}\s", text, re.M), command
    assert "``" not in text and "%%" not in text


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_of_every_command_has_help_with_its_default(command, capsys):
    text = help_text(capsys, command)
    assert "``" not in text, "raw RST marks"
    assert "%%" not in text, "a doubled percent sign"
    assert "%(" not in text, "an unformatted argparse placeholder"
    helps = option_helps(text)
    assert "--help" in helps
    for option, help in helps.items():
        assert help, f"{command} {option} has no help"
        if not option.startswith("--") or option in ("--help", *FLAGS, *REQUIRED.get(command, ())):
            continue
        assert "(default: " in help, f"{command} {option}: no default in {help!r}"


def test_retrain_help_writes_percent_once(capsys):
    assert "(default 2%). Fanned out" in " ".join(help_text(capsys, "retrain").split())
    assert "held-out 20% stratified split" in " ".join(help_text(capsys, "train-images").split())


def test_every_train_config_field_with_help_is_a_train_option_showing_its_default(capsys):
    helps = option_helps(help_text(capsys, "train"))
    options = {f"--{f.name.replace('_', '-')}": f for f in fields(TrainConfig) if f.metadata}
    assert set(options) == {
        "--variant",
        "--lookback",
        "--horizon",
        "--season",
        "--epochs",
        "--seed",
        "--units",
        "--depth",
        "--activation",
        "--dropout",
        "--learning-rate",
        "--folds",
        "--budget",
        "--trials",
    }
    assert set(options) <= set(helps)
    for option, f in options.items():
        shown = f.metadata["default"] or f.default
        assert helps[option].endswith(f"(default: {shown})"), (option, helps[option])
    assert helps["--epochs"] == "training epochs, early stopping on the validation loss (default: 50)"
    from pipelines.forecasting.search import DEFAULT_TRIALS

    assert helps["--trials"].endswith(f"(default: {DEFAULT_TRIALS}, search.DEFAULT_TRIALS)")


def test_train_images_help_shows_the_image_configs_defaults(capsys):
    from pipelines.vision.pipeline import ImageTrainConfig

    helps = option_helps(help_text(capsys, "train-images"))
    shown = 0
    for f in fields(ImageTrainConfig):
        option = "--" + f.name.replace("_", "-")
        if option in helps:
            default = format(f.default, "g") if isinstance(f.default, float) else f.default
            assert helps[option].endswith(f"(default: {default})"), (option, helps[option])
            shown += 1
    assert shown == 9


def test_train_options_build_the_train_config():
    parser = build_parser()
    base = ["train", "--data", "sine_noise", "--name", "sine"]
    assert train_config(parser.parse_args(base)) == TrainConfig()
    given = parser.parse_args(
        [
            *base,
            *("--variant", "gru", "--lookback", "24", "--horizon", "6", "--season", "12", "--epochs", "3"),
            *("--seed", "7", "--units", "8", "--depth", "2", "--activation", "relu", "--dropout", "0.1"),
            *("--learning-rate", "0.01", "--folds", "4", "--budget", "30", "--trials", "5"),
        ]
    )
    assert train_config(given) == TrainConfig(
        variant="gru",
        lookback=24,
        horizon=6,
        season=12,
        epochs=3,
        seed=7,
        units=8,
        depth=2,
        activation="relu",
        dropout=0.1,
        learning_rate=0.01,
        folds=4,
        budget=30.0,
        trials=5,
    )


def test_train_prints_a_bar_per_fit_unless_quiet_or_verbose(capsys):
    parser = build_parser()
    base = ["train", "--data", "sine_noise", "--name", "sine"]
    assert [parser.parse_args([*base, *more]).verbose for more in ([], ["--quiet"], ["--verbose"])] == [1, 0, 2]
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([*base, "--quiet", "--verbose"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == (
        "seqcast train: error: argument --verbose: not allowed with argument --quiet"
    )


def test_horizon_and_lookback_have_one_name_each():
    config = TrainConfig().resolved(200, 12, None)
    assert (config.horizon, config.lookback, config.season) == (24, 24, 12)
    for second_name in ("steps", "window"):
        assert not hasattr(config, second_name)
    # a recipe logged before: None for "from the series" resolves the same
    assert TrainConfig(horizon=None, lookback=None).resolved(200, 12, None) == config  # type: ignore[arg-type]


def test_unknown_variant_exits_2_naming_only_the_forecasting_variants(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", "sine_noise", "--name", "sine", "--variant", "nosuch"])
    assert exit_.value.code == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines()[-1] == (
        "seqcast train: error: argument --variant: variant 'nosuch' is not one of "
        "simple_rnn, lstm, gru, dense_gru, one_step, mlp, auto"
    )
    assert "cnn" not in err
    assert "[--variant {simple_rnn,lstm,gru,dense_gru,one_step,mlp,auto}]" in " ".join(err.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--units", "0"], "argument --units: units 0 is below 1, the smallest allowed"),
        (["--horizon", "-3"], "argument --horizon: horizon -3 is below 0, the smallest allowed"),
        (["--epochs", "ten"], "argument --epochs: 'ten' is not a whole number"),
        (["--dropout", "half"], "argument --dropout: 'half' is not a number"),
        (["--trials", "0"], "argument --trials: trials 0 is below 1, the smallest allowed"),
    ],
)
def test_a_train_option_out_of_range_exits_2_naming_it(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["train", "--data", "sine_noise", "--name", "sine", *argv])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"seqcast train: error: {message}"


def test_the_dataclass_refuses_what_the_option_refuses():
    with pytest.raises(ValueError, match="^variant 'cnn' is not one of simple_rnn, lstm, gru, dense_gru, one_step"):
        TrainConfig(variant="cnn")
    with pytest.raises(ValueError, match="^depth 0 is below 1, the smallest allowed$"):
        TrainConfig(depth=0)


def test_the_variant_lists_are_the_registrys():
    from models import builders

    assert list(FORECAST_VARIANTS) == builders.names("forecast")
    assert list(IMAGE_VARIANTS) == builders.names("classify")


def test_version_prints_the_installed_package_version():
    done = subprocess.run(
        [sys.executable, "-m", "seqcast", "--version"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, f"seqcast {importlib.metadata.version('seqcast')}\n", "")


def test_make_runs_commands_and_the_readmes_examples_parse():
    """argparse exits 2 (failing the test) on an unknown command, option or value."""
    parser = build_parser()
    makefile = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+) \?= (\S+)$", makefile, re.M)) | {"DATA_DIR": ".seqcast"}
    commands = re.findall(r"^\t\$\(VENV\)/bin/seqcast (.*)$", makefile, re.M)
    examples = re.findall(r"^seqcast ([^\[|(]*?)(?:\s+#.*)?$", (ROOT / "README.md").read_text(), re.M)
    assert [c.split()[0] for c in commands] == ["train", "train-images", "ingest", "serve", "ui"]
    assert len(examples) >= 4
    for command in [*commands, *examples]:
        parser.parse_args(shlex.split(re.sub(r"\$\((\w+)\)", lambda m: variables[m.group(1)], command)))


def test_every_option_in_the_readmes_synopsis_exists(capsys):
    readme = (ROOT / "README.md").read_text()
    synopsis = readme.split("## The CLI\n\n```\n", 1)[1].split("```", 1)[0]
    commands = re.split(r"\n(?=seqcast )", synopsis.strip())
    assert len(commands) == 9
    for command in commands:
        name = command.split()[1]
        options = set(option_helps(help_text(capsys, name)))
        named = set(re.findall(r"--[a-z][a-z-]*", command))
        assert named <= options, (name, named - options)
