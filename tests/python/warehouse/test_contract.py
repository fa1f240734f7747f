"""The raw contract (warehouse/contract.py) and the ml schema (warehouse/schema.py) are stated
once; the dbt sources and the tables follow them."""

from __future__ import annotations

from pathlib import Path

import duckdb
import yaml

from feedback_flywheel import warehouse
from feedback_flywheel.warehouse.contract import BOOKKEEPING_COLUMNS, RAW_TABLES, dbt_sources_yaml
from feedback_flywheel.warehouse.schema import ML_TABLES, ml_sources_yaml
from tests.python.helpers import PROJECT_DIR

SOURCES_FILE = PROJECT_DIR / "models" / "staging" / "raw" / "_raw__sources.yml"
ML_SOURCES_FILE = PROJECT_DIR / "models" / "staging" / "ml" / "_ml__sources.yml"


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


def test_ml_sources_file_is_generated_from_the_schema() -> None:
    assert ML_SOURCES_FILE.read_text() == ml_sources_yaml(), (
        "models/staging/ml/_ml__sources.yml is out of date: run "
        "`flywheel contract --format ml-sources > models/staging/ml/_ml__sources.yml`"
    )
    document = yaml.safe_load(ML_SOURCES_FILE.read_text())
    (source,) = document["sources"]
    assert source["name"] == "ml"
    assert [table["name"] for table in source["tables"]] == list(ML_TABLES)


def test_init_creates_every_ml_table_as_declared(tmp_path: Path) -> None:
    db_path = tmp_path / "w.duckdb"
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
        warehouse.init_warehouse(con)  # idempotent
        for name, table in ML_TABLES.items():
            columns = con.execute(
                "select column_name, data_type, is_nullable from information_schema.columns "
                "where table_schema = 'ml' and table_name = ? order by ordinal_position",
                [name],
            ).fetchall()
            assert [(c, t.lower(), n == "YES") for c, t, n in columns] == [
                (column.name, column.type.lower(), column.nullable) for column in table.columns
            ], name
