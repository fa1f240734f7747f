"""`flywheel docs`: the dbt docs site of a warehouse, served on localhost (or written to a
folder), with every model's lineage and the exposures of what reads the warehouse."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.python.helpers import DemoWarehouse

FLYWHEEL = str(Path(sys.executable).parent / "flywheel")


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str, deadline: float) -> bytes:
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                assert response.status == 200
                return response.read()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def test_docs_are_served_with_lineage_and_exposures(
    demo_warehouse: DemoWarehouse, tmp_path: Path
) -> None:
    db = demo_warehouse.copy_to(tmp_path / "docs.duckdb")
    port = _free_port()
    server = subprocess.Popen(
        [FLYWHEEL, "docs", "--port", str(port), "--db", str(db)],
        env={**os.environ, "FLYWHEEL_DUCKDB": str(db)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 180
        page = _get(f"http://127.0.0.1:{port}/", deadline)
        manifest = json.loads(_get(f"http://127.0.0.1:{port}/manifest.json", deadline))
        catalog = json.loads(_get(f"http://127.0.0.1:{port}/catalog.json", deadline))
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert b"dbt" in page.lower()
    assert "exposure.feedback_flywheel.python_stage" in manifest["exposures"]
    assert "exposure.feedback_flywheel.flywheel_dashboard" in manifest["exposures"]
    segments = manifest["nodes"]["model.feedback_flywheel.fct_inference_segments"]
    assert "model.feedback_flywheel.int_inferences_validated" in segments["depends_on"]["nodes"]
    assert "model.feedback_flywheel.fct_inference_segments" in catalog["nodes"]  # built, typed


def test_docs_can_be_written_to_a_folder(demo_warehouse: DemoWarehouse, tmp_path: Path) -> None:
    db = demo_warehouse.copy_to(tmp_path / "docs.duckdb")
    done = subprocess.run(
        [FLYWHEEL, "docs", "--out", str(tmp_path / "site"), "--db", str(db)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "site" / "static_index.html").stat().st_size > 100_000
