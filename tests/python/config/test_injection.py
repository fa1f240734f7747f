"""Vars are data, never code: an injection string through any var is refused by name before dbt
runs (Python), by dbt itself when typed by hand (`dbt build --vars ...`), or — for the vars that
are free text (group names, labels, LIKE patterns) — reaches SQL only as a quoted literal."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from feedback_flywheel.cli import main
from feedback_flywheel.config.vars import SettingsError, load_vars
from feedback_flywheel.warehouse.dbt import DbtError, run_dbt
from tests.python.helpers import PROJECT_DIR


def dbt(args: list[str], tmp_path: Path, dbt_vars: dict[str, Any]) -> tuple[bool, str]:
    """(succeeded, everything dbt printed) of ``dbt <args> --vars <dbt_vars>``, its artefacts
    under ``tmp_path``."""
    lines: list[str] = []
    try:
        run_dbt(
            args,
            project_dir=PROJECT_DIR,
            db_path=tmp_path / "w.duckdb",
            dbt_vars=dbt_vars,
            on_line=lines.append,
            target_path=tmp_path / "target",
        )
    except DbtError as error:
        return False, "\n".join(lines) + str(error)
    return True, "\n".join(lines)


INJECTION = "region'); drop table raw.inference_log; --"

#: var -> a value carrying the injection string where the var holds a name (identifier) or
#: a version / timestamp / choice
REFUSED: dict[str, Any] = {
    "segment_attributes": ["region", INJECTION],
    "personal_columns": ["subject_id", INJECTION],
    "supported_schema_versions": ["1.1", INJECTION],
    "timestamp_floor": INJECTION,
    "label_weights": {"label": 1.0, INJECTION: 0.5},
    "stratify_by": INJECTION,
    "uncertainty_method": INJECTION,
    "drift_features": {"numeric": [INJECTION], "categorical": []},
    "bias_intersections": [["region", INJECTION]],
    "preference_source_weights": {"human": 1.0, INJECTION: 0.5},
    "reward_text_keywords": {INJECTION: "%thanks%"},
    "lookback_days": "3; drop table raw.inference_log",
    "bias_alpha": "0.05 or 1=1",
    "label_maturation_days": "auto; drop table raw.inference_log",
    "weak_label_signals": ["thumbs", INJECTION],
}


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_python_refuses_an_injection_through_each_var_naming_it(name: str) -> None:
    with pytest.raises(SettingsError, match=re.escape(name)):
        load_vars(PROJECT_DIR, {name: REFUSED[name]})


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_dbt_itself_refuses_each_one_when_typed_by_hand(tmp_path: Path, name: str) -> None:
    """`dbt parse --vars ...` (what a hand-typed `dbt build --vars` meets first: every model
    reads its vars through setting()) fails naming the var."""
    ok, output = dbt(["parse"], tmp_path, {name: REFUSED[name]})
    assert not ok
    assert f"var {name} " in output
    assert "drop table" not in output.split(f"var {name} ")[0][-200:]


def test_a_model_compiled_with_an_injected_var_fails_with_its_name(tmp_path: Path) -> None:
    ok, output = dbt(
        ["compile", "--select", "fct_performance_windows"],
        tmp_path,
        {"segment_attributes": REFUSED["segment_attributes"]},
    )
    assert not ok
    assert "segment_attributes" in output


def test_the_cli_refuses_before_anything_runs(tmp_path: Path) -> None:
    db_path = tmp_path / "w.duckdb"
    result = CliRunner().invoke(
        main,
        ["run", "--db", str(db_path), "--var", f'segment_attributes=[region, "{INJECTION}"]'],
    )
    assert result.exit_code == 2, result.output
    assert "segment_attributes" in result.output
    assert not db_path.exists()


FREE_TEXT = {
    "bias_reference_groups": {"region": "o'brien'); drop table x; --"},
    "bias_positive_labels": {"it's": ["a'b", "c"]},
    "reward_text_keywords": {"polite": "%it's%"},
}


def test_free_text_vars_reach_sql_only_as_quoted_literals(tmp_path: Path) -> None:
    ok, output = dbt(
        ["compile", "--select", "rpt_segment_bias fct_output_features"], tmp_path, FREE_TEXT
    )
    assert ok, output
    compiled = tmp_path / "target" / "compiled" / "feedback_flywheel" / "models"
    bias = next(compiled.rglob("rpt_segment_bias.sql")).read_text()
    features = next(compiled.rglob("fct_output_features.sql")).read_text()
    assert "'o''brien''); drop table x; --'" in bias
    assert "'a''b'" in bias and "'it''s'" in bias
    assert "'%it''s%'" in features
    # and nowhere unescaped
    for text in (bias, features):
        assert not re.search(r"[^']'\); drop table", text)


def test_no_model_or_macro_reads_a_var_except_through_the_validated_accessors() -> None:
    allowed = {
        PROJECT_DIR / "macros/project/settings.sql",
        PROJECT_DIR / "macros/batches/batch.sql",
    }
    offenders = []
    for folder in ("models", "macros", "tests/dbt", "analyses", "snapshots"):
        for path in (PROJECT_DIR / folder).rglob("*.sql"):
            if path in allowed:
                continue
            text = path.read_text()
            if re.search(r"(?<![a-z_])var\(", text):
                offenders.append(str(path.relative_to(PROJECT_DIR)))
    assert not offenders


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("label_maturation_share", 1.5, "a number in (0, 1]"),
        ("label_coverage_max_days", 0, "a whole number >= 1"),
        ("sampling_budget_tolerance", -0.1, "a number in [0, 1]"),
        ("sampling_policy", "sometimes", "fixed (the configured sample) or auto"),
        (
            "weak_label_signals",
            ["thumbs", "rating"],  # an explicit signal is no weak label
            "a list of implicit signals (click, conversion, thumbs, dwell_seconds); [] for none",
        ),
        ("weak_label_min_fidelity", 0, "a number in (0, 1]"),
        ("weak_label_budget", -1, "a whole number >= 0"),
    ],
)
def test_dbt_refuses_a_var_out_of_its_range_as_python_does(
    tmp_path: Path, name: str, value: Any, says: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(name)):
        load_vars(PROJECT_DIR, {name: value})
    ok, output = dbt(["parse"], tmp_path, {name: value})
    assert not ok
    assert f"var {name} must be {says}" in output
