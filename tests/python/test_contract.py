"""The raw contract is stated once (contract.py); the dbt sources and the raw tables follow it."""

from __future__ import annotations

from pathlib import Path

import duckdb
import yaml

from feedback_flywheel import paths, warehouse
from feedback_flywheel.contract import BOOKKEEPING_COLUMNS, RAW_TABLES, dbt_sources_yaml

SOURCES_FILE = Path(paths.project_dir()) / "models" / "staging" / "raw" / "_raw__sources.yml"


def test_dbt_sources_file_is_generated_from_the_contract() -> None:
    assert SOURCES_FILE.read_text() == dbt_sources_yaml(), (
        "models/staging/raw/_raw__sources.yml is out of date: run "
        "`flywheel contract --format dbt-sources > models/staging/raw/_raw__sources.yml`"
    )


def test_every_source_column_has_a_description_type_and_freshness_field() -> None:
    document = yaml.safe_load(SOURCES_FILE.read_text())
    tables = {table["name"]: table for table in document["sources"][0]["tables"]}
    for name, table in RAW_TABLES.items():
        source = tables[name]
        assert source["description"]
        assert source["config"]["loaded_at_field"] in table.column_names
        names = [column["name"] for column in source["columns"]]
        assert names == table.column_names + [column.name for column in BOOKKEEPING_COLUMNS]
        assert all(column["description"].strip() for column in source["columns"])
        assert all(column["data_type"] for column in source["columns"])


def test_init_creates_raw_tables_with_the_contract_types(tmp_path: Path) -> None:
    db_path = tmp_path / "w.duckdb"
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
        warehouse.init_warehouse(con)  # idempotent
    con = duckdb.connect(str(db_path), read_only=True)
    try:
        for name, table in RAW_TABLES.items():
            columns = con.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = 'raw' and table_name = ? order by ordinal_position",
                [name],
            ).fetchall()
            expected = [(c.name, c.type) for c in (*table.columns, *BOOKKEEPING_COLUMNS)]
            assert columns == expected
    finally:
        con.close()
