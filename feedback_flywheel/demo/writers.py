"""Arrow and Parquet plumbing shared by the table writers: contract schemas, text columns built
by DuckDB, and files written one per UTC day with fixed options.

The Parquet options are fixed here (and no wall-clock value is written), which is what makes the
same seed and arguments give byte-identical files.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from feedback_flywheel.demo.constants import EPOCH, US_PER_DAY
from feedback_flywheel.warehouse.contract import RAW_TABLES, RawTable

PARQUET_OPTIONS: dict[str, Any] = {
    "compression": "zstd",
    "compression_level": 3,
    "use_dictionary": True,
    "write_statistics": True,
    "row_group_size": 1_000_000,
}

_ARROW_TYPES: dict[str, pa.DataType] = {
    "VARCHAR": pa.string(),
    "TIMESTAMP": pa.timestamp("us"),
    "BIGINT": pa.int64(),
    "DOUBLE": pa.float64(),
}


def sql_list(values: Sequence[str]) -> str:
    """A DuckDB list literal of strings, for code -> text lookups (``list[code + 1]``)."""
    return "[" + ", ".join("'" + value.replace("'", "''") + "'" for value in values) + "]"


def contract_schema(table: RawTable) -> pa.Schema:
    """The Arrow schema of one raw table: contract column order, types and nullability.

    Each contract type maps to the Arrow type DuckDB reads back as that contract type.
    """
    return pa.schema(
        [
            pa.field(column.name, _ARROW_TYPES[column.type], nullable=not column.required)
            for column in table.columns
        ]
    )


def timestamps(us: np.ndarray) -> pa.Array:
    """An Arrow ``timestamp("us")`` array of integer microseconds since the epoch."""
    return pa.array(us.astype(np.int64), type=pa.timestamp("us"))


def text_columns(con: duckdb.DuckDBPyConnection, numeric: pa.Table, sql: str) -> pa.Table:
    """Run ``sql`` over ``numeric`` (registered as the view ``numeric``) and return the result.

    Text columns (ids, JSON) are built this way because DuckDB does it vectorised, where Python
    would go row by row.
    """
    con.register("numeric", numeric)
    text = con.sql(sql).to_arrow_table()
    con.unregister("numeric")
    return text


def write_daily(
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
        write_parquet(table.slice(lo, hi - lo), out_dir / f"{file_date.isoformat()}.parquet")
    return table.num_rows, len(days)


def write_parquet(table: pa.Table, path: Path) -> None:
    """Write one Parquet file with the fixed options."""
    pq.write_table(table, path, **PARQUET_OPTIONS)


def clear_outputs(out_dir: Path) -> None:
    """Remove files an earlier run wrote, so a shorter history leaves no stale day files."""
    for name in RAW_TABLES:
        for folder in (out_dir / name, out_dir / "served" / name):  # served: a closed loop's
            if not folder.is_dir():
                continue
            for path in folder.glob("*.parquet"):
                path.unlink()
    for path in (out_dir / "latent_quality.parquet", out_dir / "truth.json"):
        if path.exists():
            path.unlink()
