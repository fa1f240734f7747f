"""The audit trail: the hash chain over ml.audit_log (recomputed here independently), tampering
and deletion found at the right row, idempotent re-runs, the rows that retraining and deployment
append, the registry snapshot, lineage traces, and the ``flywheel audit`` commands."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner

from feedback_flywheel import audit, warehouse
from feedback_flywheel.audit import lineage
from feedback_flywheel.cli import main
from feedback_flywheel.config.paths import serving_path_beside
from tests.python.helpers import DemoWarehouse, copy_warehouse

KEY = b"k" * 32  # the key of chains written in memory here

AUDIT_COLUMNS = "seq, recorded_at, kind, subject_id, batch_id, payload_json, prev_hash, row_hash"


def _audit_frame(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    return con.execute(f"select {AUDIT_COLUMNS} from ml.audit_log order by seq").df()


def _key(db_path: Path) -> bytes:
    """The audit key of a warehouse: HMAC-SHA256 of the documented label under its secret (the
    key file beside it), derived here independently of feedback_flywheel.config.secrets."""
    secret = bytes.fromhex(Path(f"{Path(db_path).resolve()}.secret").read_text().strip())
    return hmac.new(secret, b"feedback_flywheel audit chain v1", hashlib.sha256).digest()


def _independent_hash(row: Any, prev_hash: str, key: bytes) -> str:
    """The documented row hash, written out here: HMAC-SHA256 under the audit key over the compact
    JSON array [seq, recorded_at (ISO, microseconds), kind, subject_id, batch_id, payload_json,
    prev_hash]."""
    recorded = pd.Timestamp(row.recorded_at).strftime("%Y-%m-%dT%H:%M:%S.%f")
    batch = None if pd.isna(row.batch_id) else row.batch_id
    text = json.dumps(
        [int(row.seq), recorded, row.kind, row.subject_id, batch, row.payload_json, prev_hash],
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hmac.new(key, text.encode(), hashlib.sha256).hexdigest()


def _log_in_memory(db_path: Path) -> duckdb.DuckDBPyConnection:
    """A private in-memory copy of the audit log, to tamper with cheaply."""
    con = duckdb.connect()
    con.execute(f"attach '{db_path}' as source (read_only)")
    con.execute("create schema ml")
    con.execute("create table ml.audit_log as select * from source.ml.audit_log")
    con.execute("detach source")
    return con


# --- the chain on the demo warehouse ------------------------------------------------------------


def test_chain_after_the_batch_cycle_verifies_and_matches_an_independent_recomputation(
    demo_warehouse: DemoWarehouse,
) -> None:
    with demo_warehouse.connect() as con:
        log = _audit_frame(con)
        versions = con.execute("select * from marts.fct_dataset_versions").df()
        decisions = con.execute("select * from ml.retraining_decisions").df()
        result = audit.verify(con, key=_key(demo_warehouse.db_path))
    assert result.ok and result.count == len(log)
    assert result.tables_checked >= 4
    assert log.seq.tolist() == list(range(1, len(log) + 1))
    prev = "0" * 64
    key = _key(demo_warehouse.db_path)
    for row in log.itertuples(index=False):
        assert row.prev_hash == prev
        assert row.row_hash == _independent_hash(row, prev, key)
        prev = row.row_hash
    assert result.head_hash == prev

    # One row per dataset version the batches built and per decision, with their content.
    by_kind = log.groupby("kind").subject_id.apply(sorted).to_dict()
    assert by_kind["dataset_version"] == sorted(versions.dataset_version)
    assert by_kind["decision"] == sorted(decisions.decision_id)
    assert not {"training_run", "deployment"} & set(by_kind)  # dry run: no retraining
    for row in log[log.kind == "dataset_version"].itertuples(index=False):
        payload = json.loads(row.payload_json)
        stored = versions[versions.dataset_version == row.subject_id].iloc[0]
        assert row.batch_id == stored.batch_id
        assert payload["example_count"] == stored.example_count
        assert payload["example_fingerprint"] == stored.example_fingerprint
        assert payload["sample_fingerprint"] == stored.sample_fingerprint
        assert payload["as_of_at"] == stored.as_of_at.isoformat()
    for row in log[log.kind == "decision"].itertuples(index=False):
        payload = json.loads(row.payload_json)
        stored = decisions[decisions.decision_id == row.subject_id].iloc[0]
        assert (payload["decision"], payload["reason"]) == (stored.decision, stored.reason)
        assert payload["policy_version"] == stored.policy_version
        assert json.loads(payload["signals_json"]) == json.loads(stored.signals_json)
        assert payload["decided_at"] == stored.decided_at.isoformat()
    # Canonical payloads: keys sorted, no whitespace between tokens.
    for text in log.payload_json:
        assert text == json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"))


TAMPERING = {
    "kind": ("kind = kind || 'x'", "content_hash_mismatch"),
    "subject_id": ("subject_id = subject_id || 'x'", "content_hash_mismatch"),
    "batch_id": ("batch_id = 'b20990101T000000'", "content_hash_mismatch"),
    "payload_json": ("payload_json = replace(payload_json, ':', ': ')", "content_hash_mismatch"),
    "recorded_at": ("recorded_at = recorded_at + interval 1 microsecond", "content_hash_mismatch"),
    "row_hash": ("row_hash = repeat('a', 64)", "content_hash_mismatch"),
    "prev_hash": ("prev_hash = repeat('b', 64)", "prev_hash_mismatch"),
    "seq": ("seq = seq + 1000", "gap"),
}


@pytest.mark.parametrize("column", sorted(TAMPERING))
def test_changing_any_column_of_one_row_is_found_at_that_row(
    demo_warehouse: DemoWarehouse, column: str
) -> None:
    key = _key(demo_warehouse.db_path)
    con = _log_in_memory(demo_warehouse.db_path)
    (count,) = con.execute("select count(*) from ml.audit_log").fetchone()
    assert audit.verify(con, key=key, tables=False).ok and count >= 6
    target = count // 2
    assignment, problem = TAMPERING[column]
    con.execute(f"update ml.audit_log set {assignment} where seq = ?", [target])
    result = audit.verify(con, key=key, tables=False)
    assert not result.ok
    assert (result.broken.seq, result.broken.problem) == (target, problem)


def test_deleting_a_row_is_found_and_a_cut_tail_is_found_against_a_noted_head(
    demo_warehouse: DemoWarehouse,
) -> None:
    key = _key(demo_warehouse.db_path)
    con = _log_in_memory(demo_warehouse.db_path)
    head = audit.verify(con, key=key, tables=False).head_hash
    (count,) = con.execute("select count(*) from ml.audit_log").fetchone()
    con.execute("delete from ml.audit_log where seq = 3")
    result = audit.verify(con, key=key, tables=False)
    assert (result.broken.seq, result.broken.problem) == (3, "gap")
    assert "expected seq 3, found seq 4" in result.broken.detail

    con = _log_in_memory(demo_warehouse.db_path)
    con.execute("delete from ml.audit_log where seq = ?", [count])
    # the bare log cannot see a cut-off tail ...
    assert audit.verify(con, key=key, tables=False).ok
    result = audit.verify(con, key=key, expected_head=head, tables=False)  # ... a noted head can
    assert (result.ok, result.broken.problem) == (False, "head_not_found")
    assert audit.verify(
        _log_in_memory(demo_warehouse.db_path), key=key, expected_head=head, tables=False
    ).ok


# --- record(): canonical, idempotent, atomic ----------------------------------------------------


def test_record_is_canonical_idempotent_and_joins_the_callers_transaction() -> None:
    from datetime import datetime

    import numpy as np

    con = duckdb.connect()
    first = audit.record(
        con,
        key=KEY,
        kind="replay_buffer",
        subject_id="buf-1",
        payload={"size": np.int64(3), "at": datetime(2026, 1, 2, 3, 4, 5), "x": float("nan")},
        batch_id="b1",
    )
    same = audit.record(
        con,
        key=KEY,
        kind="replay_buffer",
        subject_id="buf-1",
        payload={"x": None, "at": "2026-01-02T03:04:05", "size": 3},
        batch_id="b1",
    )
    assert same == first
    assert con.execute("select payload_json from ml.audit_log").fetchall() == [
        ('{"at":"2026-01-02T03:04:05","size":3,"x":null}',)
    ]
    # A real change is recorded, and so is a change back (A -> B -> A).
    audit.record(
        con, key=KEY, kind="replay_buffer", subject_id="buf-1", payload={"size": 4}, batch_id="b1"
    )
    audit.record(
        con,
        key=KEY,
        kind="replay_buffer",
        subject_id="buf-1",
        payload={"x": None, "at": "2026-01-02T03:04:05", "size": 3},
        batch_id="b1",
    )
    # Same content under another batch or subject is another row too.
    audit.record(
        con,
        key=KEY,
        kind="replay_buffer",
        subject_id="buf-1",
        payload={"x": None, "at": "2026-01-02T03:04:05", "size": 3},
        batch_id="b2",
    )
    assert con.execute("select count(*) from ml.audit_log").fetchone() == (4,)

    # Inside the caller's transaction: rolled back with it, committed with it.
    con.execute("begin transaction")
    audit.record(con, key=KEY, kind="reward_model", subject_id="rm-1", payload={"a": 1})
    con.execute("rollback")
    assert con.execute("select count(*) from ml.audit_log").fetchone() == (4,)
    with audit.atomic(con):
        con.execute("create table thing (id integer)")
        con.execute("insert into thing values (1)")
        row_hash = audit.record(
            con, key=KEY, kind="reward_model", subject_id="rm-1", payload={"a": 1}
        )
    assert con.execute("select row_hash from ml.audit_log where seq = 5").fetchone() == (row_hash,)
    result = audit.verify(con, key=KEY, tables=False)  # a bare log: no audited tables here
    assert result.ok and result.head_hash == row_hash

    with pytest.raises(ValueError, match="kind"):
        audit.record(con, key=KEY, kind="", subject_id="x", payload={})
    with pytest.raises(TypeError, match="not JSON-serialisable"):
        audit.record(con, key=KEY, kind="reward_model", subject_id="x", payload={"f": object()})


def test_concurrent_appends_from_one_process_keep_one_gap_free_chain(tmp_path: Path) -> None:
    import threading

    con = duckdb.connect(str(tmp_path / "audit.duckdb"))
    audit.ensure_table(con)

    def append(worker: int) -> None:
        cursor = con.cursor()
        for item in range(15):
            audit.record(
                cursor, key=KEY, kind="extension_event", subject_id=f"w{worker}-{item}", payload={}
            )

    threads = [threading.Thread(target=append, args=(worker,)) for worker in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    result = audit.verify(con, key=KEY)
    assert result.ok and result.count == 45


# --- a retraining on a private copy, then a re-run of the latest batch ---------------------------


@dataclass(frozen=True)
class Retrained:
    db_path: Path
    decision_id: str
    dataset_version: str
    runs: list[dict[str, Any]]
    log_before_rerun: pd.DataFrame
    log_after_rerun: pd.DataFrame


@pytest.fixture(scope="module")
def retrained(
    demo_warehouse: DemoWarehouse, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Retrained]:
    """The latest `retrain` decision of the (dry-run) demo warehouse acted on, the way the batch
    cycle does it without --dry-run (the retrain flow with the decision's dataset version and id;
    min_improvement -1 so the candidate is deployed), then the latest batch run again."""
    from flows.batch_cycle import batch_cycle
    from flows.retrain import retrain

    db_path = demo_warehouse.copy_to(tmp_path_factory.mktemp("audit") / "w.duckdb")
    with warehouse.connect(db_path, read_only=True) as con:
        decision_id, version = con.execute(
            """
            select decisions.decision_id, decisions.dataset_version
            from ml.retraining_decisions as decisions
            inner join marts.fct_dataset_versions as versions
                on decisions.dataset_version = versions.dataset_version
            where decisions.decision = 'retrain' and versions.sample_count > 0
            order by decisions.batch_id desc limit 1
            """
        ).fetchone()
        latest = con.execute("select max(batch_id) from ml.batch_runs").fetchone()[0]
    summary = retrain(
        dataset_version=version, decision_id=decision_id, db_path=str(db_path), min_improvement=-1
    )
    with warehouse.connect(db_path, read_only=True) as con:
        before = _audit_frame(con)
    batch_cycle(batch_id=latest, db_path=str(db_path), dry_run=True)
    with warehouse.connect(db_path, read_only=True) as con:
        after = _audit_frame(con)
    yield Retrained(db_path, decision_id, version, summary["training_runs"], before, after)


def test_rerunning_the_latest_batch_does_not_grow_the_log(retrained: Retrained) -> None:
    pd.testing.assert_frame_equal(retrained.log_after_rerun, retrained.log_before_rerun)
    with warehouse.connect(retrained.db_path, read_only=True) as con:
        assert audit.verify(con, key=_key(retrained.db_path)).ok


def test_training_run_and_deployment_are_appended_to_the_chain(retrained: Retrained) -> None:
    log = retrained.log_before_rerun
    (run,) = retrained.runs
    assert run["status"] == "deployed"
    with warehouse.connect(retrained.db_path, read_only=True) as con:
        stored = con.execute(
            "select * from ml.training_runs where training_run_id = ?", [run["training_run_id"]]
        ).df()
        deployment = con.execute(
            """
            select deployments._load_id, deployments._file_row, ledger.file_name
            from raw.model_deployments as deployments
            inner join raw.load_ledger as ledger on deployments._load_id = ledger.load_id
            where deployments.training_run_id = ?
            """,
            [run["training_run_id"]],
        ).fetchall()
    trained = log[log.kind == "training_run"]
    assert trained.subject_id.tolist() == [run["training_run_id"]]
    payload = json.loads(trained.payload_json.iloc[0])
    assert payload["decision_id"] == retrained.decision_id
    assert payload["dataset_version"] == retrained.dataset_version
    assert payload["attempt"] == 1 and payload["status"] == "deployed"
    assert payload["holdout_accuracy"] == pytest.approx(stored.holdout_accuracy.iloc[0])
    assert (
        payload["parameters_sha256"]
        == hashlib.sha256(stored.parameters_json.iloc[0].encode()).hexdigest()
    )
    assert trained.batch_id.iloc[0] == retrained.dataset_version.removeprefix("ds-")

    deployed = log[log.kind == "deployment"]
    assert deployed.subject_id.tolist() == [f"support_router:{run['candidate_version']}"]
    rows = json.loads(deployed.payload_json.iloc[0])["rows"]
    ((load_id, file_row, file_name),) = deployment
    assert [(r["load_id"], r["file_row"], r["file_name"]) for r in rows] == [
        (load_id, file_row, file_name)
    ]
    # The candidate is deployed first, then its run is recorded (with status deployed).
    assert deployed.seq.iloc[0] < trained.seq.iloc[0]
    assert log.seq.max() == trained.seq.iloc[0]


def test_registry_snapshot_keeps_the_history_of_a_superseded_version(retrained: Retrained) -> None:
    (run,) = retrained.runs
    with warehouse.connect(retrained.db_path, read_only=True) as con:
        history = con.execute(
            """
            select model_version, superseded_at, is_serving, dbt_scd_id, dbt_valid_from,
                dbt_valid_to
            from snapshots.model_registry_snapshot
            order by model_version, dbt_valid_from
            """
        ).df()
        deployed_at = con.execute(
            "select deployed_at from raw.model_deployments where training_run_id = ?",
            [run["training_run_id"]],
        ).fetchone()[0]
    assert history.dbt_scd_id.is_unique
    v2 = history[history.model_version == "v2"]
    # Before the retraining v2 served; the re-run's build saw it superseded by the candidate.
    assert v2.is_serving.tolist() == [True, False]
    assert pd.isna(v2.superseded_at.iloc[0]) and v2.superseded_at.iloc[1] == deployed_at
    assert v2.dbt_valid_to.iloc[0] == v2.dbt_valid_from.iloc[1] and pd.isna(v2.dbt_valid_to.iloc[1])
    new = history[history.model_version == run["candidate_version"]]
    assert new.is_serving.tolist() == [True] and pd.isna(new.dbt_valid_to.iloc[0])
    current = history[history.dbt_valid_to.isna()]
    assert current.model_version.is_unique


# --- lineage -----------------------------------------------------------------------------------


def _examples_of_version(con: duckdb.DuckDBPyConnection, version: str) -> pd.DataFrame:
    """The version's examples by the documented rule, applied in pandas."""
    examples = con.execute(
        "select training_example_id, inference_id, label_event_id, batch_id, "
        "superseded_in_batch_id from marts.fct_training_examples"
    ).df()
    batch = version.removeprefix("ds-")
    keep = (examples.batch_id <= batch) & (
        examples.superseded_in_batch_id.isna() | (examples.superseded_in_batch_id > batch)
    )
    return examples[keep]


def test_trace_of_a_dataset_version_lists_its_raw_events_files_and_the_decision(
    retrained: Retrained,
) -> None:
    with warehouse.connect(retrained.db_path, read_only=True) as con:
        result = lineage.trace(con, retrained.dataset_version, limit=None)
        examples = _examples_of_version(con, retrained.dataset_version)
        inferences = con.execute(
            "select inference_id, _load_id, _file_row from raw.inference_log"
        ).df()
        feedback = con.execute(
            "select inference_id, event_id, _load_id, _file_row from raw.feedback_events"
        ).df()
        ledger = con.execute("select load_id, file_name, table_name from raw.load_ledger").df()
        decision = con.execute(
            "select * from ml.retraining_decisions where decision_id = ?", [retrained.decision_id]
        ).df()
    assert result["kind"] == "dataset_version"
    assert result["examples"] == len(examples)
    wanted = set(examples.inference_id)
    expected = pd.concat(
        [
            inferences[inferences.inference_id.isin(wanted)].assign(table_name="inference_log"),
            feedback[feedback.inference_id.isin(wanted)].assign(table_name="feedback_events"),
        ]
    )
    expected = expected.merge(
        ledger.drop(columns="table_name"), left_on="_load_id", right_on="load_id"
    )
    got = pd.DataFrame(result["raw_events"])
    assert len(got) == len(expected)
    assert set(zip(got.table_name, got.file_name, got.file_row, strict=True)) == set(
        zip(expected.table_name, expected.file_name, expected._file_row, strict=True)
    )
    per_file = expected.groupby(["table_name", "file_name"]).size().to_dict()
    assert {
        (row["table_name"], row["file_name"]): row["rows_behind"] for row in result["raw_files"]
    } == per_file
    # Exactly the examples' label events are marked as labels.
    assert set(got[got.is_label_event].event_id) == set(examples.label_event_id)

    (run,) = result["training_runs"]
    assert run["training_run_id"] == retrained.runs[0]["training_run_id"]
    assert run["decision_id"] == retrained.decision_id
    assert run["decision"] == "retrain" and run["decision_reason"] == decision.reason.iloc[0]
    kinds = {(row["kind"], row["subject_id"]) for row in result["audit_rows"]}
    assert {
        ("dataset_version", retrained.dataset_version),
        ("training_run", run["training_run_id"]),
        ("decision", retrained.decision_id),
    } <= kinds


def test_trace_of_a_training_example_lists_its_events_versions_and_runs(
    retrained: Retrained,
) -> None:
    with warehouse.connect(retrained.db_path, read_only=True) as con:
        sampled = con.execute(
            """
            select sample.training_example_id, sample.training_sample_id, examples.inference_id,
                examples.label_event_id
            from marts.fct_training_sample as sample
            inner join marts.fct_training_examples as examples
                on sample.training_example_id = examples.training_example_id
            where sample.dataset_version = ?
            order by sample.training_example_id limit 1
            """,
            [retrained.dataset_version],
        ).fetchone()
        example_id, sample_id, inference_id, label_event_id = sampled
        result = lineage.trace(con, example_id)
        by_sample_row = lineage.trace(con, sample_id)
        by_inference = lineage.trace(con, inference_id)
        feedback = con.execute(
            """
            select feedback.event_id, feedback._file_row, ledger.file_name
            from raw.feedback_events as feedback
            inner join raw.load_ledger as ledger on feedback._load_id = ledger.load_id
            where feedback.inference_id = ?
            """,
            [inference_id],
        ).df()
        memberships = sorted(
            version
            for (version,) in con.execute(
                "select dataset_version from marts.fct_dataset_versions"
            ).fetchall()
            if example_id in set(_examples_of_version(con, version).training_example_id)
        )
    assert result["kind"] == "training_example"
    assert [e["training_example_id"] for e in result["training_examples"]] == [example_id]
    assert by_sample_row["training_examples"] == result["training_examples"]
    assert example_id in {e["training_example_id"] for e in by_inference["training_examples"]}
    events = pd.DataFrame(result["raw_events"])
    assert (events.table_name == "inference_log").sum() == 1
    got = events[events.table_name == "feedback_events"]
    assert set(zip(got.event_id, got.file_row, got.file_name, strict=True)) == set(
        zip(feedback.event_id, feedback._file_row, feedback.file_name, strict=True)
    )
    assert got[got.is_label_event].event_id.tolist() == [label_event_id]
    assert sorted({row["dataset_version"] for row in result["dataset_versions"]}) == memberships
    assert retrained.dataset_version in {
        row["dataset_version"] for row in result["dataset_versions"] if row["in_training_sample"]
    }
    assert [run["decision_id"] for run in result["training_runs"]] == [retrained.decision_id]


# --- the commands --------------------------------------------------------------------------------


def test_audit_verify_command_exit_codes_and_output(
    retrained: Retrained, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_DUCKDB", str(retrained.db_path))
    runner = CliRunner()
    ok = runner.invoke(main, ["audit", "verify", "--db", str(retrained.db_path)])
    head = retrained.log_after_rerun.row_hash.iloc[-1]
    assert ok.exit_code == 0, ok.output
    assert ok.output.strip() == f"OK: {len(retrained.log_after_rerun):,} audit rows, head {head}"
    as_json = runner.invoke(main, ["audit", "verify", "--json", "--db", str(retrained.db_path)])
    assert json.loads(as_json.output) == {
        "ok": True,
        "count": len(retrained.log_after_rerun),
        "head_hash": head,
        "tables_checked": 6,
        "broken": None,
    }

    tampered = copy_warehouse(retrained.db_path, tmp_path / "tampered.duckdb")
    with warehouse.connect(tampered) as con:
        con.execute(
            "update ml.audit_log set payload_json = replace(payload_json, 'retrain', 'hold') "
            "where seq = 2"
        )
    broken = runner.invoke(main, ["audit", "verify", "--db", str(tampered)])
    assert broken.exit_code == 1
    assert "BROKEN at seq 2: content hash mismatch" in broken.output
    cut = runner.invoke(main, ["audit", "verify", "--head", "f" * 64, "--db", str(tampered)])
    assert cut.exit_code == 1


def test_audit_trace_command_text_json_and_unknown_id(
    retrained: Retrained, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_DUCKDB", str(retrained.db_path))
    runner = CliRunner()
    db = ["--db", str(retrained.db_path)]
    text = runner.invoke(main, ["audit", "trace", retrained.dataset_version, "--limit", "5", *db])
    assert text.exit_code == 0, text.output
    assert f"dataset version {retrained.dataset_version}" in text.output
    assert "raw files behind it (raw.load_ledger):" in text.output
    assert "inference_log" in text.output and ".parquet" in text.output
    assert f"decision {retrained.decision_id}" in text.output
    assert "(first 5 of" in text.output
    as_json = runner.invoke(
        main, ["audit", "trace", retrained.dataset_version.removeprefix("ds-"), "--json", *db]
    )
    assert as_json.exit_code == 0
    parsed = json.loads(as_json.output)
    assert parsed["kind"] == "dataset_version" and len(parsed["raw_events"]) == 50
    unknown = runner.invoke(main, ["audit", "trace", "no-such-thing", *db])
    assert unknown.exit_code == 2
    assert "'no-such-thing' is not a dataset version" in unknown.output


def test_batch_summary_artifact_shows_the_verified_head_and_a_broken_link(
    demo_warehouse: DemoWarehouse, tmp_path: Path
) -> None:
    """The batch-summary artifact notes the head the batch recorded (what `audit verify --head
    --count` needs) and says so loudly when the chain no longer verifies."""
    from feedback_flywheel.publish import artifacts

    db_path = copy_warehouse(demo_warehouse.db_path, tmp_path / "w.duckdb")
    key = _key(db_path)
    latest = demo_warehouse.windows[-1].batch_id
    with warehouse.connect(db_path) as con:
        rows = con.execute("select seq, row_hash from ml.audit_log order by seq").fetchall()
        seq, head = con.execute(
            "select audit_head_seq, audit_head_hash from ml.batch_runs "
            "where batch_id = ? and status = 'success'",
            [latest],
        ).fetchone()
        assert (seq, head) == rows[-1]
        text = "\n".join(artifacts.audit_lines(con, latest, key))
        assert f"verified: {len(rows):,} rows" in text
        assert f"head of batch {latest}: seq {seq}, `{head}`" in text
        con.execute("update ml.audit_log set subject_id = subject_id || 'x' where seq = 2")
        broken = "\n".join(artifacts.audit_lines(con, latest, key))
    assert "**BROKEN at seq 2** (content_hash_mismatch)" in broken


# --- tampering by someone who can write the warehouse but has no key -----------------------------


def _unkeyed_hash(seq: int, recorded_at: str, kind: str, subject: str, payload: str, prev: str):
    """The row hash an attacker computes by the documented rule, but without the key."""
    text = json.dumps([seq, recorded_at, kind, subject, None, payload, prev], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.fixture
def tampered(retrained: Retrained, tmp_path: Path) -> Path:
    """A private copy of the retrained warehouse (with its key file and serving copy)."""
    target = copy_warehouse(retrained.db_path, tmp_path / "w.duckdb")
    serving = serving_path_beside(retrained.db_path)
    assert serving.exists()
    serving_path_beside(target).write_bytes(serving.read_bytes())
    return target


def _verify_cli(db_path: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["audit", "verify", *args, "--db", str(db_path)])
    return result.exit_code, result.output


def _forge_tail(con: duckdb.DuckDBPyConnection, count: int) -> None:
    """Append a decision row hashed by the unkeyed rule, chained correctly to the head."""
    (prev,) = con.execute("select row_hash from ml.audit_log where seq = ?", [count]).fetchone()
    recorded = "2026-12-01T00:00:00.000000"
    payload = '{"decision":"hold"}'
    row_hash = _unkeyed_hash(count + 1, recorded, "decision", "forged", payload, prev)
    con.execute(
        "insert into ml.audit_log (seq, recorded_at, kind, subject_id, batch_id, payload_json, "
        "prev_hash, row_hash) values (?, ?, 'decision', 'forged', null, ?, ?, ?)",
        [count + 1, recorded, payload, prev, row_hash],
    )


TAMPER_CASES = {
    # what the attacker does (SQL against the warehouse, or a function) -> problem found
    "forged row appended by the unkeyed rule": (_forge_tail, "content_hash_mismatch"),
    "a decision rewritten in ml.retraining_decisions only": (
        "update ml.retraining_decisions set reason = 'edited' where decision_id = "
        "(select min(decision_id) from ml.retraining_decisions)",
        "table_mismatch",
    ),
    "a decision deleted from ml.retraining_decisions": (
        "delete from ml.retraining_decisions where decision_id = "
        "(select min(decision_id) from ml.retraining_decisions)",
        "table_mismatch",
    ),
    "a training run deleted": ("delete from ml.training_runs", "table_mismatch"),
    "the chain's tail deleted": (
        "delete from ml.audit_log where seq > (select max(seq) - 3 from ml.audit_log)",
        "head_not_found",
    ),
    "the last row deleted and the batch heads rewritten to match": (
        "delete from ml.audit_log where seq = (select max(seq) from ml.audit_log); "
        "update ml.batch_runs set audit_head_seq = null, audit_head_hash = null",
        "head_not_found",
    ),
}


@pytest.mark.parametrize("case", sorted(TAMPER_CASES))
def test_tampering_without_the_key_is_caught(tampered: Path, case: str) -> None:
    action, problem = TAMPER_CASES[case]
    assert _verify_cli(tampered)[0] == 0
    with warehouse.connect(tampered) as con:
        (count,) = con.execute("select count(*) from ml.audit_log").fetchone()
        if callable(action):
            action(con, count)
        else:
            con.execute(action)
    if "batch heads rewritten" in case:
        # Without the serving copy the heads are gone, yet the cut-off training run's row in
        # ml.training_runs no longer has its audit row; the serving copy's own record of the
        # heads finds the cut first.
        serving = serving_path_beside(tampered)
        kept = serving.read_bytes()
        serving.unlink()
        code, output = _verify_cli(tampered, "--json")
        assert code == 1 and json.loads(output)["broken"]["problem"] == "table_mismatch"
        serving.write_bytes(kept)
    code, output = _verify_cli(tampered, "--json")
    assert code == 1, output
    assert json.loads(output)["broken"]["problem"] == problem


def test_a_wrong_key_or_an_unkeyed_rewrite_of_the_whole_chain_fails_at_the_first_row(
    tampered: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLYWHEEL_SECRET_KEY", "not-the-key-of-this-warehouse")
    code, output = _verify_cli(tampered, "--json")
    assert code == 1 and json.loads(output)["broken"]["seq"] == 1
    monkeypatch.delenv("FLYWHEEL_SECRET_KEY")

    with warehouse.connect(tampered) as con:
        rows = con.execute(
            "select seq, strftime(recorded_at, '%Y-%m-%dT%H:%M:%S.%f'), kind, subject_id, "
            "payload_json from ml.audit_log order by seq"
        ).fetchall()
        prev = "0" * 64
        for seq, recorded, kind, subject, payload in rows:
            row_hash = _unkeyed_hash(seq, recorded, kind, subject, payload, prev)
            con.execute(
                "update ml.audit_log set batch_id = null, prev_hash = ?, row_hash = ? "
                "where seq = ?",
                [prev, row_hash, seq],
            )
            prev = row_hash
    code, output = _verify_cli(tampered, "--json")
    assert code == 1 and json.loads(output)["broken"]["seq"] == 1


def test_verify_count_pins_the_head_to_its_seq(retrained: Retrained) -> None:
    log = retrained.log_after_rerun
    head, count = log.row_hash.iloc[-1], len(log)
    assert _verify_cli(retrained.db_path, "--head", head, "--count", str(count))[0] == 0
    earlier = log.row_hash.iloc[-2]
    assert _verify_cli(retrained.db_path, "--head", earlier, "--count", str(count))[0] == 1
