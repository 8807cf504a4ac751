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
