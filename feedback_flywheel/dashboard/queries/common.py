"""What every page reads: the KPI catalogue, table lookups, the snapshot and the models."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from feedback_flywheel.publish.serving import META_TABLE
from feedback_flywheel.warehouse.catalogue import (
    RPT_KPI_DAILY,
    Relation,
)


@dataclass(frozen=True)
class KpiMetric:
    """One KPI of ``rpt_kpi_daily``: its column, interval columns and the count behind it."""

    label: str
    column: str
    lower: str | None
    upper: str | None
    count: str
    is_rate: bool = True


KPI_METRICS: dict[str, KpiMetric] = {
    "accuracy": KpiMetric(
        "Accuracy (matured labels)",
        "accuracy",
        "accuracy_lower",
        "accuracy_upper",
        "labelled_count",
    ),
    "f1_macro": KpiMetric("Macro F1 (matured labels)", "f1_macro", None, None, "labelled_count"),
    "labelled_share": KpiMetric(
        "Labelled share",
        "labelled_share",
        "labelled_share_lower",
        "labelled_share_upper",
        "inference_count",
    ),
    "rating_mean": KpiMetric(
        "Mean rating (1-5)",
        "rating_mean",
        "rating_mean_lower",
        "rating_mean_upper",
        "rating_count",
        is_rate=False,
    ),
    "thumbs_up_rate": KpiMetric(
        "Thumbs-up rate",
        "thumbs_up_rate",
        "thumbs_up_rate_lower",
        "thumbs_up_rate_upper",
        "thumbs_count",
    ),
    "click_rate": KpiMetric(
        "Click rate", "click_rate", "click_rate_lower", "click_rate_upper", "click_signal_count"
    ),
    "conversion_rate": KpiMetric(
        "Conversion rate",
        "conversion_rate",
        "conversion_rate_lower",
        "conversion_rate_upper",
        "conversion_signal_count",
    ),
    "reward_mean": KpiMetric(
        "Mean reward (-1..1)",
        "reward_mean",
        "reward_mean_lower",
        "reward_mean_upper",
        "reward_count",
        is_rate=False,
    ),
}


def has_table(con: duckdb.DuckDBPyConnection, relation: Relation) -> bool:
    """Whether the snapshot holds ``relation``."""
    return bool(
        con.execute(
            "select count(*) from duckdb_tables() where schema_name = ? and table_name = ?",
            [relation.schema, relation.name],
        ).fetchone()[0]
    )


def snapshot_info(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``meta.snapshot``: one row per published table with its row count and provenance."""
    return con.execute(
        f"""
        select snapshot_id, batch_id, source_db, table_schema, table_name, row_count,
            published_at
        from {META_TABLE} order by table_schema, table_name
        """
    ).df()


def model_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Models with daily KPIs, alphabetically."""
    return [
        name
        for (name,) in con.execute(
            f"select distinct model_name from {RPT_KPI_DAILY} order by 1"
        ).fetchall()
    ]
