"""Write the numbered feedback events as ``feedback_events``, one Parquet file per received day.

Ids, value text and the payload JSON are built by DuckDB from the numeric codes. The value
formats are those the warehouse parses (see :mod:`feedback_flywheel.demo.world`); a malformed
payload is the valid JSON with its last ``trunc`` characters cut off.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from feedback_flywheel.demo.constants import (
    CLIENTS,
    EVENT_TYPES,
    LABELS,
    SCHEMA_VERSIONS,
    SOURCES,
    T_CORRECTION,
    T_DWELL,
    T_LABEL,
    T_RETRACTION,
    T_REWARD,
)
from feedback_flywheel.demo.writers import (
    contract_schema,
    sql_list,
    text_columns,
    timestamps,
    write_daily,
)
from feedback_flywheel.warehouse.contract import RAW_TABLES

_NUMERIC_FIELDS = ("num", "inf", "type", "vcat", "vnum", "vref", "src", "client", "schema", "trunc")


def write_feedback(
    con: duckdb.DuckDBPyConnection, out_dir: Path, feedback: dict[str, Any], start_us: int
) -> tuple[int, int]:
    """Build ids, value text and payload JSON in DuckDB; write feedback_events per received day.

    Returns (rows, files).
    """
    events = feedback["events"]
    numeric = pa.table({field: events[field] for field in _NUMERIC_FIELDS})
    text = text_columns(con, numeric, _text_sql())
    table = pa.Table.from_arrays(
        [
            text["event_id"],
            text["inference_id"],
            text["event_type"],
            text["value"],
            text["payload"],
            timestamps(events["occ"]),
            timestamps(events["rec"]),
            text["source"],
            text["schema_version"],
        ],
        schema=contract_schema(RAW_TABLES["feedback_events"]),
    )
    return write_daily(out_dir / "feedback_events", table, events["rec"], start_us)


def _text_sql() -> str:
    """The DuckDB query turning the event codes into ids, value text and payload JSON."""
    labels = sql_list(list(LABELS))
    types = sql_list(list(EVENT_TYPES))
    value = f"""
        case
            when type in ({T_LABEL}, {T_CORRECTION}) then {labels}[vcat + 1]
            when type = {T_DWELL} then printf('%.1f', vnum)
            when type = {T_REWARD} then printf('%.3f', vnum)
            when type = {T_RETRACTION} then printf('fe-%09d', vref)
            else cast(cast(vnum as bigint) as varchar)
        end
    """
    return f"""
        with base as (
            select
                num, trunc,
                printf('fe-%09d', num) as event_id,
                printf('inf-%09d', inf) as inference_id,
                {types}[type + 1] as event_type,
                {value} as value,
                {sql_list(list(SOURCES))}[src + 1] as source,
                {sql_list(list(CLIENTS))}[client + 1] as client,
                {sql_list(list(SCHEMA_VERSIONS))}[schema + 1] as schema_version
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
