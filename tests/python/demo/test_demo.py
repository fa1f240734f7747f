"""Tests of the demo world: the files it writes must carry exactly the truth it reports.

Everything is recomputed from the Parquet files with DuckDB, independently of the generator's
internals, so a test fails if the files and ``truth.json`` disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest

from feedback_flywheel.demo.world import BAD_FEEDBACK_RATES, LABELS, generate
from feedback_flywheel.warehouse.contract import RAW_TABLES

DAYS = 12
PER_DAY = 600
START = date(2026, 1, 1)
END = START + timedelta(days=DAYS)
VALID_TYPES = (
    "label",
    "correction",
    "rating",
    "thumbs",
    "click",
    "dwell_seconds",
    "conversion",
    "reward",
    "retraction",
)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any], list[str]]:
    out = tmp_path_factory.mktemp("demo") / "world"
    messages: list[str] = []
    truth = generate(out, seed=7, days=DAYS, inferences_per_day=PER_DAY, progress=messages.append)
    return out, truth, messages


@pytest.fixture()
def con(world: tuple[Path, dict[str, Any], list[str]]) -> Iterator[duckdb.DuckDBPyConnection]:
    """DuckDB with one view per table over the demo files, plus ``fb`` = feedback with flags."""
    out, _, _ = world
    connection = duckdb.connect()
    for name in RAW_TABLES:
        connection.execute(
            f"create view {name} as select * from read_parquet('{out}/{name}/*.parquet')"
        )
    connection.execute(
        f"create view latent_quality as select * from read_parquet('{out}/latent_quality.parquet')"
    )
    valid_types = ", ".join(f"'{t}'" for t in VALID_TYPES)
    connection.execute(
        f"""
        create view fb as
        select
            f.*,
            i.logged_at,
            not json_valid(f.payload) as is_malformed_payload,
            i.inference_id is null as is_unknown_inference_id,
            row_number() over (partition by f.event_id order by f.received_at) > 1
                as is_duplicate_event_id,
            case f.event_type
                when 'rating' then try_cast(f.value as bigint) not between 1 and 5
                when 'thumbs' then f.value not in ('-1', '1')
                when 'click' then f.value not in ('0', '1')
                when 'conversion' then f.value not in ('0', '1')
                when 'dwell_seconds' then try_cast(f.value as double) not between 0 and 86400
                when 'reward' then try_cast(f.value as double) not between -1 and 1
                else false
            end as is_value_out_of_range,
            coalesce(f.occurred_at < i.logged_at, false) as is_occurred_before_inference,
            f.occurred_at > f.received_at + interval 1 hour as is_occurred_in_future,
            f.event_type not in ({valid_types}) as is_unknown_event_type,
            f.schema_version not in ('1.0', '1.1') as is_unsupported_schema_version
        from feedback_events f
        left join inference_log i using (inference_id)
        """
    )
    flags = " + ".join(f"is_{kind}::int" for kind in BAD_FEEDBACK_RATES)
    connection.execute(f"create view fb_flagged as select *, {flags} as defects from fb")
    connection.execute("create view valid_fb as select * from fb_flagged where defects = 0")
    yield connection
    connection.close()


def _files(root: Path) -> dict[str, bytes]:
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file()
    }


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    row = con.execute(sql).fetchone()
    assert row is not None
    return row[0]


# ------------------------------------------------------------------------------------------------
# Determinism and layout
# ------------------------------------------------------------------------------------------------


def test_same_seed_gives_identical_bytes_and_truth(tmp_path: Path) -> None:
    first = generate(tmp_path / "a", seed=11, days=5, inferences_per_day=200)
    second = generate(tmp_path / "b", seed=11, days=5, inferences_per_day=200)
    assert first == second
    files_a, files_b = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert files_a.keys() == files_b.keys()
    assert files_a == files_b


def test_different_seed_differs(tmp_path: Path) -> None:
    generate(tmp_path / "a", seed=1, days=5, inferences_per_day=200)
    generate(tmp_path / "b", seed=2, days=5, inferences_per_day=200)
    name = "inference_log/2026-01-01.parquet"
    assert (tmp_path / "a" / name).read_bytes() != (tmp_path / "b" / name).read_bytes()


def test_rerun_into_same_folder_leaves_no_stale_day_files(tmp_path: Path) -> None:
    generate(tmp_path, days=6, inferences_per_day=100)
    generate(tmp_path, days=3, inferences_per_day=100)
    assert len(list((tmp_path / "inference_log").glob("*.parquet"))) == 3


def test_truth_json_matches_return_value(world: tuple[Path, dict[str, Any], list[str]]) -> None:
    out, truth, _ = world
    assert json.loads((out / "truth.json").read_text()) == truth
    for key in (
        "seed",
        "days",
        "inferences_per_day",
        "start_date",
        "end_date",
        "covariate_drift",
        "concept_drift",
        "biased_segment",
        "deployments",
        "bad_feedback",
        "counts",
        "label_coverage",
        "label_delay_days",
        "implicit_agreement",
        "accuracy",
        "weekday_volume_ratio",
        "preference",
    ):
        assert key in truth
    assert truth["start_date"] == START.isoformat()
    assert truth["end_date"] == END.isoformat()
    assert set(truth["bad_feedback"]) == set(BAD_FEEDBACK_RATES)


def test_progress_reports_each_table(world: tuple[Path, dict[str, Any], list[str]]) -> None:
    _, _, messages = world
    for name in [*RAW_TABLES, "latent_quality", "truth.json"]:
        assert any(message.startswith(name) for message in messages), name


def test_columns_and_types_match_contract(con: duckdb.DuckDBPyConnection) -> None:
    for name, table in RAW_TABLES.items():
        described = con.execute(f"describe select * from {name}").fetchall()
        assert [(row[0], row[1]) for row in described] == [
            (column.name, column.type) for column in table.columns
        ], name
        for column in table.columns:
            if column.required:
                nulls = _one(con, f"select count(*) from {name} where {column.name} is null")
                assert nulls == 0, f"{name}.{column.name}"


def test_files_are_partitioned_by_arrival_day(
    world: tuple[Path, dict[str, Any], list[str]],
) -> None:
    out, _, _ = world
    arrival = {
        "inference_log": "logged_at",
        "feedback_events": "received_at",
        "preference_events": "received_at",
    }
    for table, column in arrival.items():
        files = sorted((out / table).glob("*.parquet"))
        assert files
        for path in files:
            days = duckdb.sql(
                f"select distinct {column}::date::varchar from read_parquet('{path}')"
            ).fetchall()
            assert days == [(path.stem,)], path


def test_row_counts_match_truth(
    con: duckdb.DuckDBPyConnection, world: tuple[Path, dict[str, Any], list[str]]
) -> None:
    _, truth, _ = world
    for name in [*RAW_TABLES, "latent_quality"]:
        assert _one(con, f"select count(*) from {name}") == truth["counts"][name], name


def test_all_timestamps_within_horizon(con: duckdb.DuckDBPyConnection) -> None:
    start, end = f"timestamp '{START}'", f"timestamp '{END}'"
    checks = {
        "inference_log": ["logged_at"],
        "feedback_events": ["occurred_at", "received_at"],
        "preference_events": ["occurred_at", "received_at"],
    }
    for table, columns in checks.items():
        for column in columns:
            outside = _one(
                con, f"select count(*) from {table} where {column} < {start} or {column} >= {end}"
            )
            assert outside == 0, f"{table}.{column}"


# ------------------------------------------------------------------------------------------------
# Inferences
# ------------------------------------------------------------------------------------------------


def test_inference_ids_unique_and_json_columns_parse(con: duckdb.DuckDBPyConnection) -> None:
    assert _one(con, "select count(*) - count(distinct inference_id) from inference_log") == 0
    bad_json = _one(
        con,
        """
        select count(*) from inference_log
        where not json_valid(context) or not json_valid(inputs)
           or (probabilities is not null and not json_valid(probabilities))
        """,
    )
    assert bad_json == 0
    keys = con.execute(
        "select distinct unnest(json_keys(context)) from inference_log order by 1"
    ).fetchall()
    assert [k for (k,) in keys] == sorted(
        ["region", "device", "age_band", "language", "context_id"]
    )


def test_probabilities_are_consistent(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute(
        f"""
        select
            count(*) filter (where predicted_label not in {tuple(LABELS)}),
            count(*) filter (where predicted_score <= 1.0 / 3 or predicted_score > 1),
            count(*) filter (where probabilities is not null and abs(
                (probabilities->>'billing')::double + (probabilities->>'technical')::double
                + (probabilities->>'account')::double - 1) > 1e-6),
            count(*) filter (where probabilities is not null
                and (probabilities->>predicted_label)::double != predicted_score),
            avg((probabilities is null)::int)
        from inference_log
        """
    ).fetchone()
    assert row is not None
    assert row[:4] == (0, 0, 0, 0)
    assert 0.005 < row[4] < 0.05


def test_missing_response_time_is_rare_but_present(con: duckdb.DuckDBPyConnection) -> None:
    share = _one(
        con, "select avg((not json_exists(inputs, '$.response_time_s'))::int) from inference_log"
    )
    assert 0.002 < share < 0.03


def test_versions_follow_deployments(
    con: duckdb.DuckDBPyConnection, world: tuple[Path, dict[str, Any], list[str]]
) -> None:
    _, truth, _ = world
    deployments = con.execute(
        "select model_version, deployed_at, retired_at, training_run_id "
        "from model_deployments order by model_version"
    ).fetchall()
    v2_at = datetime(2026, 1, 1) + timedelta(days=DAYS // 3)
    assert deployments == [
        ("v1", datetime(2026, 1, 1) - timedelta(days=30), v2_at, "tr-demo-v1"),
        ("v2", v2_at, None, "tr-demo-v2"),
    ]
    assert [d["model_version"] for d in truth["deployments"]] == ["v1", "v2"]
    wrong = _one(
        con,
        f"""
        select count(*) from inference_log
        where model_name != 'support_router'
           or (logged_at < timestamp '{v2_at}' and model_version != 'v1')
        """,
    )
    assert wrong == 0
    # After v2's deployment, v1 only answers in shadow: the second answer of a ticket answered
    # twice, for about the planted share of those tickets.
    after = con.execute(
        f"""
        with twins as (
            select
                inference_id,
                model_version,
                context ->> '$.context_id' as context_id,
                row_number() over (
                    partition by context ->> '$.context_id' order by logged_at, inference_id
                ) as answer
            from inference_log
            where logged_at >= timestamp '{v2_at}'
        )
        select
            count(*) filter (where model_version = 'v1' and (context_id is null or answer = 1)),
            count(*) filter (where model_version = 'v1'),
            count(*) filter (where context_id is not null and answer = 2)
        from twins
        """
    ).fetchone()
    stray, shadow, second_answers = after
    assert stray == 0
    share = truth["preference"]["shadow_pair_share"]
    assert shadow > 0
    assert abs(shadow / second_answers - share) < 4 * (share * (1 - share) / second_answers) ** 0.5


def test_covariate_drift_shifts_message_length_and_channel(
    con: duckdb.DuckDBPyConnection, world: tuple[Path, dict[str, Any], list[str]]
) -> None:
    _, truth, _ = world
    drift_start = truth["covariate_drift"][0]["start_date"]
    assert {d["feature"] for d in truth["covariate_drift"]} == {"message_length", "channel"}
    before, after, chat_before, chat_after = con.execute(
        f"""
        select
            avg((inputs->>'message_length')::double) filter (where logged_at < '{drift_start}'),
            avg((inputs->>'message_length')::double) filter (where logged_at >= '{drift_start}'),
            avg((inputs->>'channel' = 'chat')::int) filter (where logged_at < '{drift_start}'),
            avg((inputs->>'channel' = 'chat')::int) filter (where logged_at >= '{drift_start}')
        from inference_log
        """
    ).fetchone() or (0, 0, 0, 0)
    assert after / before > 1.4
    assert chat_after - chat_before > 0.15


def test_weekday_volume_is_higher(
    con: duckdb.DuckDBPyConnection, world: tuple[Path, dict[str, Any], list[str]]
) -> None:
    _, truth, _ = world
    ratio = _one(
        con,
        """
        with daily as (
            select logged_at::date as day, count(*) as n from inference_log group by 1
        )
        select avg(n) filter (where isodow(day) <= 5) / avg(n) filter (where isodow(day) > 5)
        from daily
        """,
    )
    assert ratio == pytest.approx(truth["weekday_volume_ratio"], rel=0.02)


def test_sessions_are_contiguous_with_one_reward_per_step(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute(
        """
        select
            count(*),
            count(*) filter (where n_subjects != 1 or max_step != n - 1 or n_steps != n),
            sum(n)
        from (
            select session_id, count(*) as n, count(distinct subject_id) as n_subjects,
                   max(step_index) as max_step, count(distinct step_index) as n_steps
            from inference_log where session_id is not null group by session_id
        )
        """
    ).fetchone()
    assert row is not None
    sessions, broken, session_rows = row
    assert sessions > 0 and broken == 0
    assert _one(con, "select count(*) from inference_log") * 0.05 < session_rows
    assert (
        _one(
            con,
            "select count(*) from inference_log where (session_id is null) != (step_index is null)",
        )
        == 0
    )
    rewards = con.execute(
        """
        select
            count(*) filter (where r.n is distinct from 1),
            count(*) filter (where i.session_id is null and r.n is not null)
        from inference_log i
        left join (
            select inference_id, count(*) as n from valid_fb
            where event_type = 'reward' group by 1
        ) r using (inference_id)
        where i.session_id is not null or r.n is not null
        """
    ).fetchone()
    assert rewards == (0, 0)


# ------------------------------------------------------------------------------------------------
# Feedback
# ------------------------------------------------------------------------------------------------


def test_bad_feedback_counts_match_files(
    con: duckdb.DuckDBPyConnection, world: tuple[Path, dict[str, Any], list[str]]
) -> None:
    _, truth, _ = world
    for kind, expected in truth["bad_feedback"].items():
        assert expected > 0, kind
        assert _one(con, f"select count(*) filter (where is_{kind}) from fb") == expected, kind
    # Each bad row has exactly one defect, so flagged rows add up to the injected total.
    assert _one(con, "select max(defects) from fb_flagged") == 1
    total_bad = _one(con, "select count(*) from fb_flagged where defects > 0")
    assert (
        total_bad == sum(truth["bad_feedback"].values()) == truth["counts"]["feedback_events_bad"]
    )


def test_duplicates_are_exact_resends_received_later(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute(
        """
        with copies as (
            select *, row_number() over (partition by event_id order by received_at) as copy
            from feedback_events
        )
        select
            count(*),
            count(*) filter (where
                o.inference_id != d.inference_id or o.event_type != d.event_type
                or o.value is distinct from d.value or o.payload is distinct from d.payload
                or o.occurred_at != d.occurred_at or o.source is distinct from d.source
                or o.schema_version != d.schema_version
                or d.received_at <= o.received_at
                or d.received_at > o.received_at + interval 2 day),
            count(*) filter (where o.event_type = 'retraction')
        from copies o join copies d on o.event_id = d.event_id and o.copy = 1 and d.copy = 2
        """
    ).fetchone()
    assert row is not None
    assert row[0] > 0 and row[1:] == (0, 0)
    assert (
        _one(
            con, "select max(c) from (select count(*) as c from feedback_events group by event_id)"
        )
        == 2
    )


def test_valid_events_are_well_formed(
    con: duckdb.DuckDBPyConnection, world: tuple[Path, dict[str, Any], list[str]]
) -> None:
    _, truth, _ = world
    counts = dict(con.execute("select event_type, count(*) from valid_fb group by 1").fetchall())
    assert counts == truth["counts"]["valid_events_by_type"]
    assert sum(counts.values()) == truth["counts"]["feedback_events_valid"]
    problems = _one(
        con,
        f"""
        select count(*) from valid_fb
        where occurred_at < logged_at or received_at < occurred_at
           or schema_version not in ('1.0', '1.1')
           or (event_type in ('label', 'correction') and value not in {tuple(LABELS)})
           or (event_type = 'rating' and value not in ('1', '2', '3', '4', '5'))
           or payload->>'event_type' != event_type
           or payload->>'value' != value
        """,
    )
    assert problems == 0
    assert _one(con, "select count(*) from valid_fb where source is null") == 0


def test_retractions_point_at_earlier_ratings_or_thumbs(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute(
        """
        select
            count(*),
            count(*) filter (where t.event_id is null or t.inference_id != r.inference_id
                or t.event_type not in ('rating', 'thumbs') or t.received_at >= r.received_at)
        from valid_fb r
        left join (select * from valid_fb where event_type != 'retraction') t
            on t.event_id = r.value
        where r.event_type = 'retraction'
        """
    ).fetchone()
    assert row is not None
    assert row[0] > 0 and row[1] == 0


def test_label_delays_within_ten_days(
    con: duckdb.DuckDBPyConnection, world: tuple[Path, dict[str, Any], list[str]]
) -> None:
    _, truth, _ = world
    low, high = con.execute(
        """
        select
            min(epoch(received_at - logged_at)) / 86400,
            max(epoch(received_at - logged_at)) / 86400
        from valid_fb where event_type = 'label'
        """
    ).fetchone() or (None, None)
    assert truth["label_delay_days"] == {"min": 0.0, "max": 10.0}
    assert 0 <= low < 0.5
    assert high <= 10
    assert (
        _one(
            con,
            "select count(*) - count(distinct inference_id) from valid_fb "
            "where event_type = 'label'",
        )
        == 0
    )


def test_accuracy_from_labels_shows_v2_better_and_biased_segment(
    con: duckdb.DuckDBPyConnection,
) -> None:
    accuracy = dict(
        con.execute(
            """
            select model_version, avg((l.value = i.predicted_label)::int)
            from valid_fb l join inference_log i using (inference_id)
            where l.event_type = 'label'
            group by 1
            """
        ).fetchall()
    )
    assert accuracy["v2"] > accuracy["v1"] + 0.05
    de, rest = con.execute(
        """
        select
            avg((l.value = i.predicted_label)::int) filter (where i.context->>'language' = 'de'),
            avg((l.value = i.predicted_label)::int) filter (where i.context->>'language' != 'de')
        from valid_fb l join inference_log i using (inference_id)
        where l.event_type = 'label'
        """
    ).fetchone() or (None, None)
    assert rest - de > 0.1


def test_concept_drift_lowers_accuracy_only_in_latam(
    con: duckdb.DuckDBPyConnection, world: tuple[Path, dict[str, Any], list[str]]
) -> None:
    _, truth, _ = world
    (drift,) = truth["concept_drift"]
    assert (drift["segment_attribute"], drift["segment_value"]) == ("region", "latam")
    start = drift["start_date"]
    rows = con.execute(
        f"""
        select
            i.context->>'region' = 'latam' as latam,
            i.logged_at >= '{start}' as after,
            avg((l.value = i.predicted_label)::int)
        from valid_fb l join inference_log i using (inference_id)
        where l.event_type = 'label' and i.model_version = 'v2'
        group by all
        """
    ).fetchall()
    accuracy = {(latam, after): value for latam, after, value in rows}
    assert accuracy[(True, False)] - accuracy[(True, True)] > 0.2
    assert abs(accuracy[(False, False)] - accuracy[(False, True)]) < 0.1


def test_clicks_agree_with_correctness(con: duckdb.DuckDBPyConnection) -> None:
    given_correct, given_wrong = con.execute(
        """
        select
            avg((c.value = '1')::int) filter (where l.value = i.predicted_label),
            avg((c.value = '1')::int) filter (where l.value != i.predicted_label)
        from valid_fb c
        join inference_log i using (inference_id)
        join (select * from valid_fb where event_type = 'label') l using (inference_id)
        where c.event_type = 'click'
        """
    ).fetchone() or (None, None)
    assert given_correct - given_wrong > 0.25


# ------------------------------------------------------------------------------------------------
# Preferences
# ------------------------------------------------------------------------------------------------


def test_preference_pairs_answer_the_same_context(con: duckdb.DuckDBPyConnection) -> None:
    row = con.execute(
        """
        select
            count(*),
            count(*) filter (where a.inference_id is null or b.inference_id is null),
            count(*) filter (where a.inputs != b.inputs or a.subject_id != b.subject_id
                or a.context != b.context or a.context->>'context_id' != p.context_id),
            count(*) filter (where abs(epoch(a.logged_at - b.logged_at)) > 120),
            count(*) filter (where p.preferred not in ('a', 'b', 'tie')
                or p.source not in ('human', 'ai_judge') or p.annotator_id is null),
            count(*) filter (where p.received_at < p.occurred_at
                or p.received_at > p.occurred_at + interval 1 day
                or p.occurred_at < greatest(a.logged_at, b.logged_at))
        from preference_events p
        left join inference_log a on a.inference_id = p.inference_id_a
        left join inference_log b on b.inference_id = p.inference_id_b
        """
    ).fetchone()
    assert row is not None
    assert row[0] > 0 and row[1:] == (0, 0, 0, 0, 0)
    assert _one(con, "select count(*) - count(distinct preference_id) from preference_events") == 0
    repeated = _one(
        con,
        "select count(*) from (select context_id, annotator_id from preference_events "
        "group by all having count(*) > 1)",
    )
    assert repeated == 0
    assert (
        _one(
            con,
            "select count(*) from (select context_id from preference_events "
            "group by 1 having count(*) > 1)",
        )
        > 0
    )


def test_latent_quality_drives_preferences(con: duckdb.DuckDBPyConnection) -> None:
    missing = _one(
        con,
        """
        select count(*) from (
            select inference_id_a as id from preference_events
            union select inference_id_b from preference_events
        ) p
        full join latent_quality q on q.inference_id = p.id
        where q.inference_id is null or p.id is null
        """,
    )
    assert missing == 0
    agreement = _one(
        con,
        """
        select avg(((qa.latent_quality > qb.latent_quality) = (p.preferred = 'a'))::int)
        from preference_events p
        join latent_quality qa on qa.inference_id = p.inference_id_a
        join latent_quality qb on qb.inference_id = p.inference_id_b
        where p.preferred != 'tie'
        """,
    )
    assert agreement > 0.6
