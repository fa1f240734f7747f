"""The serving snapshot and the dashboard over it.

- Publishing copies every mart and the ml tables the dashboard reads, with a metadata table
  whose row counts are the real ones; a failed publish leaves the old copy untouched; the batch
  cycle publishes by itself after a successful batch.
- Readers never block the writer and never see a half-built copy: a dashboard read while a
  process holds the warehouse's write lock succeeds, a reader open during a publish keeps a
  complete old copy, and readers polling during repeated publishes only ever see complete ones.
- Every page, driven by Streamlit's AppTest on a published copy of the demo warehouse, shows the
  numbers of the marts (checked against the warehouse's own tables read with plain pandas here).
- A real headless Chromium loads the served dashboard on localhost: a screenshot that is a
  non-blank PNG, and a DOM with the page's heading.
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import zlib
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as hypothesis_strategies

from feedback_flywheel.cli import main
from feedback_flywheel.config.paths import serving_path_beside
from feedback_flywheel.dashboard import queries
from feedback_flywheel.publish import serving

APP = Path(serving.__file__).resolve().parent.parent / "dashboard" / "app.py"
CHROMIUM = Path("/usr/bin/chromium")
PAGES = ["kpis", "drift", "decisions", "bias", "quarantine", "datasets", "replay", "feedback_loop"]


@pytest.fixture(scope="module")
def source_db(demo_warehouse, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A private copy of the demo warehouse (the session fixture's file is never touched)."""
    return demo_warehouse.copy_to(tmp_path_factory.mktemp("dashboard") / "warehouse.duckdb")


@pytest.fixture(scope="module")
def published(source_db: Path) -> Path:
    return serving.publish(source_db, source_db.with_name("serving.duckdb")).path


def _read(db: Path, sql: str, params: list | None = None) -> pd.DataFrame:
    with duckdb.connect(str(db), read_only=True) as con:
        return con.execute(sql, params or []).df()


def _snapshot_is_complete(con: duckdb.DuckDBPyConnection) -> str:
    """Every table meta.snapshot lists holds exactly its recorded rows; returns the id."""
    rows = con.execute(
        "select snapshot_id, table_schema, table_name, row_count from meta.snapshot"
    ).fetchall()
    assert rows, "meta.snapshot is empty"
    assert len({row[0] for row in rows}) == 1
    for _, schema, name, expected in rows:
        actual = con.execute(f'select count(*) from "{schema}"."{name}"').fetchone()[0]
        assert actual == expected, f"{schema}.{name}: {actual} rows, metadata says {expected}"
    return rows[0][0]


# ---------------------------------------------------------------- publishing


def test_publish_copies_every_mart_table_with_true_row_counts(
    source_db: Path, published: Path
) -> None:
    source_tables = _read(
        source_db,
        """
        select table_schema || '.' || table_name as relation from information_schema.tables
        where (table_schema = 'marts' and table_type = 'BASE TABLE')
            or (table_schema = 'ml' and table_name in
                ('batch_runs', 'drift_results', 'retraining_decisions', 'training_runs',
                 'audit_log', 'reward_models', 'reward_leaderboard'))
        """,
    ).relation
    meta = _read(published, "select * from meta.snapshot")
    listed = set(meta.table_schema + "." + meta.table_name)
    assert set(source_tables) <= listed
    assert "marts.dim_model_versions" in listed  # the deployment markers
    # views (lineage over every raw row, features of every output) stay in the warehouse
    assert "marts.fct_raw_event_lineage" not in listed
    assert "ml.reward_scores" not in listed  # grows with the traffic: not published
    for row in meta.itertuples(index=False):
        expected = _read(
            source_db, f"select count(*) as n from {row.table_schema}.{row.table_name}"
        )
        assert row.row_count == expected.n[0], f"{row.table_schema}.{row.table_name}"
    with duckdb.connect(str(published), read_only=True) as con:
        _snapshot_is_complete(con)
    latest = _read(
        source_db,
        "select batch_id from ml.batch_runs where status = 'success' "
        "order by window_end desc limit 1",
    ).batch_id[0]
    assert set(meta.batch_id) == {latest}
    assert set(meta.source_db) == {str(source_db)}
    # the content, not only the counts
    columns = "model_name, model_version, kpi_date, inference_count, accuracy, rating_mean"
    query = f"select {columns} from marts.rpt_kpi_daily order by all"
    pd.testing.assert_frame_equal(_read(published, query), _read(source_db, query))
    # nothing left behind by the build-then-swap
    assert [p.name for p in published.parent.iterdir() if ".building" in p.name] == []


def test_the_batch_cycle_published_a_snapshot_of_its_last_batch(demo_warehouse) -> None:
    snapshot = serving_path_beside(demo_warehouse.db_path)
    assert snapshot.exists(), "batch_cycle did not publish the serving snapshot"
    meta = _read(snapshot, "select distinct batch_id from meta.snapshot")
    assert list(meta.batch_id) == [demo_warehouse.windows[-1].batch_id]


def _hold_write_lock(db: Path) -> subprocess.Popen:
    """Another process with the warehouse open for writing, writing rows, as a build does."""
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, time, duckdb\n"
            "con = duckdb.connect(sys.argv[1])\n"
            "con.execute('create temp table lock_probe (i integer)')\n"
            "print('locked', flush=True)\n"
            "i = 0\n"
            "while True:\n"
            "    con.execute('insert into lock_probe values (?)', [i]); i += 1\n"
            "    time.sleep(0.02)\n",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert writer.stdout.readline().strip() == "locked"
    return writer


def test_failed_publish_leaves_the_old_copy_and_says_what_to_do(
    source_db: Path, tmp_path: Path
) -> None:
    target = serving.publish(source_db, tmp_path / "serving.duckdb").path
    before = (target.stat().st_ino, target.read_bytes())
    writer = _hold_write_lock(source_db)
    try:
        with pytest.raises(serving.PublishError, match="another process"):
            serving.publish(source_db, target)
    finally:
        writer.terminate()
        writer.wait(10)
    assert (target.stat().st_ino, target.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["serving.duckdb"]
    with pytest.raises(FileNotFoundError, match="flywheel run"):
        serving.publish(tmp_path / "missing.duckdb", target)


def test_cli_publish(source_db: Path, tmp_path: Path) -> None:
    target = tmp_path / "cli-serving.duckdb"
    result = CliRunner().invoke(main, ["publish", "--db", str(source_db), "--serving", str(target)])
    assert result.exit_code == 0, result.output
    assert "published" in result.output and str(target) in result.output
    with duckdb.connect(str(target), read_only=True) as con:
        _snapshot_is_complete(con)
    # the latest batch is recorded as published, so the next run does not publish it again
    unpublished = _read(
        source_db,
        "select batch_id from ml.batch_runs where status = 'success' and published_at is null "
        "and window_end = (select max(window_end) from ml.batch_runs where status = 'success')",
    )
    assert unpublished.empty
    missing = CliRunner().invoke(main, ["publish", "--db", str(tmp_path / "nope.duckdb")])
    assert missing.exit_code == 2
    assert "no warehouse" in missing.output


def _tables_differ(copy: Path, warehouse: Path) -> dict[str, int]:
    """Per table meta.snapshot lists: rows in one of the two files and not the other (a
    multiset difference both ways), only where that is not zero."""
    differ = {}
    with duckdb.connect(str(copy), read_only=True) as con:
        con.execute(f"attach '{warehouse}' as warehouse (read_only)")
        for schema, name in con.execute(
            "select table_schema, table_name from meta.snapshot"
        ).fetchall():
            ours, theirs = f'"{schema}"."{name}"', f'warehouse."{schema}"."{name}"'
            rows = con.execute(
                f"select count(*) from ((select * from {ours} except all select * from {theirs}) "
                f"union all (select * from {theirs} except all select * from {ours}))"
            ).fetchone()[0]
            if rows:
                differ[f"{schema}.{name}"] = rows
    return differ


def test_a_publish_syncs_the_previous_copy_to_the_warehouse_exactly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    warehouse, target = tmp_path / "warehouse.duckdb", tmp_path / "serving.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        con.execute("create schema marts")
        con.execute(
            "create table marts.facts as select i as id, i % 7 as k, 'v' || i as label, "
            "case when i % 5 = 0 then null else i / 3 end as x from range(5000) as t(i)"
        )
        con.execute("create table marts.reshaped as select i as id from range(10) as t(i)")
        con.execute("create table marts.leaving as select 1 as id")
        con.execute("create table marts.twins as select 1 as id from range(2)")
        con.execute("create table marts.shuffled as select * from (values (1), (1), (2)) v(id)")
    first = serving.publish(warehouse, target)
    assert first.mode == "full"
    # a batch's worth of change: rows deleted, updated and added, a column added, a table gone,
    # a new table, and identical rows (which a sync by row content cannot count) multiplied
    with duckdb.connect(str(warehouse)) as con:
        con.execute("delete from marts.facts where id % 11 = 0")
        con.execute("update marts.facts set label = 'changed', x = null where id % 13 = 0")
        con.execute("insert into marts.facts select i, 0, 'new', 0.5 from range(5000, 5100) t(i)")
        con.execute("alter table marts.reshaped add column extra varchar default 'e'")
        con.execute("drop table marts.leaving")
        con.execute("create table marts.arriving as select 2 as id")
        con.execute("insert into marts.twins select 1 from range(3)")
        # the same hashes and the same count, other multiplicities: {1, 1, 2} -> {1, 2, 2}
        con.execute("delete from marts.shuffled")
        con.execute("insert into marts.shuffled values (1), (2), (2)")
    synced = serving.publish(warehouse, target)
    assert synced.mode == "synced"
    # what changed is written (deleted + inserted rows of facts, the rest copied whole), not
    # all 5,000 rows of facts again
    assert 0 < synced.rows_written < 2000
    assert _tables_differ(target, warehouse) == {}
    meta = _read(target, "select table_name, row_count, synced_publishes from meta.snapshot")
    assert sorted(meta.table_name) == ["arriving", "facts", "reshaped", "shuffled", "twins"]
    assert set(meta.synced_publishes) == {1}
    with duckdb.connect(str(target), read_only=True) as con:
        _snapshot_is_complete(con)
    # nothing changed: nothing written
    again = serving.publish(warehouse, target)
    assert (again.mode, again.rows_written) == ("synced", 0)
    # a full build on request, and after MAX_SYNCS syncs in a row
    assert serving.publish(warehouse, target, full=True).mode == "full"
    monkeypatch.setattr(serving, "MAX_SYNCS", 1)
    assert serving.publish(warehouse, target).mode == "synced"
    assert serving.publish(warehouse, target).mode == "full"
    # a sync that fails (a view made in the copy cannot be dropped as a table) gives way to a
    # full build, and the copy is still the warehouse's
    assert serving.publish(warehouse, target, full=True).mode == "full"
    with duckdb.connect(str(target)) as con:
        con.execute("create view marts.someones_view as select 1 as id")
    assert serving.publish(warehouse, target).mode == "full"
    assert _tables_differ(target, warehouse) == {}
    # a copy of another warehouse is never synced
    other = tmp_path / "other.duckdb"
    other.write_bytes(warehouse.read_bytes())
    assert serving.publish(other, target).mode == "full"
    assert _tables_differ(target, other) == {}


@pytest.mark.parametrize("command", ["dashboard", "publish"])
def test_cli_help_names_the_options(command: str) -> None:
    result = CliRunner().invoke(main, [command, "--help"])
    assert result.exit_code == 0
    for option in (
        "--serving",
        "--db",
        *(("--port", "--headless") if command == "dashboard" else ("--full",)),
    ):
        assert option in result.output


# ---------------------------------------------------------------- readers and the writer


def test_dashboard_read_during_a_running_build_succeeds(
    source_db: Path, published: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    writer = _hold_write_lock(source_db)
    try:
        # the lock is real: the warehouse itself cannot be opened, even read-only
        with pytest.raises(duckdb.IOException, match=r"(?i)lock"):
            duckdb.connect(str(source_db), read_only=True)
        with serving.open_snapshot(published) as con:
            decisions = queries.decisions(con)
            kpis = queries.kpi_daily(con, "accuracy")
        assert not decisions.empty and not kpis.empty
        monkeypatch.setenv(serving.SERVING_ENV, str(published))
        app = _app()
        assert not app.exception
        assert [title.value for title in app.title] == ["feedback_flywheel"]
        assert writer.poll() is None  # the writer kept writing all along
    finally:
        writer.terminate()
        writer.wait(10)


def test_reader_open_during_a_publish_keeps_a_complete_old_copy(
    source_db: Path, tmp_path: Path
) -> None:
    source = tmp_path / "warehouse.duckdb"
    source.write_bytes(source_db.read_bytes())
    target = serving.publish(source, tmp_path / "serving.duckdb", batch_id="old").path
    old_quarantined = _read(source, "select count(*) as n from marts.fct_feedback_quarantine").n[0]
    reader = duckdb.connect(str(target), read_only=True)
    try:
        old_id = _snapshot_is_complete(reader)
        with duckdb.connect(str(source)) as con:  # the next batch changes the marts
            con.execute(
                "delete from marts.fct_feedback_quarantine where reason_code = "
                "(select min(reason_code) from marts.fct_feedback_quarantine)"
            )
        serving.publish(source, target, batch_id="new")
        # the open reader still reads the whole old copy
        assert _snapshot_is_complete(reader) == old_id
        assert (
            reader.execute("select count(*) from marts.fct_feedback_quarantine").fetchone()[0]
            == old_quarantined
        )
    finally:
        reader.close()
    with serving.open_snapshot(target) as con:  # a new reader sees the whole new copy
        new_id = _snapshot_is_complete(con)
        new_quarantined = con.execute(
            "select count(*) from marts.fct_feedback_quarantine"
        ).fetchone()[0]
    assert new_id != old_id and new_id.startswith("new@")
    assert 0 < new_quarantined < old_quarantined


def test_readers_polling_during_publishes_only_see_complete_copies(
    source_db: Path, tmp_path: Path
) -> None:
    target = serving.publish(source_db, tmp_path / "serving.duckdb", batch_id="p0").path
    seen: list[str] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def poll() -> None:
        while not stop.is_set():
            try:
                with serving.open_snapshot(target) as con:
                    seen.append(_snapshot_is_complete(con))
            except BaseException as error:  # reported by the main thread
                errors.append(error)
                return

    reader = threading.Thread(target=poll)
    reader.start()
    published_ids = set()
    try:
        for number in range(1, 4):
            result = serving.publish(source_db, target, batch_id=f"p{number}")
            published_ids.add(f"p{number}@{result.published_at:%Y%m%dT%H%M%S.%f}")
    finally:
        stop.set()
        reader.join(30)
    assert not errors, errors
    assert seen, "the reader never got a read in"
    assert {snapshot_id.split("@")[0] for snapshot_id in seen} <= {"p0", "p1", "p2", "p3"}
    with serving.open_snapshot(target) as con:
        assert _snapshot_is_complete(con) in published_ids


# ---------------------------------------------------------------- the pages (AppTest)


def _app(page: str | None = None):
    from streamlit.testing.v1 import AppTest

    app = AppTest.from_file(str(APP), default_timeout=60)
    app.run()
    if page:
        app.switch_page(f"views/{page}.py")
        app.run()
    return app


@pytest.fixture
def app_env(published: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv(serving.SERVING_ENV, str(published))
    yield published


def _charts(app) -> list:
    return app.get("vega_lite_chart")


def _markdown_text(app) -> str:
    return "\n".join(element.value for element in app.markdown)


@pytest.mark.parametrize("page", [None, *PAGES])
def test_every_page_renders_without_errors(app_env: Path, page: str | None) -> None:
    app = _app(page)
    assert not app.exception, [element.value for element in app.exception]
    assert not app.error, [element.value for element in app.error]
    assert len(app.title) == 1
    batch_id = _read(app_env, "select any_value(batch_id) as b from meta.snapshot").b[0]
    assert any(batch_id in caption.value for caption in app.caption)


def test_overview_shows_the_latest_accuracy_of_the_mart(app_env: Path, source_db: Path) -> None:
    kpis = _read(source_db, "select * from marts.rpt_kpi_daily")
    labelled = kpis[kpis.accuracy.notna()].sort_values(["kpi_date", "labelled_count"])
    app = _app()
    metrics = {metric.label: metric.value for metric in app.metric}
    for model_name, rows in labelled.groupby("model_name"):
        latest = rows.iloc[-1]
        label = f"Accuracy {latest.model_version}, {pd.Timestamp(latest.kpi_date):%Y-%m-%d}"
        assert metrics[label] == f"{latest.accuracy:.1%}", model_name
        assert metrics["Predictions that day"] == f"{latest.inference_count:,}"
        interval = f"[{latest.accuracy_lower:.1%}, {latest.accuracy_upper:.1%}]"
        assert any(interval in caption.value for caption in app.caption)
    assert _charts(app), "the overview has no chart"


def test_overview_shows_the_latest_batchs_warnings_as_plain_text(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "serving.duckdb"
    copy.write_bytes(published.read_bytes())
    hostile = "file '**bold**<script>alert(1)</script>.jsonl': 97% unsupported_schema_version"
    with duckdb.connect(str(copy)) as con:
        (batch_id,) = con.execute(
            "select batch_id from ml.batch_runs where status = 'success' "
            "order by window_end desc, attempt desc limit 1"
        ).fetchone()
        con.execute(
            "update ml.batch_runs set warnings = ? where batch_id = ? and status = 'success'",
            [json.dumps([hostile, "segment attribute 'region' is absent"]), batch_id],
        )
    monkeypatch.setenv(serving.SERVING_ENV, str(copy))
    app = _app()
    assert not app.exception
    shown = [element.value for element in app.text]
    assert f"⚠ {hostile}" in shown  # verbatim: not rendered as markdown or HTML
    assert "⚠ segment attribute 'region' is absent" in shown
    assert any(f"Warnings of batch {batch_id}" in header.value for header in app.subheader)
    assert hostile not in _markdown_text(app)


def test_kpi_page_shows_the_marts_accuracy_and_intervals(app_env: Path, source_db: Path) -> None:
    app = _app("kpis")
    assert _charts(app)
    shown = app.dataframe[0].value
    expected = _read(
        source_db,
        """
        select model_version, kpi_date, accuracy, accuracy_lower, accuracy_upper, labelled_count
        from marts.rpt_kpi_daily
        where accuracy is not null
            and model_name = (select min(model_name) from marts.rpt_kpi_daily)
        order by kpi_date, model_version
        """,
    )
    assert list(shown.value) == list(expected.accuracy)
    assert list(shown.lower) == list(expected.accuracy_lower)
    assert list(shown.upper) == list(expected.accuracy_upper)
    assert list(shown.n) == list(expected.labelled_count)
    # deployment markers: a rule layer on deployed_at, fed by the registry's deployments
    spec = _charts(app)[0].proto.spec
    assert '"deployed_at"' in spec and '"rule"' in spec
    # another KPI through the selector
    app.selectbox(key="kpi_metric").select("rating_mean").run()
    ratings = _read(
        source_db,
        "select rating_mean from marts.rpt_kpi_daily where rating_mean is not null "
        "and model_name = (select min(model_name) from marts.rpt_kpi_daily) "
        "order by kpi_date, model_version",
    )
    assert list(app.dataframe[0].value.value) == list(ratings.rating_mean)


def _expander_frame(app, label_start: str) -> pd.DataFrame:
    """The table folded under the expander whose label starts with ``label_start``."""
    for expander in app.expander:
        if expander.label.startswith(label_start):
            return expander.dataframe[0].value
    raise AssertionError(f"no expander {label_start!r}: {[e.label for e in app.expander]}")


def test_kpi_page_shows_rolling_windows_and_deployment_impact(
    app_env: Path, source_db: Path
) -> None:
    app = _app("kpis")
    model_name = _read(source_db, "select min(model_name) as m from marts.rpt_kpi_daily").m[0]
    trends = _read(
        source_db,
        "select * from marts.rpt_kpi_trends_daily where model_name = ? "
        "and model_version = '__all__' and accuracy_7d is not null order by kpi_date",
        [model_name],
    )
    rolling = _expander_frame(app, "Rolling accuracy")
    seven = rolling[rolling.window_name == "7 days"].sort_values("kpi_date")
    assert list(seven.value) == list(trends.accuracy_7d)
    assert list(seven.lower) == list(trends.accuracy_7d_lower)
    impact = _read(
        source_db,
        "select metric, difference, is_significant from marts.rpt_deployment_impact "
        "where model_name = ? and segment_attribute = '__overall__' order by deployed_at, metric",
        [model_name],
    )
    shown = _expander_frame(app, "Deployment impact")
    assert list(shown.metric) == list(impact.metric)
    assert list(shown.difference) == list(impact.difference)
    assert list(shown.is_significant) == list(impact.is_significant)
    assert len(_charts(app)) >= 3 + len(impact.metric.unique())


def test_bias_page_shows_flagged_groups_and_intervals(app_env: Path, source_db: Path) -> None:
    app = _app("bias")
    assert len(_charts(app)) >= 1
    flagged = _read(
        source_db,
        "select * from marts.rpt_segment_bias where time_bucket = 'all' and is_flagged "
        "order by p_value_adjusted, abs(difference) desc",
    )
    if flagged.empty:
        assert any("No flagged" in message.value for message in app.success)
    else:
        warning = app.warning[0].value
        assert warning.startswith(f"{len(flagged)} flagged")
        first = flagged.iloc[0]
        assert f"{first.segment_attribute} = {first.segment_value}" in warning
        assert f"{first.difference:+.3f}" in warning
    version = app.selectbox(key="bias_version").value
    attribute = app.selectbox(key="bias_attribute").value
    metric = app.selectbox(key="bias_metric").value
    assert metric == "accuracy"
    expected = _read(
        source_db,
        """
        select segment_value, metric_value, metric_lower, metric_upper, is_flagged
        from marts.rpt_segment_bias
        where time_bucket = 'all' and model_version = ? and segment_attribute = ?
            and metric = 'accuracy'
        order by segment_value
        """,
        [version, attribute],
    )
    shown = _expander_frame(app, f"accuracy by {attribute}")
    assert list(shown.segment_value) == list(expected.segment_value)
    pd.testing.assert_series_equal(
        shown.metric_value.reset_index(drop=True),
        expected.metric_value.reset_index(drop=True),
    )
    assert list(shown.is_flagged) == list(expected.is_flagged)


def test_drift_page_names_the_drifted_features(app_env: Path, source_db: Path) -> None:
    app = _app("drift")
    timeline = _read(source_db, "select * from ml.drift_timeline")
    assert not timeline.empty
    assert len(_charts(app)) == 3  # the timeline, then the heat map and the counts by batch
    changes = timeline[timeline.change_point_date.notna()]
    tables = iter(app.dataframe)
    if not changes.empty:
        shown = next(tables).value
        assert set(shown.feature_name) == set(changes.feature_name)
        assert shown.change_point_date.notna().all()
    results = _read(source_db, "select * from ml.drift_results")
    latest = results.batch_id.max()
    drifted = sorted(results[(results.batch_id == latest) & results.is_drift].feature_name.unique())
    from feedback_flywheel.dashboard import common

    if drifted:
        named = ", ".join(common.md(name) for name in drifted)
        assert any(named in warning.value for warning in app.warning)
    else:
        assert any(common.md(latest) in message.value for message in app.success)
    tests_table = next(tables).value
    assert len(tests_table) == (results.batch_id == latest).sum()


def test_decisions_page_shows_each_reason(app_env: Path, source_db: Path) -> None:
    decisions = _read(
        source_db,
        "select decision, reason from ml.retraining_decisions order by watermark_at desc",
    )
    assert not decisions.empty
    app = _app("decisions")
    assert _charts(app)
    shown = {element.value for element in app.text}  # reasons are shown as text, verbatim
    for reason in decisions.reason.head(20):
        assert reason in shown
    metrics = {metric.label: metric.value for metric in app.metric}
    for outcome, count in decisions.decision.value_counts().items():
        assert metrics[outcome.replace("_", " ")] == str(count)


def test_quarantine_page_counts_every_quarantined_row(app_env: Path, source_db: Path) -> None:
    quarantine = _read(source_db, "select reason_code from marts.fct_feedback_quarantine")
    app = _app("quarantine")
    assert _charts(app)
    metrics = {metric.label: metric.value for metric in app.metric}
    assert metrics["Rows quarantined"] == f"{len(quarantine):,}"
    assert metrics["Reason codes seen"] == str(quarantine.reason_code.nunique())
    by_reason = app.dataframe[0].value.set_index("reason_code").quarantined_rows.sort_index()
    expected = quarantine.reason_code.value_counts().sort_index()
    assert by_reason.to_dict() == expected.to_dict()


def test_dataset_page_shows_the_latest_version(app_env: Path, source_db: Path) -> None:
    versions = _read(source_db, "select * from marts.fct_dataset_versions order by as_of_at")
    app = _app("datasets")
    assert _charts(app)
    metrics = {metric.label: metric.value for metric in app.metric}
    newest = versions.iloc[-1]
    from feedback_flywheel.dashboard import common

    # a metric's value is Markdown: data in it is escaped (common.md)
    assert metrics["Latest version"] == common.md(newest.dataset_version)
    assert metrics["Examples"] == f"{newest.example_count:,}"
    assert metrics["Training sample"] == f"{newest.sample_count:,}"


def test_replay_page_shows_the_latest_buffer_version(app_env: Path, source_db: Path) -> None:
    versions = _read(source_db, "select * from ml.replay_versions order by batch_id")
    evictions = _read(
        source_db,
        "select batch_id, reason_code, count(*) as n from ml.replay_evictions group by all",
    )
    app = _app("replay")
    assert _charts(app)
    metrics = {metric.label: metric.value for metric in app.metric}
    newest = versions.iloc[-1]
    from feedback_flywheel.dashboard import common

    assert metrics["Latest version"] == common.md(newest.buffer_version)
    assert metrics["Transitions"] == f"{newest['size']:,}"
    assert metrics["Inserted / evicted"] == f"{newest.inserted:,} / {newest.evicted:,}"
    with duckdb.connect(str(source_db), read_only=True) as con:
        shown = queries.replay_evictions(queries.replay_versions(con))
    assert shown.evicted.sum() == evictions.n.sum()


def test_feedback_loop_page_shows_fidelity_maturation_and_the_sampling_policy(
    app_env: Path, source_db: Path
) -> None:
    overall = _read(
        source_db,
        "select * from marts.rpt_feedback_fidelity where breakdown = '__overall__' "
        "and reference_name = 'correctness' and not is_suppressed and model_name = "
        "(select min(model_name) from marts.rpt_kpi_daily)",  # the page's first model
    )
    assert not overall.empty
    app = _app("feedback_loop")
    assert _charts(app)
    metrics = {metric.label: metric for metric in app.metric}
    assert set(metrics) == set(overall.signal_name) | {
        "Maturation window",
        "Label coverage plateau",
        "Chosen query policy",
        "Gain over random (AULC)",
        "Bottleneck",
        "Examples no training run used yet",
        "Weak labels in use",
        "Usable signals",
    }
    for row in overall.itertuples(index=False):
        assert metrics[row.signal_name].value == f"kappa {row.cohen_kappa:.2f}"
        assert metrics[row.signal_name].delta == f"agreement {row.agreement_rate:.1%}"
    (latest,) = _read(
        source_db,
        "select * from marts.fct_label_maturation where model_name = "
        "(select min(model_name) from marts.rpt_kpi_daily) order by watermark_at desc limit 1",
    ).itertuples(index=False)
    assert metrics["Maturation window"].value == f"{latest.maturation_days} days"
    assert metrics["Label coverage plateau"].value == f"{latest.plateau_coverage:.1%}"
    (chosen,) = _read(
        source_db,
        "select * from marts.fct_sampling_policy_scores where is_chosen and model_name = "
        "(select min(model_name) from marts.rpt_kpi_daily) order by batch_id desc limit 1",
    ).itertuples(index=False)
    from feedback_flywheel.dashboard import common

    shown = f"{chosen.policy}, {chosen.chosen_budget:,} labels"
    assert metrics["Chosen query policy"].value == common.md(shown)
    assert "advice only" in metrics["Chosen query policy"].delta  # the shipped sampling: fixed
    assert metrics["Gain over random (AULC)"].value == f"{chosen.gain_mean:+.3f}"
    assert common.md(chosen.choice_reason) in [caption.value for caption in app.caption]
    (slowest,) = _read(
        source_db,
        "select * from marts.fct_feedback_latency where is_bottleneck and breakdown = 'overall' "
        "and model_name = (select min(model_name) from marts.rpt_kpi_daily)",
    ).itertuples(index=False)
    assert metrics["Bottleneck"].value == common.md(slowest.stage.replace("_", " "))
    assert metrics["Bottleneck"].delta == f"median {slowest.p50_seconds / 3600:,.1f} h"
    weak = _read(
        source_db,
        "select * from marts.rpt_weak_labels "
        "where model_name = (select min(model_name) from marts.rpt_kpi_daily)",
    )
    assert len(weak) == 8  # four implicit signals, each positive and negative
    assert metrics["Weak labels in use"].value == f"{weak.current_weak_labels.sum():,}"
    # the shipped weak_label_signals is empty: no signal is usable, and the page says it is off
    assert (weak.usability == "not_configured").all()
    assert metrics["Usable signals"].value == "0 of 8"
    assert "off" in metrics["Usable signals"].delta


def test_without_a_snapshot_the_dashboard_says_what_to_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(serving.SERVING_ENV, str(tmp_path / "not-yet.duckdb"))
    for page in (None, *PAGES):
        app = _app(page)
        assert not app.exception
        assert "flywheel publish" in app.error[0].value
        assert "flywheel run" in app.error[0].value


# ---------------------------------------------------------------- a real browser


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _png_colours(png: bytes) -> int:
    """Distinct colours of a PNG (Pillow, a Streamlit dependency)."""
    from PIL import Image

    with Image.open(io.BytesIO(png)) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 24) or [])


class Chromium:
    """Debian's chromium, headless, driven over the DevTools protocol.

    ``--screenshot`` / ``--dump-dom`` on the command line take their picture when a virtual time
    budget runs out, which on a busy machine is sometimes before Streamlit's client has drawn
    anything (a blank page). Over DevTools the test waits for the page itself to say it is done:
    the heading is drawn, the charts are drawn, and the script is no longer running.
    """

    def __init__(self, profile: Path) -> None:
        port = _free_port()
        self.log = (profile.parent / "chromium.log").open("w")
        self.process = subprocess.Popen(
            [
                str(CHROMIUM),
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--window-size=1400,1000",
                "--remote-debugging-address=127.0.0.1",
                f"--remote-debugging-port={port}",
                "about:blank",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        pages: list[dict] = []
        deadline = time.monotonic() + 60
        while not pages:
            assert self.process.poll() is None, "chromium exited; see chromium.log"
            assert time.monotonic() < deadline, "chromium's DevTools endpoint did not come up"
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as r:
                    pages = [target for target in json.load(r) if target["type"] == "page"]
            except OSError:
                time.sleep(0.3)
        from websockets.sync.client import connect

        self.socket = connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
        self.next_id = 0
        self.events: list[dict] = []

    def call(self, method: str, **params) -> dict:
        self.next_id += 1
        self.socket.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.next_id:
                assert "error" not in message, message
                return message["result"]
            if "method" in message:
                self.events.append(message)

    def requested_urls(self) -> list[str]:
        """Every URL the page asked for since Network.enable (events arrive with replies)."""
        return [
            event["params"]["request"]["url"]
            for event in self.events
            if event["method"] == "Network.requestWillBeSent"
        ]

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)[
            "result"
        ].get("value")

    def close(self) -> None:
        self.socket.close()
        self.process.terminate()
        self.process.wait(20)
        self.log.close()


# Drawn: the page heading, at least `charts` Vega charts with their canvases or SVGs, and no
# "running" status widget.
RENDERED = """
(() => {
  const heading = document.querySelector('h1');
  const charts = document.querySelectorAll('[data-testid="stVegaLiteChart"]');
  const drawn = [...charts].filter(c => c.querySelector('canvas, svg.marks')).length;
  const running = document.querySelector('[data-testid="stStatusWidget"]');
  const exceptions = document.querySelectorAll('[data-testid="stException"]').length;
  return {heading: heading ? heading.textContent : null, charts: drawn, running: !!running,
          exceptions: exceptions};
})()
"""

# every page by its URL path and heading (the overview is the default page)
BROWSER_PAGES = {
    "kpis": "KPI trends",
    "drift": "Drift",
    "decisions": "Retraining decisions",
    "bias": "Segment bias",
    "quarantine": "Quarantine",
    "datasets": "Dataset versions",
    "replay": "Replay buffer",
    "feedback_loop": "Feedback loop",
}


def _wait_rendered(browser: Chromium, heading: str, charts: int) -> dict:
    """Poll until the page shows ``heading`` with ``charts`` drawn charts and has stopped."""
    state: dict = {}
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        state = browser.evaluate(RENDERED) or {}
        if (
            state.get("heading") == heading
            and state.get("charts", 0) >= charts
            and not state["running"]
        ):
            time.sleep(1.0)  # let the last chart finish its transition
            return browser.evaluate(RENDERED)
        time.sleep(0.5)
    raise AssertionError(f"{heading!r} was not drawn in 90 s: {state}")


def test_headless_chromium_renders_the_served_dashboard(published: Path, tmp_path: Path) -> None:
    assert CHROMIUM.exists(), (
        f"{CHROMIUM} is missing: `make test` installs it (apt-get install chromium); "
        "the dashboard's browser test needs a real browser"
    )
    port = _free_port()
    env = {**os.environ, "HOME": str(tmp_path)}
    log = (tmp_path / "dashboard.log").open("w")
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "flywheel"),
            "dashboard",
            "--port",
            str(port),
            "--serving",
            str(published),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(url + "_stcore/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            assert server.poll() is None, (tmp_path / "dashboard.log").read_text()
            assert time.monotonic() < deadline, "the dashboard did not come up in 60 s"
            time.sleep(0.5)
        browser = Chromium(tmp_path / "profile")
        try:
            browser.call("Page.enable")
            browser.call("Network.enable")
            browser.call(
                "Emulation.setDeviceMetricsOverride",
                width=1400,
                height=1000,
                deviceScaleFactor=1,
                mobile=False,
            )
            browser.call("Page.navigate", url=url)
            state = _wait_rendered(browser, "feedback_flywheel", charts=2)
            assert state["exceptions"] == 0, state
            dom = browser.evaluate("document.documentElement.outerHTML")
            png = base64.b64decode(browser.call("Page.captureScreenshot", format="png")["data"])
            for path, heading in BROWSER_PAGES.items():  # every other page draws, error-free
                browser.call("Page.navigate", url=url + path)
                state = _wait_rendered(browser, heading, charts=1)
                assert state["exceptions"] == 0, (path, state)
        finally:
            browser.close()
        assert "<title>feedback_flywheel</title>" in dom
        assert re.search(r"<h1[^>]*>(?:<[^>]+>)*feedback_flywheel<", dom)
        assert "KPI trends" in dom and "Retraining decisions" in dom  # the navigation
        # nothing was fetched from anywhere but the dashboard itself (no CDN, fonts, telemetry)
        outside = [
            u
            for u in browser.requested_urls()
            if not u.startswith((url, f"ws://127.0.0.1:{port}/", "data:", "blob:"))
        ]
        assert browser.requested_urls() and not outside, outside
        # the server runs headless and without usage statistics (`flywheel dashboard` execs it)
        command = Path(f"/proc/{server.pid}/cmdline").read_bytes().split(b"\0")
        for flag, value in (
            ("--server.headless", b"true"),
            ("--browser.gatherUsageStats", b"false"),
        ):
            assert command[command.index(flag.encode()) + 1] == value
        screenshot = tmp_path / "dashboard.png"
        screenshot.write_bytes(png)
    finally:
        server.terminate()
        server.wait(20)
        log.close()
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    width, height = int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")
    assert (width, height) == (1400, 1000)
    assert zlib.crc32(png[12:29]) == int.from_bytes(png[29:33], "big")  # a whole IHDR chunk
    assert _png_colours(png) > 64, "the screenshot is (nearly) blank"
    keep = os.environ.get("FLYWHEEL_DASHBOARD_SCREENSHOT")
    if keep:
        Path(keep).write_bytes(png)


# ---------------------------------------------------------------- hostile text from the logs


@given(st_text=hypothesis_strategies.text(max_size=80))
@hypothesis_settings(max_examples=300, deadline=None, derandomize=True)
def test_md_leaves_no_markdown_or_html_character_unescaped(st_text: str) -> None:
    from feedback_flywheel.dashboard import common

    shown = common.md(st_text)
    assert "\n" not in shown and "\r" not in shown
    # Every special character is preceded by a backslash that is not itself escaped.
    unescaped = re.sub(r"\\.", "", shown)
    assert not re.search(r"[\\`*_{}\[\]()#+\-.!|<>~$:&\"'=^]", unescaped)


def test_a_hostile_model_name_and_reason_render_as_text(
    published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copy = tmp_path / "serving.duckdb"
    copy.write_bytes(published.read_bytes())
    image = "![x](http://attacker.invalid/pixel.png)"
    reason = f"covariate_drift {image} <img src=x onerror=alert(1)> **bold**"
    with duckdb.connect(str(copy)) as con:
        con.execute(
            "update ml.retraining_decisions set reason = ?, model_name = ? where decision_id = "
            "(select decision_id from ml.retraining_decisions order by watermark_at desc "
            "limit 1)",
            [reason, f"m {image}"],
        )
    monkeypatch.setenv(serving.SERVING_ENV, str(copy))
    app = _app("decisions")
    assert not app.exception
    assert reason in [element.value for element in app.text]
    markdown = _markdown_text(app)
    assert image not in markdown and "<img" not in markdown
    assert r"\!\[x\]" in markdown  # the model name, escaped
