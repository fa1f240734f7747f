"""The keys a warehouse's inferences carry: one profile per (model, payload, key) from
``marts.rpt_payload_keys`` (a view over the recent raw inference log: how often each key of
``inputs`` and ``context`` is present, with which JSON types, and how many distinct values)."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from feedback_flywheel.warehouse.catalogue import RPT_PAYLOAD_KEYS


@dataclass(frozen=True)
class KeyProfile:
    """One key of ``inputs`` or ``context``, over the recent inferences of one model."""

    model_name: str
    payload: str  # inputs | context
    key_name: str
    sample_rows: int  # inferences of the model in the sample
    present_rows: int  # ... that have the key
    numeric_rows: int  # ... with a JSON number as its value
    boolean_rows: int
    text_rows: int
    other_rows: int  # nested objects or arrays
    null_rows: int
    distinct_values: int

    @property
    def valued_rows(self) -> int:
        return self.present_rows - self.null_rows

    @property
    def present_share(self) -> float:
        return self.present_rows / self.sample_rows if self.sample_rows else 0.0


def read_profiles(con: duckdb.DuckDBPyConnection) -> list[KeyProfile]:
    """Every key profile, ordered by model, payload and key."""
    rows = con.execute(
        f"""
        select model_name, payload, key_name, sample_rows, present_rows, numeric_rows,
            boolean_rows, text_rows, other_rows, null_rows, distinct_values
        from {RPT_PAYLOAD_KEYS}
        order by model_name, payload, key_name
        """
    ).fetchall()
    return [KeyProfile(*row) for row in rows]
