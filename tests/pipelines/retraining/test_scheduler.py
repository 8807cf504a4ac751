"""Two `seqcast scheduler` processes against one database: one pass per tick, never two at once, though each
pass outlasts the interval; SIGTERM lets the pass in flight finish; a pass asked for while one runs is refused."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from itertools import pairwise
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient
from test_pass import RECIPE, TIMES, VALUES

from pipelines.forecasting.pipeline import train_and_register
from pipelines.retraining.facts import PASS_EXPERIMENT
from pipelines.retraining.scheduler import check_cron
from pipelines.settings import Settings
from pipelines.store import SeriesStore

SEQCAST = str(Path(sys.executable).with_name("seqcast"))
EVERY = 2  # seconds between ticks; a pass here takes longer than that


def test_two_schedulers_run_one_pass_per_tick_and_never_overlap(tmp_path):
    # MLflow writes the URIs it is given into os.environ: neither this test's store nor the schedulers' may use them
    settings = Settings(data_dir=tmp_path, MLFLOW_TRACKING_URI=None)
    store = SeriesStore(settings.series_store_url)
    store.write("sched", TIMES, VALUES)
    store.close()
    train_and_register(SeriesStore(settings.series_store_url).series("sched"), RECIPE, "sched", settings=settings)

    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    env.update(SEQCAST_DATA_DIR=str(tmp_path), SEQCAST_RETRAIN_CRON=f"*/{EVERY} * * * * *", TF_CPP_MIN_LOG_LEVEL="3")
    command = [SEQCAST, "scheduler", "--workers", "1", "--min-new-points", "0"]  # every pass trains the series
    schedulers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    client = MlflowClient(settings.tracking_uri, settings.tracking_uri)
    try:
        deadline = time.monotonic() + 300  # generous: on a loaded machine TensorFlow alone takes a while to import
        while len(_passes(client, "FINISHED")) < 2:
            assert all(s.poll() is None for s in schedulers), [s.communicate()[0][-2000:] for s in schedulers]
            assert time.monotonic() < deadline, "two passes did not finish in 300 s"
            time.sleep(0.5)
        for s in schedulers:
            s.send_signal(signal.SIGTERM)
        outputs = [s.communicate(timeout=60)[0] for s in schedulers]
    finally:
        for s in schedulers:
            s.kill()
    assert [s.returncode for s in schedulers] == [0, 0], outputs

    passes = _passes(client)
    # SIGTERM lets the series in flight finish; a pass it stops before its series began ran none, and says so
    assert all(p.info.status in ("FINISHED", "KILLED") for p in passes), [p.info.status for p in passes]
    assert all(p.data.metrics["kept"] + p.data.metrics["promoted"] == (p.info.status == "FINISHED") for p in passes)
    assert sum(p.info.status == "FINISHED" for p in passes) >= 2
    ticks = [p.data.params["tick"] for p in passes]
    assert len(set(ticks)) == len(ticks), "one pass per tick"
    spans = sorted((p.info.start_time, p.info.end_time) for p in passes)
    assert all(end <= next_start for (_, end), (next_start, _) in pairwise(spans)), "passes never overlap"
    assert any(end - start > EVERY * 1000 for start, end in spans), "a pass outlasted its interval"
    assert "no pass for this tick" in "".join(outputs) or len({p.data.tags["seqcast.holder"] for p in passes}) > 1


def _passes(client: MlflowClient, status: str | None = None):
    experiment = client.get_experiment_by_name(PASS_EXPERIMENT)
    if experiment is None:
        return []
    runs = client.search_runs([experiment.experiment_id], max_results=500)
    return [r for r in runs if "mlflow.parentRunId" not in r.data.tags and status in (None, r.info.status)]


def test_a_bad_cron_line_is_named():
    with pytest.raises(ValueError, match=r"^SEQCAST_RETRAIN_CRON is 'every night'; expected a crontab line"):
        check_cron("every night")


def test_a_second_pass_while_one_runs_is_refused(tmp_path, monkeypatch, capsys):
    from pipelines.settings import get_settings
    from pipelines.store.lease import Lease
    from seqcast.cli import main

    monkeypatch.setenv("SEQCAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    get_settings.cache_clear()
    store = SeriesStore(get_settings().series_store_url)
    try:
        with Lease(store, "retraining").held():
            assert main(["retrain", "--all"]) == 3
    finally:
        store.close()
        get_settings.cache_clear()
    assert capsys.readouterr().err.startswith("error: 'retraining' is held by ")


def test_six_fields_put_seconds_first_and_ticks_follow_the_timezone():
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from pipelines.retraining.scheduler import check_timezone, next_tick

    utc = ZoneInfo("UTC")
    t = datetime(2026, 1, 1, 0, 0, 5, tzinfo=UTC).timestamp()
    # seconds first: every 20 seconds (croniter's own six-field reading, seconds last, was every second of minute 0)
    assert next_tick(check_cron("*/20 * * * * *"), t, utc) == t + 15
    assert next_tick(check_cron("30 15 * * * *"), t, utc) == datetime(2026, 1, 1, 0, 15, 30, tzinfo=UTC).timestamp()
    # 03:00 in New York: 08:00 UTC in winter, 07:00 UTC in summer; in UTC (the default), 03:00 UTC
    new_york = check_timezone("America/New_York")
    for day, hour in ((datetime(2026, 1, 1, tzinfo=UTC), 8), (datetime(2026, 7, 1, tzinfo=UTC), 7)):
        assert next_tick("0 3 * * *", day.timestamp(), new_york) == day.replace(hour=hour).timestamp()
    jan = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_tick("0 3 * * *", jan.timestamp(), check_timezone("UTC")) == jan.replace(hour=3).timestamp()


def test_a_bad_cron_line_or_timezone_stops_the_scheduler_with_exit_2(tmp_path, monkeypatch, capsys):
    from pipelines.settings import get_settings
    from seqcast.cli import main

    monkeypatch.setenv("SEQCAST_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    help_ = (
        "expected a crontab line: minute hour day month weekday, e.g. '0 3 * * *' (03:00 every day) or "
        "'*/10 * * * *' (every 10 minutes); six fields put seconds first: second minute hour day month weekday, "
        "e.g. '*/20 * * * * *' (every 20 seconds)"
    )
    # seven fields; and a six-field line written seconds last ('30' is no weekday)
    for cron in ("0 0 3 * * * 2026", "0 3 * * * 30"):
        monkeypatch.setenv("SEQCAST_RETRAIN_CRON", cron)
        get_settings.cache_clear()
        assert main(["scheduler", "--workers", "1"]) == 2
        assert capsys.readouterr().err == f"error: SEQCAST_RETRAIN_CRON is {cron!r}; {help_}\n"
    monkeypatch.setenv("SEQCAST_RETRAIN_CRON", "0 3 * * *")
    monkeypatch.setenv("SEQCAST_RETRAIN_TIMEZONE", "Mars/Olympus")
    get_settings.cache_clear()
    try:
        assert main(["scheduler", "--workers", "1"]) == 2
    finally:
        get_settings.cache_clear()
    assert capsys.readouterr().err == (
        "error: SEQCAST_RETRAIN_TIMEZONE is 'Mars/Olympus'; expected an IANA time zone name, e.g. UTC, "
        "Europe/Paris, America/New_York\n"
    )
