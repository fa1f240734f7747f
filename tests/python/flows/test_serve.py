"""`flywheel serve` on a real Prefect server: it starts one when PREFECT_API_URL is unset,
registers batch_cycle with a cron schedule in the requested time zone, and the served flow runs a
batch when the deployment is triggered (the flow working against a real API, not the temporary
one)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from feedback_flywheel import demo, warehouse
from tests.python.helpers import ingest_demo


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(1)
    pytest.fail(f"timed out after {timeout:.0f} s waiting for {what}")


def test_serve_starts_a_server_registers_the_schedule_and_runs_the_flow(tmp_path: Path) -> None:
    world = tmp_path / "demo"
    demo.generate(world, seed=3, days=5, inferences_per_day=60)
    db_path = tmp_path / "served.duckdb"
    ingest_demo(db_path, world)

    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("PREFECT_API") and key != "PREFECT_SERVER_ALLOW_EPHEMERAL_MODE"
    }
    env |= {"PREFECT_HOME": str(tmp_path / "prefect"), "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = (tmp_path / "serve.log").open("w")
    serve = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "flywheel"),
            "serve",
            "--cron",
            "30 3 * * *",
            "--timezone",
            "Europe/Berlin",
            "--port",
            str(port),
            "--db",
            str(db_path),
        ],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with httpx.Client(base_url=api, timeout=10) as client:

            def deployment():
                try:
                    found = client.post("/deployments/filter", json={}).json()
                except httpx.HTTPError:
                    return None
                return next((d for d in found if d["name"] == "flywheel-batch-cycle"), None)

            registered = _wait_for(deployment, 120, "the served deployment")
            schedule = registered["schedules"][0]["schedule"]
            assert schedule["cron"] == "30 3 * * *"
            assert schedule["timezone"] == "Europe/Berlin"
            assert f"UI: http://127.0.0.1:{port}" in (tmp_path / "serve.log").read_text()

            def created():
                # The server answers while it is still busy with the runner's first calls (its
                # SQLite database can be briefly locked on a loaded machine): retry server
                # errors; anything else is a real failure, reported with the server's words.
                response = client.post(f"/deployments/{registered['id']}/create_flow_run", json={})
                if response.status_code >= 500:
                    return None
                assert response.status_code < 300, (
                    f"create_flow_run answered {response.status_code}: {response.text}"
                )
                return response.json()

            run = _wait_for(created, 60, "a flow run of the served deployment")

            def finished():
                response = client.get(f"/flow_runs/{run['id']}")
                if response.status_code >= 500:
                    return None
                state = response.json()["state"]
                return state if state["type"] in {"COMPLETED", "FAILED", "CRASHED"} else None

            state = _wait_for(finished, 180, "the triggered batch_cycle run")
            assert state["type"] == "COMPLETED", (tmp_path / "serve.log").read_text()[-3000:]
    finally:
        os.killpg(serve.pid, signal.SIGINT)
        try:
            serve.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(serve.pid, signal.SIGKILL)
        log.close()

    with warehouse.connect(db_path, read_only=True) as con:
        statuses = con.execute("select status from ml.batch_runs").fetchall()
        accepted = con.execute("select count(*) from marts.fct_feedback").fetchone()[0]
    assert statuses == [("success",)]
    assert accepted > 0
