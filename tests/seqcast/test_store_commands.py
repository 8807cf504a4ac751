"""seqcast db upgrade / ingest / series against a SQLite store under the data dir (in-process, no training)."""

from __future__ import annotations

import pandas as pd
import pytest

from pipelines.settings import get_settings
from seqcast.cli import build_parser


def run(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return args.func(args)


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SEQCAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("SEQCAST_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield tmp_path
    get_settings.cache_clear()


def test_ingest_then_series_then_upgrade(data_dir, capsys):
    frame = pd.DataFrame({"day": pd.date_range("2024-01-01", periods=30, freq="D"), "sales": range(30)})
    frame.to_csv(data_dir / "sales.csv", index=False)
    frame.to_parquet(data_dir / "sales.parquet")
    common = ["--time-col", "day", "--value-col", "sales"]
    assert run("ingest", "sales", "--data", str(data_dir / "sales.csv"), *common) == 0
    assert run("ingest", "sales", "--data", str(data_dir / "sales.parquet"), *common) == 0
    assert run("series") == 0
    assert run("series", "nope") == 2
    assert run("db", "upgrade") == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[:3] == [
        "sales: 30 inserted, 0 updated, 0 unchanged",
        "sales: 0 inserted, 0 updated, 30 unchanged",
        "sales\tfreq D\t30 values\t2024-01-01T00:00:00 .. 2024-01-30T00:00:00",
    ]
    assert out.splitlines()[3].startswith("series store at revision 0003 (newest 0003): sqlite:///")
    assert err == "error: no series named 'nope'; GET /v1/series or seqcast series lists them\n"
    assert (data_dir / "series.db").exists()


def test_ingest_a_long_table_stores_each_series_under_its_name(data_dir, capsys):
    days = [t.isoformat() for t in pd.date_range("2024-01-01", periods=3, freq="D")]
    frame = pd.DataFrame({"series": ["b"] * 3 + ["a"] * 3, "timestamp": days * 2, "value": [4, 5, 6, 1, 2, 3]})
    frame.to_csv(data_dir / "panel.csv", index=False)
    assert run("ingest", "--data", str(data_dir / "panel.csv")) == 0
    assert run("ingest", "--data", str(data_dir / "panel.csv")) == 0
    assert run("ingest", "x", "--data", str(data_dir / "panel.csv")) == 2  # NAME with a long table
    frame.assign(series=["b"] * 3 + ["bad name"] * 3).to_csv(data_dir / "bad.csv", index=False)
    assert run("ingest", "--data", str(data_dir / "bad.csv")) == 2  # nothing written, not even 'b'
    frame.drop(columns="series").to_csv(data_dir / "one.csv", index=False)
    assert run("ingest", "--data", str(data_dir / "one.csv")) == 2  # one series needs NAME
    assert run("series") == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == [
        "a: 3 inserted, 0 updated, 0 unchanged",
        "b: 3 inserted, 0 updated, 0 unchanged",
        "total: 2 series, 6 inserted, 0 updated, 0 unchanged",
        "a: 0 inserted, 0 updated, 3 unchanged",
        "b: 0 inserted, 0 updated, 3 unchanged",
        "total: 2 series, 0 inserted, 0 updated, 6 unchanged",
        "a\tfreq D\t3 values\t2024-01-01T00:00:00 .. 2024-01-03T00:00:00",
        "b\tfreq D\t3 values\t2024-01-01T00:00:00 .. 2024-01-03T00:00:00",
    ]
    panel, one = data_dir / "panel.csv", data_dir / "one.csv"
    assert err.splitlines() == [
        f"error: {panel} holds many series (a series column); leave NAME out to store each under its own name",
        "error: series name 'bad name' is not allowed; names are 1 to 128 letters, digits, '_', '.' or '-', "
        "starting with a letter or digit",
        f"error: give NAME: {one} holds one series (no series, unique_id or item_id column)",
    ]


def test_ingest_a_long_table_names_the_series_and_the_file_row_a_check_fails_at_and_stores_nothing(data_dir, capsys):
    frame = pd.DataFrame(
        {"unique_id": ["a", "a", "b", "b"], "ds": ["2024-01-01", "2024-01-02"] * 2, "y": [1, 2, 3, "x"]}
    )
    frame.to_csv(data_dir / "panel.csv", index=False)
    assert run("ingest", "--data", str(data_dir / "panel.csv")) == 2
    out, err = capsys.readouterr()
    assert out == ""  # the file is one write: 'a' is not stored either
    assert err == "error: series 'b': column 'y' row 3 holds 'x'; values must be finite numbers\n"
    assert run("series") == 0
    assert capsys.readouterr().out == "no series stored; add one with: seqcast ingest NAME --data PATH\n"
