"""The demo world: a deterministic history of logged predictions and feedback with known truth.

``generate`` writes raw files that satisfy :mod:`feedback_flywheel.warehouse.contract` for one
classifier, ``support_router``, which routes support tickets to ``billing`` / ``technical`` /
``account`` and writes a suggested reply. Into that history it plants things the warehouse is
supposed to find: a better second model version, covariate drift, concept drift in one segment, a
segment with worse accuracy, bad feedback of eight kinds at known counts, RL-style sessions with
rewards, and preference pairs judged by a Bradley–Terry model on a hidden quality. Everything that
was planted is returned (and written to ``truth.json``) so tests and demos can check the warehouse
recovers it.

Why it is built the way it is:

* Files are partitioned by each table's arrival time (``logged_at`` / ``received_at``) per UTC
  day, so a daily loader that picks up "today's file" sees exactly what had arrived by then.
* Same seed and arguments give byte-identical files: one seeded numpy generator drives every draw,
  no wall-clock value is used, and Parquet is written by pyarrow with fixed options. The steps
  draw from that generator in a fixed order, so reordering steps changes the world.
* Value formats (feedback_events.value): labels as label names, rating "1".."5", thumbs "-1"/"1",
  click and conversion "0"/"1", dwell_seconds with one decimal ("51.9"), reward with three
  ("-0.117"), retraction the withdrawn event_id. Payloads are {"event_type", "value", "client"}
  with the value as a JSON string.
* It is vectorised: rows are drawn as numpy arrays, and the JSON / id text columns are built by
  DuckDB from Arrow tables (``to_json(struct_pack(...))``, ``printf``), never row by row in Python.
  One million inferences take seconds, not minutes.

The package, by concern: :mod:`~feedback_flywheel.demo.constants` (the planted parameters),
:mod:`~feedback_flywheel.demo.schedule` and :mod:`~feedback_flywheel.demo.inferences` (what was
served, when), :mod:`~feedback_flywheel.demo.replies` (reply texts and their latent quality),
:mod:`~feedback_flywheel.demo.feedback` and :mod:`~feedback_flywheel.demo.bad_feedback`,
:mod:`~feedback_flywheel.demo.preferences`, :mod:`~feedback_flywheel.demo.deployments`, the
per-table writers (:mod:`~feedback_flywheel.demo.inference_log`,
:mod:`~feedback_flywheel.demo.feedback_log`) over :mod:`~feedback_flywheel.demo.writers`, and
:mod:`~feedback_flywheel.demo.truth`.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from feedback_flywheel.demo.constants import BAD_FEEDBACK_RATES, LABELS, MODEL_NAME
from feedback_flywheel.demo.deployments import write_deployments
from feedback_flywheel.demo.feedback import BREAKABLE_SIGNALS, draw_feedback
from feedback_flywheel.demo.feedback_log import write_feedback
from feedback_flywheel.demo.inference_log import write_inference_log
from feedback_flywheel.demo.inferences import draw_inferences
from feedback_flywheel.demo.preferences import (
    draw_preferences,
    write_latent_quality,
    write_preferences,
)
from feedback_flywheel.demo.schedule import Timeline
from feedback_flywheel.demo.truth import build_truth
from feedback_flywheel.demo.writers import clear_outputs, contract_schema

# Re-exported: callers and tests import these from here.
__all__ = ["BAD_FEEDBACK_RATES", "LABELS", "MODEL_NAME", "Progress", "contract_schema", "generate"]

Progress = Callable[[str], None]


def generate(
    out_dir: Path,
    *,
    seed: int = 7,
    days: int = 60,
    inferences_per_day: int = 2000,
    start_date: date = date(2026, 1, 1),
    closed_loop: bool = False,
    broken_tracking: tuple[str, int] | None = None,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Write the demo world under ``out_dir`` and return its truth (also in ``truth.json``).

    ``inferences_per_day`` is the average daily volume; weekdays get more than weekends
    (``WEEKDAY_VOLUME_RATIO``). Only events received before ``start_date + days`` are written,
    and every count in the truth counts exactly what was written.

    ``closed_loop`` writes the world a closed loop serves (:mod:`feedback_flywheel.demo.serving`):
    no simulated v2 (v1 serves until the flywheel deploys a model of its own), the region among
    the model's inputs, and a concept change a model can learn (most of the segment's labels
    become one label). It draws the same rows from the same seed otherwise.
    """
    if days < 1:
        raise ValueError(f"days must be at least 1, got {days}")
    if inferences_per_day < 20:
        raise ValueError(f"inferences_per_day must be at least 20, got {inferences_per_day}")
    if broken_tracking is not None:
        signal, day = broken_tracking
        if signal not in BREAKABLE_SIGNALS or not 0 <= day < days:
            raise ValueError(
                f"broken_tracking must be (one of {', '.join(BREAKABLE_SIGNALS)}, a day in "
                f"0..{days - 1}), got {broken_tracking!r}"
            )
    say: Progress = progress or (lambda _message: None)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    clear_outputs(out_dir)
    rng = np.random.default_rng(seed)
    timeline = Timeline.of(start_date, days, closed_loop=closed_loop)

    world = draw_inferences(rng, timeline, inferences_per_day)
    world["broken_tracking"] = broken_tracking
    say(
        f"inferences: drew {world['n']:,} rows "
        f"({world['n_sessions']:,} sessions, {world['n_pairs']:,} preference contexts)"
    )
    feedback, prefs = _draw_and_write_logs(rng, out_dir, world, timeline, say)

    latent_rows = write_latent_quality(out_dir, world, prefs)
    say(f"latent_quality: {latent_rows:,} rows")
    deployments = write_deployments(
        out_dir, timeline.start_us, None if closed_loop else timeline.v2_us
    )
    say(f"model_deployments: {len(deployments)} row(s)")

    truth = build_truth(
        seed=seed,
        inferences_per_day=inferences_per_day,
        timeline=timeline,
        world=world,
        feedback=feedback,
        prefs=prefs,
        latent_rows=latent_rows,
        deployments=deployments,
    )
    (out_dir / "truth.json").write_text(json.dumps(truth, indent=2) + "\n", encoding="utf-8")
    say(f"truth.json: written to {out_dir / 'truth.json'}")
    return truth


def _draw_and_write_logs(
    rng: np.random.Generator,
    out_dir: Path,
    world: dict[str, Any],
    timeline: Timeline,
    say: Progress,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write inference_log, then draw and write feedback_events and preference_events.

    The three share one DuckDB connection (it builds their text columns). Feedback is drawn
    before preferences: the order of draws is part of the output. Returns (feedback, prefs).
    """
    start_us, end_us = timeline.start_us, timeline.end_us
    con = duckdb.connect()
    con.execute("set enable_progress_bar = false")  # progress goes through ``progress`` only
    try:
        rows, files = write_inference_log(con, out_dir, world, start_us)
        say(f"inference_log: {rows:,} rows in {files} daily files")

        feedback = draw_feedback(rng, world, start_us, end_us)
        rows, files = write_feedback(con, out_dir, feedback, start_us)
        say(
            f"feedback_events: {rows:,} rows in {files} daily files "
            f"({sum(feedback['bad_counts'].values()):,} bad)"
        )

        prefs = draw_preferences(rng, world, end_us)
        rows, files = write_preferences(con, out_dir, prefs, start_us)
        say(f"preference_events: {rows:,} rows in {files} daily files")
    finally:
        con.close()
    return feedback, prefs
