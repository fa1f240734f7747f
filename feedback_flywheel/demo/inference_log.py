"""Write the drawn inferences as ``inference_log``, one Parquet file per logged_at day.

Ids and the JSON columns (context, inputs, probabilities) are built by DuckDB from the numeric
codes; ``response_time_s`` is left out of the inputs of the rows drawn without it, and
``context_id`` is added to the context of the rows in a preference pair. In a closed loop the
inputs also carry the ``region`` (the model may use it to learn that world's concept change).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from feedback_flywheel.demo.constants import (
    CHANNEL_SHARES_BEFORE,
    CONTEXT_SHARES,
    LABELS,
    MODEL_NAME,
    PRODUCT_SHARES,
)
from feedback_flywheel.demo.replies import text_vocabulary
from feedback_flywheel.demo.writers import (
    contract_schema,
    sql_list,
    text_columns,
    timestamps,
    write_daily,
)
from feedback_flywheel.warehouse.contract import RAW_TABLES


def write_inference_log(
    con: duckdb.DuckDBPyConnection, out_dir: Path, world: dict[str, Any], start_us: int
) -> tuple[int, int]:
    """Build the text columns in DuckDB and write inference_log per logged_at day.

    Returns (rows, files).
    """
    n = world["n"]
    texts, _ = text_vocabulary()
    step = world["step"]
    text = text_columns(con, _numeric_columns(world), _text_sql(world["closed_loop"]))
    table = pa.Table.from_arrays(
        [
            text["inference_id"],
            timestamps(world["logged"]),
            pc.take(pa.array([MODEL_NAME]), pa.array(np.zeros(n, np.int8))),
            pc.take(pa.array(["v1", "v2"]), world["version"]),
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
    return write_daily(out_dir / "inference_log", table, world["logged"], start_us)


def _numeric_columns(world: dict[str, Any]) -> pa.Table:
    """The codes and numbers the text columns are built from; -1 session / context become null."""
    session = world["session"]
    context_number = world["context_number"]
    return pa.table(
        {
            "num": np.arange(1, world["n"] + 1, dtype=np.int64),
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


def _text_sql(closed_loop: bool) -> str:
    """The DuckDB query turning :func:`_numeric_columns` into ids and JSON text."""
    ctx_lists = {name: sql_list(list(shares)) for name, shares in CONTEXT_SHARES.items()}
    context_fields = ", ".join(
        f"{name} := {ctx_lists[name]}[ctx_{name} + 1]" for name in CONTEXT_SHARES
    )
    channel = sql_list(list(CHANNEL_SHARES_BEFORE))
    product = sql_list(list(PRODUCT_SHARES))
    input_head = "account_age_days := account_age, message_length := message_length, "
    input_head += "sentiment := sentiment, prior_tickets := prior_tickets"
    input_tail = f"channel := {channel}[channel + 1], product := {product}[product + 1]"
    if closed_loop:
        input_tail += f", region := {ctx_lists['region']}[ctx_region + 1]"
    probability_fields = ", ".join(f"{label} := p{i}" for i, label in enumerate(LABELS))
    return f"""
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
