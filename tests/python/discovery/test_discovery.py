"""Discovery's rules on hand-made key profiles, and the configuration file it writes: edits kept,
a pin respected, every value's source named."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from feedback_flywheel.config import file as config_file
from feedback_flywheel.discovery.profile import KeyProfile
from feedback_flywheel.discovery.propose import MAX_CATEGORIES, apply, propose


def key(payload: str, name: str, **counts: int) -> KeyProfile:
    values = {
        "sample_rows": 1000,
        "present_rows": 1000,
        "numeric_rows": 0,
        "boolean_rows": 0,
        "text_rows": 0,
        "other_rows": 0,
        "null_rows": 0,
        "distinct_values": 3,
    }
    values.update(counts)
    return KeyProfile("credit", payload, name, **values)


PROFILES = [
    key("inputs", "age", numeric_rows=1000, distinct_values=60),
    key("inputs", "income", numeric_rows=990, null_rows=10, distinct_values=900),
    key("inputs", "employment", text_rows=1000, distinct_values=4),
    key("inputs", "has_guarantor", boolean_rows=1000, distinct_values=2),
    key("inputs", "applicant_id", text_rows=1000, distinct_values=1000),
    key("inputs", "history", other_rows=1000, distinct_values=800),
    key("inputs", "rare_flag", present_rows=10, text_rows=10, distinct_values=2),
    key("inputs", "always_null", null_rows=1000, distinct_values=0),
    key("context", "zipcode_band", text_rows=1000, distinct_values=5),
    key("context", "elevel", text_rows=1000, distinct_values=3),
    key("context", "branch_id", text_rows=1000, distinct_values=400),
    key("context", "context_id", text_rows=1000, distinct_values=1000),
]


def test_the_rules_pick_numeric_categorical_and_segments_and_say_why_others_are_left_out():
    proposal = propose(PROFILES)
    assert proposal.vars["drift_features"] == {
        "numeric": ["age", "income"],
        "categorical": ["employment", "has_guarantor"],
    }
    assert proposal.vars["segment_attributes"] == ["elevel", "zipcode_band"]
    assert proposal.vars["stratify_by"] == "elevel"  # the fewest groups
    assert proposal.vars["bias_intersections"] == []
    reasons = {j.key_name: j.reason for j in proposal.left_out()}
    assert f"more than {MAX_CATEGORIES}" in reasons["applicant_id"]
    assert "nested" in reasons["history"]
    assert "present in only 1.0%" in reasons["rare_flag"]
    assert reasons["always_null"] == "always null"
    assert "too many groups" in reasons["branch_id"]
    assert "reserved" in reasons["context_id"]


def test_a_key_numeric_in_one_model_and_text_in_another_is_categorical():
    mixed = [
        KeyProfile("a", "inputs", "score", 100, 100, 100, 0, 0, 0, 0, 40),
        KeyProfile("b", "inputs", "score", 100, 100, 0, 0, 100, 0, 0, 5),
    ]
    assert propose(mixed).vars["drift_features"] == {"numeric": [], "categorical": ["score"]}


def test_no_segment_leaves_the_stratum_unset():
    proposal = propose([key("inputs", "age", numeric_rows=1000)])
    assert proposal.vars["segment_attributes"] == []
    assert proposal.vars["stratify_by"] is None


def test_apply_writes_the_file_then_keeps_what_the_user_edited(tmp_path: Path):
    path = tmp_path / "w.config.yml"
    _, notes, changed = apply(path, propose(PROFILES))
    assert changed and not notes and path.exists()
    assert config_file.read(path).vars["segment_attributes"] == ["elevel", "zipcode_band"]
    # the user narrows the segments and adds a threshold of their own
    edited = config_file.read(path)
    edited.vars["segment_attributes"] = ["elevel"]
    edited.vars["stratify_by"] = "elevel"
    edited.vars["lookback_days"] = 5
    config_file.write(edited, "")
    again, notes, changed = apply(path, propose(PROFILES))
    assert changed
    assert again.vars["segment_attributes"] == ["elevel"]  # the edit survives
    assert again.vars["lookback_days"] == 5
    assert any("kept your segment_attributes" in note for note in notes)
    sources = config_file.layered(
        {"segment_attributes": ["region"], "lookback_days": 3, "drift_features": {}},
        config_file.read(path),
        {"lookback_days": 7},
    )
    assert sources["segment_attributes"] == (["elevel"], "file")
    assert sources["drift_features"][1] == "discovered"
    assert sources["lookback_days"] == (7, "--var")


def test_a_pinned_file_is_never_rewritten(tmp_path: Path):
    path = tmp_path / "pinned.yml"
    config_file.write(config_file.ConfigFile(path, vars={"segment_attributes": []}, pin=True), "")
    before = path.read_text()
    _, notes, changed = apply(path, propose(PROFILES))
    assert not changed and "pinned" in notes[0]
    assert path.read_text() == before


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[1, 2]", "expected a mapping"),
        ("vars: {}\nextra: 1\n", "unknown key(s) extra"),
        ("version: 2\n", "version must be 1"),
        ("vars: [1]\n", "must be mappings"),
    ],
)
def test_a_malformed_configuration_file_names_the_file_and_the_problem(tmp_path, text, message):
    path = tmp_path / "bad.yml"
    path.write_text(text)
    with pytest.raises(config_file.ConfigFileError, match=re.escape(message)) as raised:
        config_file.read(path)
    assert str(path) in str(raised.value)
