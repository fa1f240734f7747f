"""Configuration is validated on load with errors that name the key; the CLI's help, messages
and exit codes are what scripts and people rely on."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from feedback_flywheel.cli import main
from feedback_flywheel.cli.common import EXIT_USAGE
from feedback_flywheel.config import SettingsError, parse_overrides
from tests.python.helpers import project_vars


def test_project_vars_are_valid() -> None:
    settings = project_vars()
    assert settings.stratify_by in settings.segment_attributes


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"uncertainty_method": "random"}, "'least_confidence', 'margin' or 'entropy'"),
        ({"lookback_days": -1}, "lookback_days"),
        ({"stratify_by": "colour"}, "stratify_by must be one of segment_attributes"),
        ({"batch_id": "2026-01-01"}, "batch_id"),
    ],
)
def test_invalid_settings_name_the_key_and_what_is_allowed(overrides, named) -> None:
    with pytest.raises(SettingsError, match="invalid settings") as error:
        project_vars(overrides)
    assert named in str(error.value)


def test_unknown_setting_lists_the_known_ones() -> None:
    with pytest.raises(SettingsError, match=r"unknown setting.*lookbak_days.*lookback_days"):
        project_vars({"lookbak_days": 3})


def test_overrides_parse_as_yaml_values() -> None:
    assert parse_overrides(["lookback_days=5", "supported_schema_versions=['1.0']"]) == {
        "lookback_days": 5,
        "supported_schema_versions": ["1.0"],
    }
    with pytest.raises(SettingsError, match="key=value"):
        parse_overrides(["lookback_days"])


COMMANDS = [
    [],
    ["init"],
    ["contract"],
    ["demo-data"],
    ["ingest"],
    ["run"],
    ["demo"],
    ["summary"],
    ["batches"],
    ["decisions"],
    ["drift"],
    ["serve"],
    ["dataset"],
    ["dataset", "list"],
    ["dataset", "verify"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "flywheel")
def test_every_command_has_help(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output
    assert len(result.output.splitlines()) > 3


def test_run_with_a_bad_var_exits_2_naming_the_key(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["run", "--db", str(tmp_path / "w.duckdb"), "--var", "uncertainty_method=coin"]
    )
    assert result.exit_code == EXIT_USAGE
    assert "uncertainty_method" in result.output


def test_run_on_an_empty_warehouse_says_to_load_data(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["run", "--db", str(tmp_path / "w.duckdb")])
    assert result.exit_code == EXIT_USAGE
    assert "flywheel ingest" in result.output


def test_ingest_refuses_a_malformed_file_whole_and_exits_2(tmp_path: Path) -> None:
    bad = tmp_path / "feedback.csv"
    bad.write_text(
        "event_id,event_type,value,occurred_at,received_at,schema_version\n"
        "fe-1,rating,4,2026-01-01T00:00:00Z,2026-01-01T00:01:00Z,1.0\n"
    )
    db_path = tmp_path / "w.duckdb"
    result = CliRunner().invoke(main, ["ingest", "--db", str(db_path), "feedback_events", str(bad)])
    assert result.exit_code == EXIT_USAGE
    assert "missing required column `inference_id`" in result.output
    assert "0 rows appended" in result.output


def test_ingest_of_an_unknown_table_is_a_usage_error(tmp_path: Path) -> None:
    some_file = tmp_path / "x.csv"
    some_file.write_text("a\n1\n")
    result = CliRunner().invoke(main, ["ingest", "clicks", str(some_file)])
    assert result.exit_code == EXIT_USAGE
    assert "inference_log" in result.output


def test_contract_markdown_lists_every_column() -> None:
    from feedback_flywheel.warehouse.contract import RAW_TABLES

    result = CliRunner().invoke(main, ["contract", "--format", "markdown"])
    assert result.exit_code == 0
    for table in RAW_TABLES.values():
        for column in table.columns:
            assert f"| `{column.name}` |" in result.output


@pytest.mark.parametrize(
    "command",
    [["batches"], ["decisions"], ["drift"], ["summary"], ["reward", "status"], ["dataset", "list"]],
)
def test_reading_commands_explain_a_missing_or_locked_warehouse_without_a_traceback(
    command: list[str], tmp_path: Path
) -> None:
    import subprocess
    import sys

    missing = CliRunner().invoke(main, [*command, "--db", str(tmp_path / "nope.duckdb")])
    assert missing.exit_code == EXIT_USAGE, missing.output
    assert "no warehouse at" in missing.output and "flywheel init" in missing.output
    assert "Traceback" not in missing.output

    locked_db = tmp_path / "locked.duckdb"
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys, duckdb\n"
            "con = duckdb.connect(sys.argv[1])\n"
            "print('locked', flush=True)\n"
            "sys.stdin.read()\n",
            str(locked_db),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout.readline().strip() == "locked"
        locked = CliRunner().invoke(main, [*command, "--db", str(locked_db)])
    finally:
        writer.stdin.close()
        writer.wait(10)
    assert locked.exit_code == EXIT_USAGE, locked.output
    assert "open in another process" in locked.output and "published copy" in locked.output


def test_demo_data_breaks_a_signal_from_a_day_and_refuses_a_bad_one(tmp_path: Path) -> None:
    """`flywheel demo-data --broken-tracking SIGNAL:DAY` writes the broken world with its truth;
    a value that is not SIGNAL:DAY, or names a signal that cannot break, is a usage error."""
    import json

    out = tmp_path / "broken"
    args = ["demo-data", "--out", str(out), "--days", "6", "--inferences-per-day", "40"]
    result = CliRunner().invoke(main, [*args, "--broken-tracking", "conversion:4"])
    assert result.exit_code == 0, result.output
    broken = json.loads((out / "truth.json").read_text())["broken_tracking"]
    assert (broken["signal"], broken["from_day"]) == ("conversion", 4)
    for bad, says in (("click", "SIGNAL:DAY"), ("thumbs:2", "dwell_seconds"), ("click:9", "0..5")):
        result = CliRunner().invoke(main, [*args, "--broken-tracking", bad])
        assert result.exit_code == 2, (bad, result.output)
        assert "--broken-tracking" in result.output and says in result.output, result.output
