"""What the demo world's model serves in a closed loop: each day's predictions come from the
version the registry has deployed when that day starts.

The generator draws every day up front, with the simulated v1 as the model (its quality is
planted: right about the base label with a fixed accuracy). In a closed loop the loop driver
(``flywheel demo --closed-loop``) hands each day to :func:`serve_day` before ingesting it: once
the flywheel has deployed a model of its own, that day's ``inference_log`` file is served again
by it, from the inputs the rows carry (its ``predicted_label``, ``predicted_score``,
``probabilities`` and ``model_version`` replace the drawn ones). Until then the drawn file is
served as it is.

What follows the served model and what does not:

* Labels (the ground truth, ``label`` and ``correction`` events) never depend on the model, so
  accuracy, the performance timeline and the KPIs follow the served version exactly.
* Implicit and explicit signals (clicks, thumbs, ratings, rewards, dwell, conversions), the
  reply texts and the preference judgments were drawn against the simulated v1's correctness
  and stay as drawn: they are open-loop.

The served file is written next to the drawn one (``served/inference_log/<day>.parquet``) so the
drawn world stays as generated and a re-run serves the same bytes again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from feedback_flywheel.demo.constants import LABELS
from feedback_flywheel.demo.writers import text_columns, write_parquet
from feedback_flywheel.retraining import trainer
from feedback_flywheel.warehouse.catalogue import FCT_PERFORMANCE_DAILY

SERVED_FOLDER = "served"


def served_path(out_dir: Path, day: str) -> Path:
    """Where the served ``inference_log`` file of ``day`` (YYYY-MM-DD) is written."""
    return Path(out_dir) / SERVED_FOLDER / "inference_log" / f"{day}.parquet"


def serve_day(
    drawn: Path, served: Path, version: str | None, parameters: Mapping[str, Any] | None
) -> int:
    """Write the ``inference_log`` file ``drawn`` as ``served`` would log it: as drawn when no
    model of the flywheel's is deployed (``parameters`` None), else with ``version``'s
    predictions. A row drawn without probabilities keeps none. Returns the rows written."""
    table = pq.read_table(drawn)
    if parameters is not None:
        if version is None:
            raise ValueError("serving a trained model needs its version")
        table = _predict(table, version, parameters)
    served.parent.mkdir(parents=True, exist_ok=True)
    write_parquet(table, served)
    return table.num_rows


def _predict(table: pa.Table, version: str, parameters: Mapping[str, Any]) -> pa.Table:
    """``table`` with the predictions of the model ``parameters`` describe (a built-in
    training run's ``parameters_json``), rounded as the generator rounds them."""
    classes = list(parameters["classes"])
    missing = [label for label in LABELS if label not in classes]
    if missing:
        raise ValueError(f"model {version} cannot predict {', '.join(missing)}")
    probabilities = trainer.rescore(parameters, table.column("inputs").to_pylist())
    probabilities = np.round(probabilities[:, [classes.index(label) for label in LABELS]], 4)
    best = probabilities.argmax(axis=1)
    numeric = pa.table(
        {
            **{f"p{i}": probabilities[:, i] for i in range(len(LABELS))},
            "drawn_null": pc.is_null(table.column("probabilities")),
        }
    )
    fields = ", ".join(f"{label} := p{i}" for i, label in enumerate(LABELS))
    con = duckdb.connect()
    try:
        text = text_columns(
            con,
            numeric,
            "select case when drawn_null then null "
            f"else to_json(struct_pack({fields}))::varchar end as probabilities from numeric",
        )
    finally:
        con.close()
    replaced = {
        "model_version": pa.array([version] * table.num_rows, pa.string()),
        "predicted_label": pc.take(pa.array(list(LABELS)), pa.array(best)),
        "predicted_score": pa.array(probabilities[np.arange(len(best)), best], pa.float64()),
        "probabilities": text.column("probabilities"),
    }
    for name, values in replaced.items():
        position = table.schema.get_field_index(name)
        table = table.set_column(position, table.schema.field(name), values)
    return table


def daily_accuracy(
    con: duckdb.DuckDBPyConnection, model_name: str, attribute: str, value: str, since: date
) -> list[dict[str, Any]]:
    """Per served day from ``since``: the version(s) that served it and their realised accuracy
    overall and in one segment (the labels received so far), from the daily KPI mart."""
    rows = con.execute(
        f"""
        select
            served_date,
            string_agg(distinct model_version, ', ' order by model_version) as versions,
            sum(correct_count) filter (where segment_attribute = '__all__')
                / nullif(sum(labelled_count) filter (where segment_attribute = '__all__'), 0),
            sum(correct_count) filter (where segment_attribute = ? and segment_value = ?)
                / nullif(sum(labelled_count) filter (
                    where segment_attribute = ? and segment_value = ?), 0)
        from {FCT_PERFORMANCE_DAILY}
        where model_name = ? and served_date >= ?
        group by served_date
        order by served_date
        """,
        [attribute, value, attribute, value, model_name, since],
    ).fetchall()
    return [
        {"day": str(day), "versions": versions, "accuracy": accuracy, "segment": segment}
        for day, versions, accuracy, segment in rows
    ]
