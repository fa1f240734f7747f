"""Fingerprint every public mart, report and ``ml`` table of a warehouse, to prove a refactor
changed nothing.

    .venv/bin/python scripts/warehouse_fingerprint.py --build --out before.json
    ... change the code ...
    .venv/bin/python scripts/warehouse_fingerprint.py --build --out after.json
    .venv/bin/python scripts/warehouse_fingerprint.py --compare before.json after.json

``--build`` runs the demo loop (``flywheel demo``, the command ``make run`` calls) into a fresh
database under ``data/fingerprint/`` and fingerprints it; ``--db FILE`` fingerprints a warehouse
you already have. Each relation gets its row count and an order-independent hash of its rows:
the md5 of every row's text (columns in name order, so reordering columns changes nothing),
sorted, then hashed together. Values that differ between two runs of the same code are left
out, and only those: the moments a run happened (``IGNORED_COLUMNS``: ``computed_at``,
``decided_at``, ...), the hash-chain columns that cover them, and — inside JSON payloads — the
same keys. Doubles (and numbers inside JSON) are compared to 12 significant digits: a sum of
doubles in a parallel aggregate, or over rows read in no fixed order, may differ in its last
bits between two runs of the same code (seen on the performance estimates and the reward
leaderboard before this script existed). Whatever else differs is a change in behaviour.

The relations: every table and view of the ``marts`` schema (marts and reports) and every table
of the ``ml`` schema. ``--compare`` prints the relations whose rows changed, the ones only one
side has (a new mart is not a change of an old one), and exits 1 when any existing relation
changed.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb

PROJECT = Path(__file__).resolve().parent.parent
SCHEMAS = ("marts", "ml")
FINGERPRINT_KEY = "fingerprint-builds-share-this-key"
#: columns that hold when a run happened, not what it computed
IGNORED_COLUMNS = frozenset(
    {
        "computed_at",
        "decided_at",
        "recorded_at",
        "started_at",
        "finished_at",
        "published_at",
        "trained_at",
        "created_at",
        "loaded_at",
        "scored_at",
        "inserted_at",
        "evicted_at",
        "reported_at",
        "drawn_at",
        "last_sampled_at",
        "dbt_seconds",
        "train_seconds",
        "fit_seconds",
        "prev_hash",
        "row_hash",
        "audit_head_hash",
        "dbt_updated_at",
        "dbt_valid_from",
        "dbt_valid_to",
        "dbt_scd_id",
    }
)
JSON_COLUMNS = frozenset({"payload_json", "signals_json", "policy_json", "parameters_json"})


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _strip(value: object) -> object:
    """A JSON value without the keys that hold run times, its numbers to 12 digits."""
    if isinstance(value, float):
        return float(f"{value:.12g}")
    if isinstance(value, str) and value[:1] in ("{", "["):  # JSON text inside JSON
        return _normalised_json(value)
    if isinstance(value, dict):
        return {
            key: _strip(item)
            for key, item in value.items()
            if key not in IGNORED_COLUMNS and key not in {"source", "deployed_at", "load_id"}
        }
    if isinstance(value, list):
        return [_strip(item) for item in value]
    return value


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _value(column: str, data_type: str) -> str:
    """The column as it enters the hash: doubles to 12 significant digits, file paths relative
    to the checkout they were built in (two checkouts of the project load the same demo files
    from different folders)."""
    if column == "file_path":
        return f"replace({_quote(column)}, {_sql_text(str(PROJECT) + '/')}, '')"
    if data_type in ("DOUBLE", "FLOAT", "REAL"):
        return f"printf('%.12g', {_quote(column)})"
    return _quote(column)


def _normalised_json(text: str | float | None) -> str | None:
    if text is None or (isinstance(text, float) and text != text):  # null (NaN in a frame)
        return None
    try:
        return json.dumps(_strip(json.loads(text)), sort_keys=True)
    except ValueError:
        return text


def relations(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str]]:
    placeholders = ", ".join("?" for _ in SCHEMAS)
    return con.execute(
        f"""
        select table_schema, table_name from information_schema.tables
        where table_schema in ({placeholders}) order by 1, 2
        """,
        list(SCHEMAS),
    ).fetchall()


def fingerprint_relation(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> dict:
    types = {
        column: data_type
        for column, data_type in con.execute(
            """
            select column_name, data_type from information_schema.columns
            where table_schema = ? and table_name = ? order by column_name
            """,
            [schema, name],
        ).fetchall()
        if column not in IGNORED_COLUMNS
    }
    columns = list(types)
    relation = f"{_quote(schema)}.{_quote(name)}"
    json_columns = [column for column in columns if column in JSON_COLUMNS]
    count = con.execute(f"select count(*) from {relation}").fetchall()[0][0]
    packed = ", ".join(f"{_quote(c)} := {_value(c, types[c])}" for c in columns)
    if not json_columns:
        digest = con.execute(
            f"""
            select md5(coalesce(string_agg(row_md5, ',' order by row_md5), ''))
            from (select md5(cast(struct_pack({packed}) as varchar)) as row_md5 from {relation})
            """
        ).fetchall()[0][0]
        return {"rows": count, "hash": digest, "columns": columns}
    # JSON payloads carry run times inside them: normalise those rows in Python (small tables)
    frame = con.execute(f"select {', '.join(_quote(c) for c in columns)} from {relation}").df()
    for column in json_columns:
        frame[column] = frame[column].map(_normalised_json)
    con.register("normalised_rows", frame)
    try:
        digest = con.execute(
            f"""
            select md5(coalesce(string_agg(row_md5, ',' order by row_md5), ''))
            from (select md5(cast(struct_pack({packed}) as varchar)) as row_md5
                  from normalised_rows)
            """
        ).fetchall()[0][0]
    finally:
        con.unregister("normalised_rows")
    return {"rows": count, "hash": digest, "columns": columns}


def fingerprint(db_path: Path) -> dict[str, dict]:
    with duckdb.connect(str(db_path), read_only=True) as con:
        return {
            f"{schema}.{name}": fingerprint_relation(con, schema, name)
            for schema, name in relations(con)
        }


def build(workdir: Path, args: list[str]) -> Path:
    """Run the demo loop into a fresh database under ``workdir``; returns its path."""
    if workdir.exists():
        shutil.rmtree(workdir)
    workdir.mkdir(parents=True)
    db_path = workdir / "fingerprint.duckdb"
    flywheel = PROJECT / ".venv" / "bin" / "flywheel"
    env = dict(os.environ)
    env.pop("FLYWHEEL_SERVING_DUCKDB", None)
    # One fixed key for every build: ids are pseudonymised and the audit chain is keyed with it,
    # and a per-warehouse random key would make every build differ in those columns.
    env["FLYWHEEL_SECRET_KEY"] = FINGERPRINT_KEY
    subprocess.run(
        [str(flywheel), "demo", "--db", str(db_path), *args],
        cwd=PROJECT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return db_path


def compare(before: dict[str, dict], after: dict[str, dict]) -> int:
    changed = [
        name
        for name in sorted(set(before) & set(after))
        if (before[name]["rows"], before[name]["hash"])
        != (after[name]["rows"], after[name]["hash"])
    ]
    only_before = sorted(set(before) - set(after))
    only_after = sorted(set(after) - set(before))
    same = len(set(before) & set(after)) - len(changed)
    print(f"identical: {same} relations")
    for name in changed:
        b, a = before[name], after[name]
        columns = sorted(set(b["columns"]) ^ set(a["columns"]))
        print(
            f"CHANGED   {name}: rows {b['rows']} -> {a['rows']}, hash {b['hash'][:12]} -> "
            f"{a['hash'][:12]}" + (f", columns differ: {', '.join(columns)}" if columns else "")
        )
    for name in only_before:
        print(f"REMOVED   {name}")
    for name in only_after:
        print(f"NEW       {name} ({after[name]['rows']} rows)")
    return 1 if changed or only_before else 0


def print_table(result: dict[str, dict]) -> None:
    width = max((len(name) for name in result), default=10)
    print(f"{'relation':<{width}}  {'rows':>9}  hash")
    for name, item in result.items():
        print(f"{name:<{width}}  {item['rows']:>9,}  {item['hash']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--db", type=Path, help="fingerprint this warehouse")
    source.add_argument("--build", action="store_true", help="build the demo loop first")
    source.add_argument("--compare", nargs=2, type=Path, metavar=("BEFORE", "AFTER"))
    parser.add_argument("--out", type=Path, help="also write the fingerprint as JSON")
    parser.add_argument(
        "--demo-args",
        default="",
        help="extra arguments for `flywheel demo` with --build, e.g. '--days 30'",
    )
    args = parser.parse_args(argv)
    if args.compare:
        before, after = (json.loads(path.read_text()) for path in args.compare)
        return compare(before, after)
    db_path = (
        args.db if args.db else build(PROJECT / "data" / "fingerprint", args.demo_args.split())
    )
    result = fingerprint(db_path)
    print_table(result)
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
