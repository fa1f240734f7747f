"""The demo world: a deterministic history of logged predictions and feedback with known truth.

``generate`` writes raw files that satisfy :mod:`feedback_flywheel.contract` for one classifier,
``support_router``, which routes support tickets to ``billing`` / ``technical`` / ``account`` and
writes a suggested reply. Into that history it plants things the warehouse is supposed to find: a
better second model version, covariate drift, concept drift in one segment, a segment with worse
accuracy, bad feedback of eight kinds at known counts, RL-style sessions with rewards, and
preference pairs judged by a Bradley–Terry model on a hidden quality. Everything that was planted
is returned (and written to ``truth.json``) so tests and demos can check the warehouse recovers it.

Why it is built the way it is:

* Files are partitioned by each table's arrival time (``logged_at`` / ``received_at``) per UTC
  day, so a daily loader that picks up "today's file" sees exactly what had arrived by then.
* Same seed and arguments give byte-identical files: one seeded numpy generator drives every draw,
  no wall-clock value is used, and Parquet is written by pyarrow with fixed options.
* Value formats (feedback_events.value): labels as label names, rating "1".."5", thumbs "-1"/"1",
  click and conversion "0"/"1", dwell_seconds with one decimal ("51.9"), reward with three
  ("-0.117"), retraction the withdrawn event_id. Payloads are {"event_type", "value", "client"}
  with the value as a JSON string.
* It is vectorised: rows are drawn as numpy arrays, and the JSON / id text columns are built by
  DuckDB from Arrow tables (``to_json(struct_pack(...))``, ``printf``), never row by row in Python.
  One million inferences take seconds, not minutes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedback_flywheel.warehouse.contract import RAW_TABLES, RawTable

# --------------------------------------------------------------------------------------------
# The world's constants. Everything here ends up in truth.json where it matters.
# --------------------------------------------------------------------------------------------

MODEL_NAME = "support_router"
LABELS: tuple[str, ...] = ("billing", "technical", "account")

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR
EPOCH = date(1970, 1, 1)

# Segment attributes of a subject (fixed per subject), with a majority value each.
CONTEXT_SHARES: dict[str, dict[str, float]] = {
    "region": {"na": 0.50, "eu": 0.25, "apac": 0.15, "latam": 0.10},
    "device": {"web": 0.50, "ios": 0.30, "android": 0.20},
    "age_band": {"25-34": 0.40, "35-54": 0.30, "18-24": 0.20, "55+": 0.10},
    "language": {"en": 0.60, "es": 0.20, "de": 0.12, "fr": 0.08},
}
CHANNEL_SHARES_BEFORE: dict[str, float] = {"email": 0.50, "chat": 0.30, "phone": 0.20}
CHANNEL_SHARES_AFTER: dict[str, float] = {"email": 0.30, "chat": 0.55, "phone": 0.15}
PRODUCT_SHARES: dict[str, float] = {"basic": 0.55, "pro": 0.35, "enterprise": 0.10}
MESSAGE_LENGTH_MEDIAN = 220.0  # characters; lognormal with sigma 0.6 before drift
MESSAGE_LENGTH_SHIFT = 1.6  # multiplier on message_length from the covariate drift day on
MISSING_RESPONSE_TIME_RATE = 0.01  # share of inputs without the response_time_s key

# Generating accuracies: outside the biased segment, and the gap inside it.
ACCURACY: dict[str, float] = {"v1": 0.72, "v2": 0.84}
BIASED_ATTRIBUTE, BIASED_VALUE, BIASED_ACCURACY_GAP = "language", "de", 0.20
CONCEPT_DRIFT_ATTRIBUTE, CONCEPT_DRIFT_VALUE = "region", "latam"
CONCEPT_DRIFT_ROTATE_SHARE = 0.5  # share of the segment's rows whose true label rotates
PROBABILITIES_NULL_RATE = 0.02

WEEKDAY_VOLUME_RATIO = 1.4  # inferences on a weekday / inferences on a weekend day
PAIR_TICKET_SHARE = 0.05  # share of tickets answered twice (preference pairs)
# From v2's deployment on, this share of the tickets answered twice get their second answer from
# v1 kept running in shadow (champion / challenger), so preferences compare the two versions.
SHADOW_PAIR_SHARE = 0.5
# Added to the latent quality of a version's replies: v2 writes better replies on average, which
# the item-level Bradley-Terry fit (the model-version leaderboard) should recover.
VERSION_QUALITY_OFFSET: dict[str, float] = {"v1": 0.0, "v2": 0.6}
SESSION_SHARE = 0.10  # share of inferences inside RL-style sessions
SESSION_STEPS = (2, 8)  # min / max steps of a session
SESSION_STEP_GAP_MINUTES = (1.0, 5.0)

# Feedback coverage (share of inferences, except correction: of labelled, retraction: of
# ratings + thumbs) and signal models.
FEEDBACK_RATES: dict[str, float] = {
    "label": 0.60,
    "correction": 0.03,
    "rating": 0.15,
    "thumbs": 0.10,
    "click": 0.40,
    "dwell_seconds": 0.20,
    "conversion": 0.05,
    "retraction": 0.01,
}
LABEL_DELAY_DAYS = (0.0, 10.0)
CORRECTION_DELAY_DAYS = (1.0, 5.0)
P_CLICK = {"correct": 0.70, "wrong": 0.25}
P_THUMBS_UP = {"correct": 0.85, "wrong": 0.30}
P_CONVERSION = {"correct": 0.30, "wrong": 0.08}
RATING_PROBS = {
    "correct": (0.03, 0.07, 0.15, 0.35, 0.40),
    "wrong": (0.35, 0.30, 0.20, 0.10, 0.05),
}
REWARD_MEAN = {"correct": 0.6, "wrong": -0.4}
REWARD_SD = 0.3
SCHEMA_VERSION_1_1_SHARE = 0.3

# Bad feedback: share of the valid events injected per kind. The names are the warehouse's
# quarantine reason codes.
BAD_FEEDBACK_RATES: dict[str, float] = {
    "malformed_payload": 0.005,
    "unknown_inference_id": 0.005,
    "duplicate_event_id": 0.005,
    "value_out_of_range": 0.005,
    "occurred_before_inference": 0.005,
    "occurred_in_future": 0.005,
    "unknown_event_type": 0.005,
    "unsupported_schema_version": 0.005,
}

# Event types as written; codes index this tuple. The last one is never valid.
EVENT_TYPES: tuple[str, ...] = (
    "label",
    "correction",
    "rating",
    "thumbs",
    "click",
    "dwell_seconds",
    "conversion",
    "reward",
    "retraction",
    "emoji_reaction",
)
T_LABEL, T_CORRECTION, T_RATING, T_THUMBS, T_CLICK, T_DWELL, T_CONVERSION = range(7)
T_REWARD, T_RETRACTION, T_UNKNOWN = 7, 8, 9
SCHEMA_VERSIONS: tuple[str, ...] = ("1.0", "1.1", "0.9", "2.0")  # the first two are supported
SOURCES: tuple[str, ...] = (
    "labeling_vendor",
    "annotation_tool",
    "web_client",
    "mobile_app",
    "environment",
)
CLIENTS: tuple[str, ...] = (
    "vendor-api/2.3",
    "annotator-ui/1.8",
    "web/4.2.0",
    "ios/5.1.2",
    "android/5.0.7",
    "session-sim/1.0",
)
UNKNOWN_INFERENCE_BASE = 900_000_000  # ids from here on never exist in inference_log

# Suggested replies: composed from parts; the latent quality is linear in their features.
GREETINGS = ("", "Hi there! ", "Hello. ")
APOLOGIES = ("", "Sorry for the trouble. ")
CORE_PHRASES: dict[str, tuple[str, str]] = {
    "billing": (
        "Your invoice question has been routed to Billing. ",
        "We are reviewing the charge on your account. ",
    ),
    "technical": (
        "Our technical team is looking into the issue. ",
        "Please try restarting the app and clearing the cache. ",
    ),
    "account": (
        "We can help you update your account settings. ",
        "Your account access request is being processed. ",
    ),
}
ESCALATIONS = ("", "I have escalated this to a specialist. ")
HELP_LINKS = ("", "You can find step-by-step guides in our help center. ")
CLOSINGS = ("Thanks.", "Let us know if anything else comes up.", "Best regards, the Support team.")
TEXT_PART_PROBS: dict[str, tuple[float, ...]] = {
    "greeting": (0.4, 0.3, 0.3),
    "apology": (0.6, 0.4),
    "core": (0.5, 0.5),
    "escalation": (0.7, 0.3),
    "help": (0.65, 0.35),
    "closing": (0.4, 0.3, 0.3),
}
QUALITY_FEATURES: dict[str, str] = {
    "n_words": "number of whitespace-separated words in output_text",
    "has_apology": "output_text contains 'Sorry for the trouble.'",
    "has_escalation": "output_text contains 'I have escalated this to a specialist.'",
    "has_help_center": "output_text contains 'help center'",
    "has_generic_closing": "output_text ends with 'Thanks.'",
}
QUALITY_WEIGHTS: dict[str, float] = {
    "intercept": 0.0,
    "n_words": 0.04,
    "has_apology": 0.6,
    "has_escalation": 0.9,
    "has_help_center": 0.5,
    "has_generic_closing": -0.4,
}
QUALITY_NOISE_SD = 0.3
TIE_THRESHOLD = 0.2  # |q_a - q_b| below this can be judged a tie ...
TIE_PROBABILITY = 0.5  # ... with this probability
POSITION_BIAS = 0.3  # logit added in favour of the first-shown output (a)
N_HUMAN_ANNOTATORS = 9
N_AI_JUDGES = 2  # humans + judges = 11, a prime, so distinct annotators per pair are easy
JUDGMENTS_PER_PAIR_PROBS = (0.7, 0.2, 0.1)  # 1, 2 or 3 judgments of the same pair

# True label model: softmax(W @ features) over LABELS; features listed in LABEL_FEATURES.
LABEL_FEATURES = (
    "intercept",
    "z_account_age",
    "z_message_length",
    "sentiment",
    "z_prior_tickets",
    "channel_chat",
    "channel_phone",
    "product_pro",
    "product_enterprise",
)
LABEL_WEIGHTS = np.array(
    [
        [0.2, 0.3, -0.4, -0.6, 0.0, -0.3, 0.2, 0.8, 1.2],  # billing
        [0.0, 0.0, 1.0, -0.2, 0.4, 0.6, -0.2, 0.3, 0.2],  # technical
        [0.1, -0.9, -0.3, 0.0, 0.5, -0.2, 0.6, -0.3, -0.4],  # account
    ]
)
LABEL_TEMPERATURE = 1.5

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 1_000_000,
}

Progress = Callable[[str], None]


# --------------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------------


def _pick(rng: np.random.Generator, probs: Sequence[float], size: int) -> np.ndarray:
    """Categorical draws (codes into ``probs``) as int8."""
    cum = np.cumsum(np.asarray(probs, dtype=np.float64))
    cum /= cum[-1]
    codes = np.searchsorted(cum, rng.random(size), side="right")
    return np.minimum(codes, len(probs) - 1).astype(np.int8)


def _uniform_us(rng: np.random.Generator, low_us: float, high_us: Any, size: int) -> np.ndarray:
    """Integer microsecond offsets uniform in [low, high)."""
    return (low_us + rng.random(size) * (np.asarray(high_us, dtype=np.float64) - low_us)).astype(
        np.int64
    )


def _day_us(day: date) -> int:
    """Microseconds since the epoch at 00:00 UTC of ``day``."""
    return (day - EPOCH).days * US_PER_DAY


def _iso(us: int) -> str:
    """ISO 8601 text of a naive UTC microsecond timestamp."""
    return (datetime(1970, 1, 1) + timedelta(microseconds=int(us))).isoformat()


def _clean(values: np.ndarray, decimals: int) -> np.ndarray:
    """Round and turn -0.0 into 0.0, so text never shows "-0.0"."""
    return np.round(values, decimals) + 0.0


def _sql_list(values: Sequence[str]) -> str:
    """A DuckDB list literal of strings, for code -> text lookups (``list[code + 1]``)."""
    return "[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def _arrow_type(duckdb_type: str) -> pa.DataType:
    """The Arrow type a contract column is written as, so DuckDB reads back the contract type."""
    types = {
        "VARCHAR": pa.string(),
        "TIMESTAMP": pa.timestamp("us"),
        "BIGINT": pa.int64(),
        "DOUBLE": pa.float64(),
    }
    return types[duckdb_type]


def contract_schema(table: RawTable) -> pa.Schema:
    """The Arrow schema of one raw table: contract column order, types and nullability."""
    return pa.schema(
        [
            pa.field(column.name, _arrow_type(column.type), nullable=not column.required)
            for column in table.columns
        ]
    )


def _timestamps(us: np.ndarray) -> pa.Array:
    return pa.array(us.astype(np.int64), type=pa.timestamp("us"))


def _write_daily(
    out_dir: Path, table: pa.Table, day_us: np.ndarray, start_us: int
) -> tuple[int, int]:
    """Write ``table`` (sorted by ``day_us``) as one Parquet file per UTC day of ``day_us``.

    Days without rows get no file. Returns (rows, files).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    day_index = (day_us - start_us) // US_PER_DAY
    days = np.unique(day_index)
    bounds = np.append(np.searchsorted(day_index, days, side="left"), len(day_index))
    for position, day in enumerate(days):
        lo, hi = int(bounds[position]), int(bounds[position + 1])
        file_date = date.fromordinal(EPOCH.toordinal() + (start_us // US_PER_DAY) + int(day))
        pq.write_table(
            table.slice(lo, hi - lo),
            out_dir / f"{file_date.isoformat()}.parquet",
            **PARQUET_OPTIONS,
        )
    files = len(days)
    return table.num_rows, files


def _clear_outputs(out_dir: Path) -> None:
    """Remove files an earlier run wrote, so a shorter history leaves no stale day files."""
    for name in RAW_TABLES:
        folder = out_dir / name
        if folder.is_dir():
            for path in folder.glob("*.parquet"):
                path.unlink()
    for path in (out_dir / "latent_quality.parquet", out_dir / "truth.json"):
        if path.exists():
            path.unlink()


# --------------------------------------------------------------------------------------------
# The generator
# --------------------------------------------------------------------------------------------


def _text_vocabulary() -> tuple[list[str], np.ndarray]:
    """Every reply output_text can be, and the quality features of each.

    Index = ((((((label * 3 + greeting) * 2 + apology) * 2 + core) * 2 + escalation) * 2 + help)
    * 3 + closing). Returns (texts, features[n_texts, len(QUALITY_FEATURES)]).
    """
    texts: list[str] = []
    features: list[list[float]] = []
    for label in LABELS:
        for greeting in GREETINGS:
            for apology in APOLOGIES:
                for core in CORE_PHRASES[label]:
                    for escalation in ESCALATIONS:
                        for help_link in HELP_LINKS:
                            for closing in CLOSINGS:
                                text = greeting + apology + core + escalation + help_link + closing
                                texts.append(text)
                                features.append(
                                    [
                                        float(len(text.split())),
                                        float(bool(apology)),
                                        float(bool(escalation)),
                                        float(bool(help_link)),
                                        float(closing == "Thanks."),
                                    ]
                                )
    return texts, np.array(features)


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    days: int = 60,
    inferences_per_day: int = 2000,
    start_date: date = date(2026, 1, 1),
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the demo world under ``out_dir`` and return its truth (also in ``truth.json``).

    ``inferences_per_day`` is the average daily volume; weekdays get more than weekends
    (``WEEKDAY_VOLUME_RATIO``). Only events received before ``start_date + days`` are written,
    and every count in the truth counts exactly what was written.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if inferences_per_day < 20:
        raise ValueError(f"inferences_per_day must be at least 20, got {inferences_per_day}")
    say: Progress = progress or (lambda _message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_outputs(out_dir)
    rng = np.random.default_rng(seed)

    start_us = _day_us(start_date)
    end_us = start_us + days * US_PER_DAY
    v2_day = days // 3
    covariate_day = days * 7 // 12
    concept_day = days * 3 // 4
    v2_us = start_us + v2_day * US_PER_DAY

    world = _inferences(
        rng, days, inferences_per_day, start_date, covariate_day, concept_day, v2_us
    )
    n = world["n"]
    say(
        f"inferences: drew {n:,} rows "
        f"({world['n_sessions']:,} sessions, {world['n_pairs']:,} preference contexts)"
    )

    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")  # progress goes through ``progress`` only
    try:
        rows, files = _write_inference_log(con, out_dir, world, start_us)
        say(f"inference_log: {rows:,} rows in {files} daily files")

        feedback = _feedback(rng, world, start_us, end_us)
        rows, files = _write_feedback(con, out_dir, feedback, start_us)
        say(
            f"feedback_events: {rows:,} rows in {files} daily files "
            f"({sum(feedback['bad_counts'].values()):,} bad)"
        )

        prefs = _preferences(rng, world, end_us)
        rows, files = _write_preferences(con, out_dir, prefs, start_us)
        say(f"preference_events: {rows:,} rows in {files} daily files")
    finally:
        con.close()

    latent_rows = _write_latent_quality(out_dir, world, prefs)
    say(f"latent_quality: {latent_rows:,} rows")

    deployments = _write_deployments(out_dir, start_us, v2_us)
    say("model_deployments: 2 rows")

    truth = _truth(
        seed=seed,
        days=days,
        inferences_per_day=inferences_per_day,
        start_date=start_date,
        covariate_day=covariate_day,
        concept_day=concept_day,
        world=world,
        feedback=feedback,
        prefs=prefs,
        latent_rows=latent_rows,
        deployments=deployments,
    )
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    say(f"truth.json: written to {out_dir / 'truth.json'}")
    return truth


def _day_counts(days: int, inferences_per_day: int, start_date: date) -> np.ndarray:
    """Inferences per day: weekdays WEEKDAY_VOLUME_RATIO times weekend days, averaging the input."""
    weekday = np.array([(start_date + timedelta(days=d)).weekday() < 5 for d in range(days)])
    weight_weekday = 7 * WEEKDAY_VOLUME_RATIO / (5 * WEEKDAY_VOLUME_RATIO + 2)
    weight_weekend = 7 / (5 * WEEKDAY_VOLUME_RATIO + 2)
    weights = np.where(weekday, weight_weekday, weight_weekend)
    return np.rint(inferences_per_day * weights).astype(np.int64)


def _layout(
    rng: np.random.Generator, day_counts: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Split each day's inferences into units: singles, pairs (2 rows) and sessions (k rows).

    Returns per unit (length, kind 0=single 1=pair 2=session, day index).
    """
    lengths: list[np.ndarray] = []
    kinds: list[np.ndarray] = []
    unit_days: list[np.ndarray] = []
    low, high = SESSION_STEPS
    for day, count in enumerate(day_counts):
        n_pairs = round(int(count) * PAIR_TICKET_SHARE / (1 + PAIR_TICKET_SHARE))
        session_rows = round(int(count) * SESSION_SHARE)
        draws = rng.integers(low, high + 1, size=session_rows // low + 1)
        cumulative = np.cumsum(draws)
        cut = int(np.searchsorted(cumulative, session_rows))
        sessions = draws[: cut + 1].copy()
        sessions[-1] -= cumulative[cut] - session_rows
        sessions = sessions[sessions >= low]
        singles = int(count) - 2 * n_pairs - int(sessions.sum())
        day_lengths = np.concatenate(
            [np.ones(singles, np.int64), np.full(n_pairs, 2, np.int64), sessions.astype(np.int64)]
        )
        day_kinds = np.concatenate(
            [
                np.zeros(singles, np.int8),
                np.ones(n_pairs, np.int8),
                np.full(len(sessions), 2, np.int8),
            ]
        )
        lengths.append(day_lengths)
        kinds.append(day_kinds)
        unit_days.append(np.full(len(day_lengths), day, np.int64))
    return np.concatenate(lengths), np.concatenate(kinds), np.concatenate(unit_days)


def _inferences(
    rng: np.random.Generator,
    days: int,
    inferences_per_day: int,
    start_date: date,
    covariate_day: int,
    concept_day: int,
    v2_us: int,
) -> dict[str, Any]:
    """Draw every inference (as numpy arrays sorted by logged_at) and its hidden truth."""
    start_us = _day_us(start_date)
    day_counts = _day_counts(days, inferences_per_day, start_date)
    unit_len, unit_kind, unit_day = _layout(rng, day_counts)
    n_units = len(unit_len)
    n = int(unit_len.sum())
    unit_first = np.cumsum(unit_len) - unit_len
    unit_of_row = np.repeat(np.arange(n_units), unit_len)
    pos = np.arange(n) - unit_first[unit_of_row]
    kind = unit_kind[unit_of_row]

    # When: a unit starts somewhere in its day (late enough that it ends the same day).
    span_s = np.array([86_399.0, 86_280.0, 82_800.0])[unit_kind]
    unit_start = start_us + unit_day * US_PER_DAY + (rng.random(n_units) * span_s * US_PER_SECOND)
    gap = np.where(
        kind == 1,
        _uniform_us(rng, 2 * US_PER_SECOND, 60 * US_PER_SECOND, n),
        _uniform_us(
            rng,
            SESSION_STEP_GAP_MINUTES[0] * US_PER_MINUTE,
            SESSION_STEP_GAP_MINUTES[1] * US_PER_MINUTE,
            n,
        ),
    )
    gap[pos == 0] = 0
    running = np.cumsum(gap)
    offset = running - running[unit_first][unit_of_row]
    logged = unit_start.astype(np.int64)[unit_of_row] + offset
    day = (logged - start_us) // US_PER_DAY

    # Who: subjects with fixed segment attributes; a unit is about one subject.
    n_subjects = max(50, n // 8)
    subject_attrs = {
        attribute: _pick(rng, list(shares.values()), n_subjects)
        for attribute, shares in CONTEXT_SHARES.items()
    }
    subject = rng.integers(0, n_subjects, size=n_units)[unit_of_row]
    context = {attribute: codes[subject] for attribute, codes in subject_attrs.items()}

    # What the model saw. Pair twins copy the first answer's inputs (same ticket).
    after_covariate = day >= covariate_day
    account_age = np.minimum(np.floor(rng.exponential(400.0, n)), 3650).astype(np.int64)
    message_length = np.maximum(
        5,
        np.rint(
            rng.lognormal(np.log(MESSAGE_LENGTH_MEDIAN), 0.6, n)
            * np.where(after_covariate, MESSAGE_LENGTH_SHIFT, 1.0)
        ),
    ).astype(np.int64)
    sentiment = _clean(np.tanh(rng.normal(0.0, 0.6, n)), 3)
    prior_tickets = rng.poisson(1.5, n).astype(np.int64)
    response_time = _clean(rng.lognormal(np.log(180.0), 0.8, n), 1)
    response_missing = rng.random(n) < MISSING_RESPONSE_TIME_RATE
    channel = np.where(
        after_covariate,
        _pick(rng, list(CHANNEL_SHARES_AFTER.values()), n),
        _pick(rng, list(CHANNEL_SHARES_BEFORE.values()), n),
    ).astype(np.int8)
    product = _pick(rng, list(PRODUCT_SHARES.values()), n)

    # True label from a fixed linear softmax of the features (P(y|x) learnable and fixed).
    features = np.column_stack(
        [
            np.ones(n),
            (np.log1p(account_age) - 5.5),
            (np.log(message_length) - np.log(MESSAGE_LENGTH_MEDIAN)) / 0.6,
            sentiment,
            (prior_tickets - 1.5) / 1.2,
            channel == 1,
            channel == 2,
            product == 1,
            product == 2,
        ]
    ).astype(np.float64)
    logits = LABEL_TEMPERATURE * features @ LABEL_WEIGHTS.T
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs /= probs.sum(axis=1, keepdims=True)
    y_base = (rng.random(n)[:, None] > np.cumsum(probs, axis=1)).sum(axis=1)
    y_base = np.minimum(y_base, 2).astype(np.int8)
    concept_values = list(CONTEXT_SHARES[CONCEPT_DRIFT_ATTRIBUTE])
    rotated = (
        (context[CONCEPT_DRIFT_ATTRIBUTE] == concept_values.index(CONCEPT_DRIFT_VALUE))
        & (day >= concept_day)
        & (rng.random(n) < CONCEPT_DRIFT_ROTATE_SHARE)
    )

    twin = (kind == 1) & (pos == 1)
    twin_rows = np.flatnonzero(twin)
    for array in (
        account_age,
        message_length,
        sentiment,
        prior_tickets,
        response_time,
        response_missing,
        channel,
        product,
        y_base,
        rotated,
    ):
        array[twin_rows] = array[twin_rows - 1]
    y_true = np.where(rotated, (y_base + 1) % 3, y_base).astype(np.int8)

    # The model: correct (w.r.t. the relationship it learned) with its version's accuracy.
    version = (logged >= v2_us).astype(np.int8)  # 0 = v1, 1 = v2
    # v1 in shadow answers the second half of some tickets after v2's deployment. A generator of
    # its own (spawned, so the main stream of draws is unchanged).
    shadow = twin & (version == 1) & (rng.spawn(1)[0].random(n) < SHADOW_PAIR_SHARE)
    version[shadow] = 0
    biased_values = list(CONTEXT_SHARES[BIASED_ATTRIBUTE])
    in_biased = context[BIASED_ATTRIBUTE] == biased_values.index(BIASED_VALUE)
    accuracy = np.where(version == 1, ACCURACY["v2"], ACCURACY["v1"]) - np.where(
        in_biased, BIASED_ACCURACY_GAP, 0.0
    )
    knows = rng.random(n) < accuracy
    predicted = np.where(knows, y_base, (y_base + 1 + rng.integers(0, 2, n)) % 3).astype(np.int8)
    correct = predicted == y_true
    score = np.where(knows, rng.beta(6.0, 1.8, n), rng.beta(2.0, 3.0, n))
    score = np.clip(np.round(1 / 3 + (2 / 3) * score, 4), 0.3334, 1.0)
    rest = np.round(1.0 - score, 4)
    with np.errstate(divide="ignore"):
        ratio = np.where(rest > 0, score / np.maximum(rest, 1e-12), np.inf)
    low = np.maximum(0.0, 1.0 - ratio)
    high = np.minimum(1.0, ratio)
    other_1 = _clean((low + rng.random(n) * (high - low)) * rest, 4)
    other_2 = _clean(rest - other_1, 4)
    probabilities = np.zeros((n, 3))
    rows = np.arange(n)
    probabilities[rows, predicted] = score
    probabilities[rows, (predicted + 1) % 3] = other_1
    probabilities[rows, (predicted + 2) % 3] = other_2
    probabilities_null = rng.random(n) < PROBABILITIES_NULL_RATE

    # The suggested reply and its hidden quality.
    _, text_features = _text_vocabulary()
    part_codes = [_pick(rng, TEXT_PART_PROBS[part], n).astype(np.int64) for part in TEXT_PART_PROBS]
    greeting, apology, core, escalation, help_link, closing = part_codes
    text_code = predicted.astype(np.int64)
    for code, size in ((greeting, 3), (apology, 2), (core, 2), (escalation, 2), (help_link, 2)):
        text_code = text_code * size + code
    text_code = text_code * 3 + closing
    weights = np.array([QUALITY_WEIGHTS[name] for name in QUALITY_FEATURES])
    quality = (
        QUALITY_WEIGHTS["intercept"]
        + text_features[text_code] @ weights
        + rng.normal(0.0, QUALITY_NOISE_SD, n)
        + np.where(version == 1, VERSION_QUALITY_OFFSET["v2"], VERSION_QUALITY_OFFSET["v1"])
    )

    # Sort by logged_at: the inference number (id) follows serving order.
    order = np.lexsort((np.arange(n), logged))
    rank = np.empty(n, np.int64)
    rank[order] = np.arange(n)

    session_units = np.flatnonzero(unit_kind == 2)
    session_number = np.full(n_units, -1, np.int64)
    session_number[session_units[np.argsort(rank[unit_first[session_units]], kind="stable")]] = (
        np.arange(1, len(session_units) + 1)
    )
    pair_units = np.flatnonzero(unit_kind == 1)
    pair_units = pair_units[np.argsort(rank[unit_first[pair_units]], kind="stable")]
    context_number = np.full(n_units, -1, np.int64)
    context_number[pair_units] = np.arange(1, len(pair_units) + 1)

    def s(array: np.ndarray) -> np.ndarray:
        """The array in logged_at order."""
        return array[order]

    session_row = session_number[unit_of_row]
    return {
        "n": n,
        "n_units": n_units,
        "n_sessions": len(session_units),
        "n_pairs": len(pair_units),
        "day_counts": day_counts,
        "logged": s(logged),
        "day": s(day),
        "version": s(version),
        "subject": s(subject),
        "session": s(session_row),
        "step": s(np.where(kind == 2, pos, -1)),
        "context_number": s(context_number[unit_of_row]),
        "context": {attribute: s(codes) for attribute, codes in context.items()},
        "account_age": s(account_age),
        "message_length": s(message_length),
        "sentiment": s(sentiment),
        "prior_tickets": s(prior_tickets),
        "response_time": s(response_time),
        "response_missing": s(response_missing),
        "channel": s(channel),
        "product": s(product),
        "predicted": s(predicted),
        "score": s(score),
        "probabilities": probabilities[order],
        "probabilities_null": s(probabilities_null),
        "text_code": s(text_code),
        "quality": s(quality),
        "y_true": s(y_true),
        "correct": s(correct),
        "in_biased": s(in_biased),
        "rotated": s(rotated),
        # pairs as (first row, second row) in sorted positions, ordered by context number
        "pair_first": rank[unit_first[pair_units]],
        "pair_second": rank[unit_first[pair_units] + 1],
    }


def _write_inference_log(
    con: duckdb.DuckDBPyConnection, out_dir: Path, world: dict[str, Any], start_us: int
) -> tuple[int, int]:
    """Build the text columns in DuckDB and write inference_log per logged_at day."""
    n = world["n"]
    texts, _ = _text_vocabulary()
    session = world["session"]
    step = world["step"]
    context_number = world["context_number"]
    numeric = pa.table(
        {
            "num": np.arange(1, n + 1, dtype=np.int64),
            "subject": world["subject"] + 1,
            "session": pa.array(session, mask=session < 0),
            "context_number": pa.array(context_number, mask=context_number < 0),
            **{f"ctx_{name}": codes for name, codes in world["context"].items()},
            "account_age": world["account_age"],
            "message_length": world["message_length"],
            "sentiment": world["sentiment"],
            "prior_tickets": world["prior_tickets"],
            "response_time": world["response_time"],
            "response_missing": world["response_missing"],
            "channel": world["channel"],
            "product": world["product"],
            "p0": world["probabilities"][:, 0],
            "p1": world["probabilities"][:, 1],
            "p2": world["probabilities"][:, 2],
            "probabilities_null": world["probabilities_null"],
        }
    )
    ctx_lists = {name: _sql_list(list(shares)) for name, shares in CONTEXT_SHARES.items()}
    context_fields = ", ".join(
        f"{name} := {ctx_lists[name]}[ctx_{name} + 1]" for name in CONTEXT_SHARES
    )
    channel = _sql_list(list(CHANNEL_SHARES_BEFORE))
    product = _sql_list(list(PRODUCT_SHARES))
    input_head = "account_age_days := account_age, message_length := message_length, "
    input_head += "sentiment := sentiment, prior_tickets := prior_tickets"
    input_tail = f"channel := {channel}[channel + 1], product := {product}[product + 1]"
    probability_fields = ", ".join(f"{label} := p{i}" for i, label in enumerate(LABELS))
    sql = f"""
        select
            printf('inf-%09d', num) as inference_id,
            printf('subj-%07d', subject) as subject_id,
            printf('sess-%07d', session) as session_id,
            case when context_number is null
                then to_json(struct_pack({context_fields}))
                else to_json(struct_pack(
                    {context_fields}, context_id := printf('ctx-%07d', context_number)))
            end::varchar as context,
            case when response_missing
                then to_json(struct_pack({input_head}, {input_tail}))
                else to_json(struct_pack(
                    {input_head}, response_time_s := response_time, {input_tail}))
            end::varchar as inputs,
            case when probabilities_null then null
                else to_json(struct_pack({probability_fields}))::varchar
            end as probabilities
        from numeric
    """
    con.register("numeric", numeric)
    text = con.sql(sql).to_arrow_table()
    con.unregister("numeric")
    versions = pa.array(["v1", "v2"])
    table = pa.Table.from_arrays(
        [
            text["inference_id"],
            _timestamps(world["logged"]),
            pc.take(pa.array([MODEL_NAME]), pa.array(np.zeros(n, np.int8))),
            pc.take(versions, world["version"]),
            text["subject_id"],
            text["session_id"],
            pa.array(step, mask=step < 0, type=pa.int64()),
            text["context"],
            text["inputs"],
            pc.take(pa.array(list(LABELS)), world["predicted"]),
            pa.array(world["score"], type=pa.float64()),
            text["probabilities"],
            pc.take(pa.array(texts), world["text_code"]),
        ],
        schema=contract_schema(RAW_TABLES["inference_log"]),
    )
    return _write_daily(out_dir / "inference_log", table, world["logged"], start_us)


# --------------------------------------------------------------------------------------------
# Feedback
# --------------------------------------------------------------------------------------------

_EVENT_FIELDS = ("row", "inf", "type", "vcat", "vnum", "occ", "rec", "src", "client", "schema")


def _events(
    rng: np.random.Generator,
    world: dict[str, Any],
    rows: np.ndarray,
    event_type: int,
    occ: np.ndarray,
    rec: np.ndarray,
    *,
    vcat: np.ndarray | None = None,
    vnum: np.ndarray | None = None,
    source: tuple[int, int] | None = None,
) -> dict[str, np.ndarray]:
    """One block of events of a type, as column arrays (value as label code or number).

    ``source`` = (source code, client code); without it the subject's device decides (web client
    or mobile app).
    """
    size = len(rows)
    if source is None:
        device = world["context"]["device"][rows]  # 0 web, 1 ios, 2 android
        src = np.where(device == 0, 2, 3).astype(np.int8)
        client = (device + 2).astype(np.int8)
    else:
        src = np.full(size, source[0], np.int8)
        client = np.full(size, source[1], np.int8)
    return {
        "row": rows.astype(np.int64),
        "inf": rows.astype(np.int64) + 1,
        "type": np.full(size, event_type, np.int8),
        "vcat": (vcat if vcat is not None else np.full(size, -1)).astype(np.int8),
        "vnum": (vnum if vnum is not None else np.zeros(size)).astype(np.float64),
        "occ": occ.astype(np.int64),
        "rec": rec.astype(np.int64),
        "src": src,
        "client": client,
        "schema": (rng.random(size) < SCHEMA_VERSION_1_1_SHARE).astype(np.int8),
    }


def _concat(blocks: Sequence[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {field: np.concatenate([block[field] for block in blocks]) for field in blocks[0]}


def _take(block: dict[str, np.ndarray], index: np.ndarray) -> dict[str, np.ndarray]:
    return {field: values[index] for field, values in block.items()}


def _keep(block: dict[str, np.ndarray], end_us: int) -> dict[str, np.ndarray]:
    """Only events received before the end of the history are written."""
    return _take(block, np.flatnonzero(block["rec"] < end_us))


def _by_correct(correct: np.ndarray, values: dict[str, float]) -> np.ndarray:
    return np.where(correct, values["correct"], values["wrong"])


def _feedback(
    rng: np.random.Generator, world: dict[str, Any], start_us: int, end_us: int
) -> dict[str, Any]:
    """Draw valid feedback, retractions and the injected bad rows; number the events.

    Labels carry the true label, except for the ~3% that later get a correction: those labels are
    wrong and the correction carries the true label (what applying corrections should recover).
    Event ids ("fe-" + 9 digits) ascend with received_at; a duplicate re-uses its original's id.
    """
    n = world["n"]
    logged = world["logged"]
    correct = world["correct"]
    y_true = world["y_true"]

    def chosen(rate: float) -> np.ndarray:
        return np.flatnonzero(rng.random(n) < rate)

    # Labels (ground truth, 0-10 days late); a few are wrong and later corrected.
    rows = chosen(FEEDBACK_RATES["label"])
    delay = _uniform_us(
        rng, LABEL_DELAY_DAYS[0] * US_PER_DAY, LABEL_DELAY_DAYS[1] * US_PER_DAY, len(rows)
    )
    label_rec = logged[rows] + delay
    label_occ = label_rec - np.minimum(delay, _uniform_us(rng, 0, 2 * US_PER_HOUR, len(rows)))
    corrected = rng.random(len(rows)) < FEEDBACK_RATES["correction"]
    label_value = np.where(
        corrected, (y_true[rows] + 1 + rng.integers(0, 2, len(rows))) % 3, y_true[rows]
    )
    labels = _events(
        rng, world, rows, T_LABEL, label_occ, label_rec, vcat=label_value, source=(0, 0)
    )
    c_rows = rows[corrected]
    c_rec = label_rec[corrected] + _uniform_us(
        rng,
        CORRECTION_DELAY_DAYS[0] * US_PER_DAY,
        CORRECTION_DELAY_DAYS[1] * US_PER_DAY,
        len(c_rows),
    )
    c_occ = c_rec - _uniform_us(rng, 0, US_PER_HOUR, len(c_rows))
    corrections = _events(
        rng, world, c_rows, T_CORRECTION, c_occ, c_rec, vcat=y_true[c_rows], source=(1, 1)
    )

    def timed(
        rows: np.ndarray, lag: tuple[float, float], transit: tuple[float, float]
    ) -> tuple[np.ndarray, np.ndarray]:
        """occurred_at = logged_at + lag, received_at = occurred_at + transit (uniform, us)."""
        occ = logged[rows] + _uniform_us(rng, lag[0], lag[1], len(rows))
        return occ, occ + _uniform_us(rng, transit[0], transit[1], len(rows))

    # Explicit feedback.
    rows = chosen(FEEDBACK_RATES["rating"])
    occ, rec = timed(rows, (US_PER_MINUTE, 6 * US_PER_HOUR), (0, 10 * US_PER_MINUTE))
    rating = (
        np.where(
            correct[rows],
            _pick(rng, RATING_PROBS["correct"], len(rows)),
            _pick(rng, RATING_PROBS["wrong"], len(rows)),
        )
        + 1
    )
    ratings = _events(rng, world, rows, T_RATING, occ, rec, vnum=rating)
    rows = chosen(FEEDBACK_RATES["thumbs"])
    occ, rec = timed(rows, (10 * US_PER_SECOND, US_PER_HOUR), (0, 10 * US_PER_MINUTE))
    up = rng.random(len(rows)) < _by_correct(correct[rows], P_THUMBS_UP)
    thumbs = _events(rng, world, rows, T_THUMBS, occ, rec, vnum=np.where(up, 1.0, -1.0))

    # Implicit feedback.
    rows = chosen(FEEDBACK_RATES["click"])
    occ, rec = timed(rows, (US_PER_SECOND, 5 * US_PER_MINUTE), (0, 2 * US_PER_MINUTE))
    clicked = rng.random(len(rows)) < _by_correct(correct[rows], P_CLICK)
    clicks = _events(rng, world, rows, T_CLICK, occ, rec, vnum=clicked.astype(np.float64))
    rows = chosen(FEEDBACK_RATES["dwell_seconds"])
    occ, rec = timed(rows, (5 * US_PER_SECOND, 30 * US_PER_MINUTE), (0, 2 * US_PER_MINUTE))
    dwell = _clean(np.minimum(rng.lognormal(np.where(correct[rows], 3.5, 2.8), 1.0), 86_400.0), 1)
    dwells = _events(rng, world, rows, T_DWELL, occ, rec, vnum=dwell)
    rows = chosen(FEEDBACK_RATES["conversion"])
    occ, rec = timed(rows, (US_PER_MINUTE, 2 * US_PER_DAY), (0, 10 * US_PER_MINUTE))
    converted = rng.random(len(rows)) < _by_correct(correct[rows], P_CONVERSION)
    conversions = _events(
        rng, world, rows, T_CONVERSION, occ, rec, vnum=converted.astype(np.float64)
    )

    # Rewards: every session step.
    rows = np.flatnonzero(world["session"] > 0)
    occ, rec = timed(rows, (US_PER_SECOND, 30 * US_PER_SECOND), (0, 5 * US_PER_SECOND))
    reward = _clean(
        np.clip(rng.normal(_by_correct(correct[rows], REWARD_MEAN), REWARD_SD), -1.0, 1.0), 3
    )
    rewards = _events(rng, world, rows, T_REWARD, occ, rec, vnum=reward, source=(4, 5))

    valid = _concat(
        [
            _keep(block, end_us)
            for block in (
                labels,
                corrections,
                ratings,
                thumbs,
                clicks,
                dwells,
                conversions,
                rewards,
            )
        ]
    )
    valid_order = np.lexsort((valid["type"], valid["row"], valid["rec"]))
    valid = _take(valid, valid_order)

    # Retractions of ~1% of ratings and thumbs: they point at the withdrawn event.
    candidates = np.flatnonzero(np.isin(valid["type"], (T_RATING, T_THUMBS)))
    targets = candidates[rng.random(len(candidates)) < FEEDBACK_RATES["retraction"]]
    r_occ = valid["rec"][targets] + _uniform_us(rng, US_PER_MINUTE, US_PER_DAY, len(targets))
    r_rec = r_occ + _uniform_us(rng, 0, 5 * US_PER_MINUTE, len(targets))
    retractions = _events(rng, world, valid["row"][targets], T_RETRACTION, r_occ, r_rec)
    retractions["src"] = valid["src"][targets]
    retractions["client"] = valid["client"][targets]
    kept = np.flatnonzero(r_rec < end_us)
    retractions = _take(retractions, kept)
    retraction_targets = targets[kept]

    bad, bad_kind, duplicate_of = _bad_feedback(
        rng, world, valid, len(valid["row"]) + len(kept), start_us, end_us
    )

    # Number every event with its own id in received order; duplicates reuse their template's.
    fresh = _concat([valid, retractions, _take(bad, np.flatnonzero(duplicate_of < 0))])
    fresh_kind = np.concatenate(
        [
            np.full(len(valid["row"]) + len(kept), -1, np.int8),
            bad_kind[duplicate_of < 0],
        ]
    )
    order = np.lexsort((rng.random(len(fresh["row"])), fresh["rec"]))
    number = np.empty(len(order), np.int64)
    number[order] = np.arange(1, len(order) + 1)
    vref = np.full(len(order), -1, np.int64)
    n_valid = len(valid["row"])
    vref[n_valid : n_valid + len(kept)] = number[retraction_targets]
    duplicates = _take(bad, np.flatnonzero(duplicate_of >= 0))
    events = _concat([fresh, duplicates])
    events["num"] = np.concatenate([number, number[duplicate_of[duplicate_of >= 0]]])
    events["vref"] = np.concatenate([vref, np.full(len(duplicates["row"]), -1, np.int64)])
    events["bad"] = np.concatenate([fresh_kind, bad_kind[duplicate_of >= 0]])
    events["trunc"] = np.concatenate(
        [np.zeros(len(order), np.int64), np.zeros(len(duplicates["row"]), np.int64)]
    )
    malformed = events["bad"] == list(BAD_FEEDBACK_RATES).index("malformed_payload")
    events["trunc"][malformed] = rng.integers(1, 12, int(malformed.sum()))
    write_order = np.lexsort((events["num"], events["rec"]))
    events = _take(events, write_order)

    valid_mask = events["bad"] < 0
    valid_counts = {
        name: int(np.sum(valid_mask & (events["type"] == code)))
        for code, name in enumerate(EVENT_TYPES[:T_UNKNOWN])
    }
    bad_counts = {
        kind: int(np.sum(events["bad"] == code)) for code, kind in enumerate(BAD_FEEDBACK_RATES)
    }
    label_rows = valid_mask & (events["type"] == T_LABEL)
    label_delay = (events["rec"][label_rows] - logged[events["row"][label_rows]]) / US_PER_DAY
    return {
        "events": events,
        "valid_counts": valid_counts,
        "bad_counts": bad_counts,
        "labelled_inferences": len(np.unique(events["row"][label_rows])),
        "label_delay_observed": (
            (float(label_delay.min()), float(label_delay.max())) if len(label_delay) else None
        ),
    }


def _bad_feedback(
    rng: np.random.Generator,
    world: dict[str, Any],
    valid: dict[str, np.ndarray],
    n_valid: int,
    start_us: int,
    end_us: int,
) -> tuple[dict[str, np.ndarray], np.ndarray, np.ndarray]:
    """Copies of valid events with exactly one defect each, at BAD_FEEDBACK_RATES.

    Returns (events, kind code per event, template index for duplicates else -1).
    """
    logged = world["logged"]
    template_logged = logged[valid["row"]]
    pools: dict[str, np.ndarray] = {
        "malformed_payload": np.arange(len(valid["row"])),
        "unknown_inference_id": np.arange(len(valid["row"])),
        "duplicate_event_id": np.flatnonzero(valid["rec"] < end_us - 2 * US_PER_MINUTE),
        "value_out_of_range": np.flatnonzero(
            np.isin(valid["type"], (T_RATING, T_THUMBS, T_CLICK, T_DWELL, T_REWARD))
        ),
        "occurred_before_inference": np.flatnonzero(template_logged >= start_us + 13 * US_PER_HOUR),
        "occurred_in_future": np.flatnonzero(valid["rec"] < end_us - 3 * US_PER_HOUR),
        "unknown_event_type": np.arange(len(valid["row"])),
        "unsupported_schema_version": np.arange(len(valid["row"])),
    }
    blocks: list[dict[str, np.ndarray]] = []
    kinds: list[np.ndarray] = []
    templates: list[np.ndarray] = []
    for code, (kind, rate) in enumerate(BAD_FEEDBACK_RATES.items()):
        pool = pools[kind]
        count = min(round(rate * n_valid), len(pool))
        index = np.sort(rng.choice(pool, size=count, replace=False))
        block = _take(valid, index)
        block["schema"] = block["schema"].copy()
        if kind == "unknown_inference_id":
            block["inf"] = UNKNOWN_INFERENCE_BASE + np.arange(1, count + 1, dtype=np.int64)
        elif kind == "duplicate_event_id":
            room = np.minimum(2 * US_PER_DAY, end_us - block["rec"] - US_PER_SECOND)
            block["rec"] = block["rec"] + _uniform_us(rng, US_PER_MINUTE, room, count)
        elif kind == "value_out_of_range":
            out_of_range = {
                T_RATING: rng.choice([0.0, 7.0], size=count),
                T_THUMBS: np.zeros(count),
                T_CLICK: np.full(count, 2.0),
                T_DWELL: np.full(count, -5.0),
                T_REWARD: np.full(count, 3.5),
            }
            vnum = block["vnum"].copy()
            for event_type, values in out_of_range.items():
                hit = block["type"] == event_type
                vnum[hit] = values[hit]
            block["vnum"] = vnum
        elif kind == "occurred_before_inference":
            block["occ"] = logged[block["row"]] - _uniform_us(
                rng, US_PER_HOUR, 12 * US_PER_HOUR, count
            )
        elif kind == "occurred_in_future":
            room = np.minimum(2 * US_PER_DAY, end_us - block["rec"] - US_PER_MINUTE)
            block["occ"] = block["rec"] + _uniform_us(rng, 2 * US_PER_HOUR, room, count)
        elif kind == "unknown_event_type":
            block["type"] = np.full(count, T_UNKNOWN, np.int8)
            block["vcat"] = np.full(count, -1, np.int8)
            block["vnum"] = np.ones(count)
        elif kind == "unsupported_schema_version":
            block["schema"] = rng.integers(2, 4, count).astype(np.int8)
        blocks.append(block)
        kinds.append(np.full(count, code, np.int8))
        templates.append(index if kind == "duplicate_event_id" else np.full(count, -1, np.int64))
    return _concat(blocks), np.concatenate(kinds), np.concatenate(templates)


def _write_feedback(
    con: duckdb.DuckDBPyConnection, out_dir: Path, feedback: dict[str, Any], start_us: int
) -> tuple[int, int]:
    """Build ids, value text and payload JSON in DuckDB; write feedback_events per received day."""
    events = feedback["events"]
    numeric = pa.table(
        {
            field: events[field]
            for field in (
                "num",
                "inf",
                "type",
                "vcat",
                "vnum",
                "vref",
                "src",
                "client",
                "schema",
                "trunc",
            )
        }
    )
    labels = _sql_list(list(LABELS))
    types = _sql_list(list(EVENT_TYPES))
    value = f"""
        case
            when type in ({T_LABEL}, {T_CORRECTION}) then {labels}[vcat + 1]
            when type = {T_DWELL} then printf('%.1f', vnum)
            when type = {T_REWARD} then printf('%.3f', vnum)
            when type = {T_RETRACTION} then printf('fe-%09d', vref)
            else cast(cast(vnum as bigint) as varchar)
        end
    """
    sql = f"""
        with base as (
            select
                num, trunc,
                printf('fe-%09d', num) as event_id,
                printf('inf-%09d', inf) as inference_id,
                {types}[type + 1] as event_type,
                {value} as value,
                {_sql_list(list(SOURCES))}[src + 1] as source,
                {_sql_list(list(CLIENTS))}[client + 1] as client,
                {_sql_list(list(SCHEMA_VERSIONS))}[schema + 1] as schema_version
            from numeric
        )
        select
            event_id, inference_id, event_type, value,
            case when trunc > 0 then left(payload, length(payload) - trunc) else payload end
                as payload,
            source, schema_version
        from (
            select *, to_json(struct_pack(
                event_type := event_type, value := value, client := client))::varchar as payload
            from base
        )
    """
    con.register("numeric", numeric)
    text = con.sql(sql).to_arrow_table()
    con.unregister("numeric")
    table = pa.Table.from_arrays(
        [
            text["event_id"],
            text["inference_id"],
            text["event_type"],
            text["value"],
            text["payload"],
            _timestamps(events["occ"]),
            _timestamps(events["rec"]),
            text["source"],
            text["schema_version"],
        ],
        schema=contract_schema(RAW_TABLES["feedback_events"]),
    )
    return _write_daily(out_dir / "feedback_events", table, events["rec"], start_us)


# --------------------------------------------------------------------------------------------
# Preferences, latent quality, deployments
# --------------------------------------------------------------------------------------------


def _preferences(rng: np.random.Generator, world: dict[str, Any], end_us: int) -> dict[str, Any]:
    """Judge each pair 1-3 times with a Bradley–Terry model, position bias and ties."""
    first, second = world["pair_first"], world["pair_second"]
    n_pairs = len(first)
    judgments = _pick(rng, JUDGMENTS_PER_PAIR_PROBS, n_pairs).astype(np.int64) + 1
    pair = np.repeat(np.arange(n_pairs), judgments)
    k = np.arange(len(pair)) - np.repeat(np.cumsum(judgments) - judgments, judgments)
    pool = N_HUMAN_ANNOTATORS + N_AI_JUDGES
    base = rng.integers(0, pool, n_pairs)[pair]
    stride = rng.integers(1, pool, n_pairs)[pair]
    annotator = (base + k * stride) % pool  # distinct per pair because pool is prime
    swap = rng.random(len(pair)) < 0.5
    a = np.where(swap, second[pair], first[pair])
    b = np.where(swap, first[pair], second[pair])
    quality = world["quality"]
    diff = quality[a] - quality[b]
    tie = (np.abs(diff) < TIE_THRESHOLD) & (rng.random(len(pair)) < TIE_PROBABILITY)
    a_wins = rng.random(len(pair)) < 1.0 / (1.0 + np.exp(-(diff + POSITION_BIAS)))
    preferred = np.where(tie, 2, np.where(a_wins, 0, 1)).astype(np.int8)
    occ = world["logged"][second[pair]] + _uniform_us(
        rng, 5 * US_PER_MINUTE, 2 * US_PER_DAY, len(pair)
    )
    rec = occ + _uniform_us(rng, 0, US_PER_DAY, len(pair))
    keep = np.flatnonzero(rec < end_us)
    order = keep[np.lexsort((k[keep], pair[keep], rec[keep]))]
    return {
        "pair": pair[order],
        "context_number": pair[order] + 1,
        "a": a[order],
        "b": b[order],
        "preferred": preferred[order],
        "annotator": annotator[order],
        "occ": occ[order],
        "rec": rec[order],
    }


def _write_preferences(
    con: duckdb.DuckDBPyConnection, out_dir: Path, prefs: dict[str, Any], start_us: int
) -> tuple[int, int]:
    """Write preference_events per received day (ids in received order)."""
    size = len(prefs["a"])
    numeric = pa.table(
        {
            "num": np.arange(1, size + 1, dtype=np.int64),
            "context_number": prefs["context_number"],
            "a": prefs["a"] + 1,
            "b": prefs["b"] + 1,
            "annotator": prefs["annotator"],
        }
    )
    sql = f"""
        select
            printf('pref-%08d', num) as preference_id,
            printf('ctx-%07d', context_number) as context_id,
            printf('inf-%09d', a) as inference_id_a,
            printf('inf-%09d', b) as inference_id_b,
            case when annotator < {N_HUMAN_ANNOTATORS}
                then printf('ann-%02d', annotator + 1)
                else printf('ai-judge-%d', annotator - {N_HUMAN_ANNOTATORS} + 1)
            end as annotator_id,
            case when annotator < {N_HUMAN_ANNOTATORS} then 'human' else 'ai_judge' end as source
        from numeric
    """
    con.register("numeric", numeric)
    text = con.sql(sql).to_arrow_table()
    con.unregister("numeric")
    table = pa.Table.from_arrays(
        [
            text["preference_id"],
            text["context_id"],
            text["inference_id_a"],
            text["inference_id_b"],
            pc.take(pa.array(["a", "b", "tie"]), prefs["preferred"]),
            text["annotator_id"],
            text["source"],
            _timestamps(prefs["occ"]),
            _timestamps(prefs["rec"]),
        ],
        schema=contract_schema(RAW_TABLES["preference_events"]),
    )
    return _write_daily(out_dir / "preference_events", table, prefs["rec"], start_us)


def _write_latent_quality(out_dir: Path, world: dict[str, Any], prefs: dict[str, Any]) -> int:
    """latent_quality.parquet: the hidden q of every inference in a written preference pair."""
    rows = np.unique(np.concatenate([prefs["a"], prefs["b"]]))
    table = pa.table(
        {
            "inference_id": pc.binary_join_element_wise(
                "inf-", pc.utf8_lpad(pa.array((rows + 1).astype(str)), 9, "0"), ""
            ),
            "latent_quality": pa.array(world["quality"][rows], type=pa.float64()),
        }
    )
    pq.write_table(table, out_dir / "latent_quality.parquet", **PARQUET_OPTIONS)
    return len(rows)


def _write_deployments(out_dir: Path, start_us: int, v2_us: int) -> list[dict[str, Any]]:
    """model_deployments.parquet: v1 from 30 days before the history until v2 takes over."""
    v1_us = start_us - 30 * US_PER_DAY
    deployments = [
        {
            "model_name": MODEL_NAME,
            "model_version": "v1",
            "deployed_at": v1_us,
            "retired_at": v2_us,
            "training_run_id": "tr-demo-v1",
        },
        {
            "model_name": MODEL_NAME,
            "model_version": "v2",
            "deployed_at": v2_us,
            "retired_at": None,
            "training_run_id": "tr-demo-v2",
        },
    ]
    schema = contract_schema(RAW_TABLES["model_deployments"])
    table = pa.Table.from_arrays(
        [
            pa.array([d["model_name"] for d in deployments]),
            pa.array([d["model_version"] for d in deployments]),
            pa.array([d["deployed_at"] for d in deployments], type=pa.timestamp("us")),
            pa.array([d["retired_at"] for d in deployments], type=pa.timestamp("us")),
            pa.array([d["training_run_id"] for d in deployments]),
        ],
        schema=schema,
    )
    folder = out_dir / "model_deployments"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "model_deployments.parquet", **PARQUET_OPTIONS)
    return [
        {
            **d,
            "deployed_at": _iso(d["deployed_at"]),
            "retired_at": None if d["retired_at"] is None else _iso(d["retired_at"]),
        }
        for d in deployments
    ]


# --------------------------------------------------------------------------------------------
# Truth
# --------------------------------------------------------------------------------------------


def _rate(mask: np.ndarray) -> float | None:
    return round(float(mask.mean()), 6) if mask.size else None


def _truth(
    *,
    seed: int,
    days: int,
    inferences_per_day: int,
    start_date: date,
    covariate_day: int,
    concept_day: int,
    world: dict[str, Any],
    feedback: dict[str, Any],
    prefs: dict[str, Any],
    latent_rows: int,
    deployments: list[dict[str, Any]],
) -> dict[str, Any]:
    """Everything planted in the world, JSON-serialisable (dates as YYYY-MM-DD)."""
    end_date = start_date + timedelta(days=days)
    covariate_date = (start_date + timedelta(days=covariate_day)).isoformat()
    concept_date = (start_date + timedelta(days=concept_day)).isoformat()
    day_counts = world["day_counts"]
    weekday = np.array([(start_date + timedelta(days=d)).weekday() < 5 for d in range(days)])
    realised_ratio = (
        round(float(day_counts[weekday].mean() / day_counts[~weekday].mean()), 6)
        if weekday.any() and (~weekday).any()
        else None
    )
    version, correct, in_biased = world["version"], world["correct"], world["in_biased"]
    latam = world["context"]["region"] == list(CONTEXT_SHARES["region"]).index("latam")
    after_concept = world["day"] >= concept_day
    events = feedback["events"]
    n_events = len(events["num"])
    n_valid = int(np.sum(events["bad"] < 0))
    return {
        "seed": seed,
        "days": days,
        "inferences_per_day": inferences_per_day,
        "start_date": start_date.isoformat(),
        "end_date": end_date.isoformat(),
        "model_name": MODEL_NAME,
        "labels": list(LABELS),
        "covariate_drift": [
            {
                "feature": "message_length",
                "kind": "numeric",
                "start_date": covariate_date,
                "multiplier": MESSAGE_LENGTH_SHIFT,
            },
            {
                "feature": "channel",
                "kind": "categorical",
                "start_date": covariate_date,
                "shares_before": CHANNEL_SHARES_BEFORE,
                "shares_after": CHANNEL_SHARES_AFTER,
            },
        ],
        "concept_drift": [
            {
                "segment_attribute": CONCEPT_DRIFT_ATTRIBUTE,
                "segment_value": CONCEPT_DRIFT_VALUE,
                "start_date": concept_date,
                "rotated_share": CONCEPT_DRIFT_ROTATE_SHARE,
            },
        ],
        "biased_segment": {
            "attribute": BIASED_ATTRIBUTE,
            "value": BIASED_VALUE,
            "accuracy_gap": BIASED_ACCURACY_GAP,
        },
        "deployments": deployments,
        "bad_feedback": feedback["bad_counts"],
        "bad_feedback_rates": BAD_FEEDBACK_RATES,
        "counts": {
            "inference_log": world["n"],
            "feedback_events": n_events,
            "feedback_events_valid": n_valid,
            "feedback_events_bad": n_events - n_valid,
            "preference_events": len(prefs["a"]),
            "model_deployments": len(deployments),
            "latent_quality": latent_rows,
            "sessions": world["n_sessions"],
            "preference_contexts": world["n_pairs"],
            "preference_contexts_judged": len(np.unique(prefs["pair"])),
            "valid_events_by_type": feedback["valid_counts"],
        },
        "context_shares": CONTEXT_SHARES,
        "feedback_rates": FEEDBACK_RATES,
        "label_coverage": FEEDBACK_RATES["label"],
        "label_coverage_written": round(feedback["labelled_inferences"] / world["n"], 6),
        "label_delay_days": {"min": LABEL_DELAY_DAYS[0], "max": LABEL_DELAY_DAYS[1]},
        "implicit_agreement": {
            "click": {
                "p_click_given_correct": P_CLICK["correct"],
                "p_click_given_wrong": P_CLICK["wrong"],
            },
            "thumbs": {
                "p_up_given_correct": P_THUMBS_UP["correct"],
                "p_up_given_wrong": P_THUMBS_UP["wrong"],
            },
            "conversion": {
                "p_convert_given_correct": P_CONVERSION["correct"],
                "p_convert_given_wrong": P_CONVERSION["wrong"],
            },
        },
        "accuracy": {
            "v1": ACCURACY["v1"],
            "v2": ACCURACY["v2"],
            "biased_segment": {v: round(ACCURACY[v] - BIASED_ACCURACY_GAP, 6) for v in ACCURACY},
        },
        "accuracy_realised": {
            "v1": _rate(correct[version == 0]),
            "v2": _rate(correct[version == 1]),
            "biased_segment": {
                "v1": _rate(correct[(version == 0) & in_biased]),
                "v2": _rate(correct[(version == 1) & in_biased]),
            },
            "concept_drift_segment_after_start": _rate(correct[latam & after_concept]),
            "concept_drift_segment_before_start": _rate(correct[latam & ~after_concept]),
        },
        "weekday_volume_ratio": WEEKDAY_VOLUME_RATIO,
        "weekday_volume_ratio_realised": realised_ratio,
        "sessions": {
            "share": SESSION_SHARE,
            "steps": list(SESSION_STEPS),
            "reward_mean": REWARD_MEAN,
            "reward_sd": REWARD_SD,
        },
        "preference": {
            "ticket_share": PAIR_TICKET_SHARE,
            "quality_weights": QUALITY_WEIGHTS,
            "quality_features": QUALITY_FEATURES,
            "quality_noise_sd": QUALITY_NOISE_SD,
            "tie_threshold": TIE_THRESHOLD,
            "tie_probability": TIE_PROBABILITY,
            "position_bias": POSITION_BIAS,
            "annotators": {"human": N_HUMAN_ANNOTATORS, "ai_judge": N_AI_JUDGES},
            "shadow_pair_share": SHADOW_PAIR_SHARE,
            "version_quality_offset": VERSION_QUALITY_OFFSET,
            # best first: the order the model-version leaderboard should recover
            "version_order": sorted(
                VERSION_QUALITY_OFFSET, key=lambda v: VERSION_QUALITY_OFFSET[v], reverse=True
            ),
        },
    }
