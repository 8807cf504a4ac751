"""docker-compose.yml's topology, built from processes on this machine: PostgreSQL (MLflow's database and the
series store's), an S3 endpoint (moto's server mode stands in for MinIO; MLflow talks to it with its real S3
client over HTTP), a real `mlflow server` on both, two `seqcast serve` processes sharing the registry and the
store, and `seqcast retrain`: the retraining loop as a user runs it (ingest, train, serve, push observations,
retrain, both processes answer from the new version with no failed request; a killed pass changes nothing, and a
worse recipe is not promoted). Skipped only where no PostgreSQL answers (see pg_helpers.py); never in CI.

The endpoints come from the environment: SEQCAST_TEST_POSTGRES (default 127.0.0.1:5432, user root, database
test); the S3 endpoint and the MLflow server are started here on free ports."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
import yaml
from e2e_helpers import API_KEY, SEQCAST, free_port, seqcast, wait_for
from mlflow.tracking import MlflowClient
from pg_helpers import pg_database

from pipelines.tracking.registry import RECIPE_TAG

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
NAME = "load"
N0, N = 120, 160
TIMES = pd.date_range("2024-01-01", periods=N, freq="h")
# a 17-hour cycle: what the network learns and no free forecast follows (seasonal naive repeats a day; the gate
# serves a network only where it beats naive, seasonal naive and drift on the same folds)
VALUES = 20 + 2 * np.sin(2 * np.pi * np.arange(N) / 17) + 0.1 * np.random.default_rng(2).normal(size=N)
VALUES[N0:] += 4  # a level shift the champion never saw: the retrained model wins
BUCKET = "seqcast-artifacts"
S3_ENV = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}


@dataclass
class Topology:
    env: dict
    tracking: str
    apis: list[str]
    s3: str
    mlflow_command: list[str]
    mlflow_env: dict
    logs: Path
    processes: dict = field(default_factory=dict)

    def start_mlflow(self) -> None:
        log = open(self.logs / "mlflow.log", "a")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(self.mlflow_command, env=self.mlflow_env, stdout=log, stderr=log)
        self.processes["mlflow"] = process
        wait_for(f"{self.tracking}/health", process, seconds=120, status=200)

    def stop_mlflow(self) -> None:
        process = self.processes.pop("mlflow")
        process.terminate()
        process.wait(timeout=30)


def _start(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    with open(log, "w") as out:
        return subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)


@pytest.fixture(scope="module")
def topology(pg_available, tmp_path_factory):
    if pg_available:
        pytest.skip(pg_available)
    logs = tmp_path_factory.mktemp("topology")
    with ExitStack() as stack:
        mlflow_db = stack.enter_context(pg_database("seqcast_mlflow"))
        store_db = stack.enter_context(pg_database("seqcast_store"))
        processes: dict[str, subprocess.Popen] = {}

        def stop_all() -> None:
            for process in processes.values():
                process.terminate()
            for process in processes.values():
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    process.kill()

        stack.callback(stop_all)
        s3_port = free_port()
        s3 = f"http://127.0.0.1:{s3_port}"
        processes["s3"] = _start(
            [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)], {**os.environ, **S3_ENV}, logs / "s3.log"
        )
        wait_for(f"{s3}/moto-api/", processes["s3"], seconds=60)
        import boto3

        boto3.client("s3", endpoint_url=s3, **_creds()).create_bucket(Bucket=BUCKET)

        port = free_port()
        tracking = f"http://127.0.0.1:{port}"
        # no background job runner: seqcast uses none of MLflow's server-side jobs
        mlflow_env = {
            **os.environ,
            **S3_ENV,
            "MLFLOW_S3_ENDPOINT_URL": s3,
            "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        }
        mlflow_command = [str(BIN / "mlflow"), "server", "--backend-store-uri", mlflow_db,
                          "--artifacts-destination", f"s3://{BUCKET}/artifacts", "--host", "127.0.0.1",
                          "--port", str(port), "--workers", "1", "--allowed-hosts", f"127.0.0.1:{port},localhost:{port}"]  # fmt: skip
        topo = Topology({}, tracking, [], s3, mlflow_command, mlflow_env, logs, processes)
        topo.start_mlflow()

        # the seqcast processes know the tracking server and the store, nothing of S3 (artifacts are proxied)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "MLFLOW_"))}
        env.update(MLFLOW_TRACKING_URI=tracking, SEQCAST_DATABASE_URL=store_db, SEQCAST_API_KEY=API_KEY,
                   SEQCAST_DATA_DIR=str(logs / "data"), TF_CPP_MIN_LOG_LEVEL="3")  # fmt: skip
        topo.env = env
        csv = logs / "first.csv"
        pd.DataFrame({"timestamp": TIMES[:N0], "value": VALUES[:N0]}).to_csv(csv, index=False)
        assert seqcast(env, "ingest", NAME, "--data", str(csv)).returncode == 0
        trained = seqcast(env, "train", "--series", NAME, "--name", NAME, "--variant", "mlp", "--units", "16",
                          "--epochs", "40", "--learning-rate", "0.01", "--horizon", "6", "--lookback", "24", "--quiet")  # fmt: skip
        assert trained.returncode == 0, trained.stderr[-3000:]

        serve_env = {**env, "SEQCAST_MODEL_POLL_SECONDS": "0.5", "SEQCAST_REGISTRY_TIMEOUT_SECONDS": "30",
                     "SEQCAST_SHUTDOWN_GRACE_SECONDS": "1"}  # fmt: skip
        for i, fmt in enumerate(("text", "json")):
            api_port = free_port()
            command = [SEQCAST, "serve", "--port", str(api_port), "--access-log"]
            processes[f"api{i}"] = _start(command, {**serve_env, "SEQCAST_LOG_FORMAT": fmt}, logs / f"api{i}.log")
            topo.apis.append(f"http://127.0.0.1:{api_port}")
        for i, url in enumerate(topo.apis):
            wait_for(f"{url}/ready", processes[f"api{i}"], seconds=180, status=200)
        yield topo


def _creds() -> dict:
    return {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


class Stream:
    """Forecasts from the stored series at each process, one after another, while the test works: for every
    answer the process, the status and the version."""

    def __init__(self, urls: list[str]):
        self.seen: list[tuple[str, int, str | None]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._run, args=(url,), daemon=True) for url in urls]

    def __enter__(self) -> Stream:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)

    def _run(self, url: str) -> None:
        with httpx.Client(timeout=60) as client:
            while not self.stop.is_set():
                r = client.post(f"{url}/v1/forecast", json={"model": NAME, "horizon": 6})
                self.seen.append((url, r.status_code, r.json().get("version")))

    def last(self, url: str) -> str | None:
        return next((version for u, _, version in reversed(self.seen) if u == url), None)


def _forecast(url: str, **headers) -> httpx.Response:
    return httpx.post(f"{url}/v1/forecast", json={"model": NAME, "horizon": 6}, headers=headers, timeout=60)


def _until(check, seconds: float, what: str):
    deadline = time.monotonic() + seconds
    while not (result := check()):
        assert time.monotonic() < deadline, f"{what} did not happen in {seconds} s"
        time.sleep(0.2)
    return result


def test_train_serve_ingest_retrain_and_both_processes_serve_the_new_version(topology):
    t = topology
    assert [_forecast(url).json()["version"] for url in t.apis] == ["1", "1"]
    pushed = httpx.post(
        f"{t.apis[0]}/v1/series/{NAME}/observations",
        headers={"X-API-Key": API_KEY},
        json={"timestamps": [x.isoformat() for x in TIMES[N0:]], "values": VALUES[N0:].tolist()},
    )
    assert (pushed.status_code, pushed.json()["inserted"]) == (200, N - N0)
    # the other process reads the same store: its stored-history forecast starts after the new points
    assert _forecast(t.apis[1]).json()["timestamps"][0] == (TIMES[-1] + pd.Timedelta(hours=1)).isoformat()

    with Stream(t.apis) as stream:  # forecasts at both processes all through the pass and the swap
        passed = seqcast(t.env, "retrain", "--all", "--workers", "1")
        assert passed.returncode == 0, passed.stderr[-3000:]
        assert f"{NAME}: version 2 promoted (MASE" in passed.stdout
        assert "1 promoted, 0 kept, 0 skipped, 0 failed" in passed.stdout
        for url in t.apis:
            _until(lambda url=url: stream.last(url) == "2", 30, f"{url} serving version 2")
    assert {status for _, status, _ in stream.seen} == {200}, stream.seen[-5:]
    assert {(url, version) for url, _, version in stream.seen} == {(u, v) for u in t.apis for v in ("1", "2")}
    for url in t.apis:
        detail = httpx.get(f"{url}/v1/models/{NAME}").json()
        assert detail["aliases"] == {"champion": "2"}
        last = detail["last_retrain"]
        assert (last["status"], last["decision"], last["version"], last["champion_version"]) == (
            "promoted",
            "promoted",
            "2",
            "1",
        )
        assert last["new_points"] == N - N0 and last["data_window"]["count"] == N
        assert last["challenger_mase"] < last["champion_mase"] * 0.98

    # the artifacts went to S3 through the tracking server
    import boto3

    keys = [
        o["Key"] for o in boto3.client("s3", endpoint_url=t.s3, **_creds()).list_objects_v2(Bucket=BUCKET)["Contents"]
    ]
    assert any(k.endswith("/artifacts/forecaster/model.keras") for k in keys), keys[:20]


def test_json_logs_carry_the_request_id_it_returns(topology):
    t = topology
    r = _forecast(t.apis[1], **{"X-Request-ID": "req-7f3a"})
    assert (r.status_code, r.headers["x-request-id"]) == (200, "req-7f3a")
    made = _forecast(t.apis[1]).headers["x-request-id"]
    assert len(made) == 16
    lines = _until(
        lambda: [json.loads(x) for x in (t.logs / "api1.log").read_text().splitlines() if made in x], 10, "the log line"
    )
    assert lines[0]["request_id"] == made and {"time", "level", "logger", "message"} <= lines[0].keys()
    plain = (t.logs / "api0.log").read_text().splitlines()
    assert plain and not plain[0].startswith("{")  # text stays the default


def _ready_when(url: str, registry: str) -> httpx.Response | None:
    r = httpx.get(f"{url}/ready")
    return r if r.json().get("registry") == registry else None


def test_the_registry_going_away_fails_no_cached_forecast_and_both_processes_recover(topology):
    t = topology
    with Stream(t.apis) as stream:
        t.stop_mlflow()
        down = time.monotonic()
        for url in t.apis:  # still 200 for a load balancer, saying what is wrong
            ready = _until(lambda url=url: _ready_when(url, "unreachable"), 15, f"{url} reporting the registry down")
            assert (ready.status_code, ready.json()["status"]) == (200, "degraded")
        time.sleep(max(0.0, 10 - (time.monotonic() - down)))
        t.start_mlflow()
        for url in t.apis:
            ready = _until(lambda url=url: _ready_when(url, "ok"), 60, f"{url} recovering")
            assert (ready.status_code, ready.json()["status"]) == (200, "ready")
    assert len({url for url, _, _ in stream.seen}) == 2 and len(stream.seen) > 20
    assert {status for _, status, _ in stream.seen} == {200}
    assert httpx.get(f"{t.apis[0]}/v1/models/{NAME}").status_code == 200  # the registry answers again


def test_a_killed_pass_changes_nothing_and_the_next_pass_with_a_worse_recipe_keeps_the_champion(topology):
    t = topology
    client = MlflowClient(t.tracking, t.tracking)
    served = str(client.get_model_version_by_alias(NAME, "champion").version)
    run_id = client.get_model_version(NAME, served).run_id
    recipe = json.loads(client.get_run(run_id).data.tags[RECIPE_TAG])
    client.set_tag(run_id, RECIPE_TAG, json.dumps({**recipe, "learning_rate": 1e4}))  # weights thrown far off
    command = [SEQCAST, "retrain", "--name", NAME, "--workers", "1", "--min-new-points", "0"]
    try:
        # killed while training: the training run has started, nothing is registered yet
        versions = len(client.search_model_versions(f"name = '{NAME}'"))
        killed = subprocess.Popen(command, env=t.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        experiment = client.get_experiment_by_name(NAME).experiment_id
        _until(
            lambda: killed.poll() is None and client.search_runs([experiment], "attributes.status = 'RUNNING'"),
            120,
            "the killed pass's training run starting",
        )
        killed.kill()
        killed.wait()
        assert str(client.get_model_version_by_alias(NAME, "champion").version) == served
        assert len(client.search_model_versions(f"name = '{NAME}'")) == versions
        assert {_forecast(url).json()["version"] for url in t.apis} == {served}

        # the killed pass's lease names a process that is gone: the next pass takes it at once, and its
        # challenger (the worse recipe, worse than the free forecasts too) is registered but not promoted
        after = subprocess.run(command, env=t.env, capture_output=True, text=True, timeout=300)
        assert after.returncode == 0, after.stderr[-3000:]
        assert f"{NAME}: version {versions + 1} below baseline" in after.stdout
        assert "0 promoted, 1 kept, 0 skipped, 0 failed" in after.stdout
        assert str(client.get_model_version_by_alias(NAME, "champion").version) == served
    finally:
        client.set_tag(run_id, RECIPE_TAG, json.dumps(recipe))


def test_the_compose_file_is_valid_and_names_only_real_commands_and_settings():
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed (.ci/run installs Debian's package)")
    checked = subprocess.run(
        [compose, "--env-file", ".env.example", "config"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert checked.returncode == 0, checked.stderr
    config = yaml.safe_load(checked.stdout)

    from pipelines.settings import Settings
    from seqcast.cli import build_parser

    parser = build_parser()
    fields = {f"SEQCAST_{name.upper()}" for name in Settings.model_fields}
    for name, service in config["services"].items():
        command = service.get("command") or []
        if command[:1] == ["seqcast"]:
            parser.parse_args(command[1:])  # exits (fails the test) on an unknown command or option
        for key in service.get("environment", {}):
            if key.startswith("SEQCAST_"):
                assert key in fields, f"{name}: {key} is not a setting"
    assert {"api", "scheduler", "train", "mlflow", "postgres", "minio", "minio-bucket"} <= config["services"].keys()
    assert config["services"]["api"]["deploy"]["replicas"] == 2

    dockerfile = (ROOT / "Dockerfile").read_text().splitlines()
    users = [line.split()[1] for line in dockerfile if line.startswith("USER ")]
    assert users and users[-1] not in ("root", "0"), "the image runs as a non-root user"
    assert any("-c constraints.txt" in line for line in dockerfile)
    # every ${VAR} the file reads is in .env.example, and .env (the real secrets) is never committed
    wanted = set(re.findall(r"\$\{(\w+)\}", (ROOT / "docker-compose.yml").read_text()))
    example = {line.split("=")[0] for line in (ROOT / ".env.example").read_text().splitlines() if "=" in line}
    assert wanted and wanted <= example, wanted - example
    assert ".env" in (ROOT / ".gitignore").read_text().splitlines()
