"""The architecture holds: Python reads only what dbt publishes, through the relation catalogue;
every relation it reads is public, contracted and in an exposure; every ml table is a source; the
modules stay small; the README's tree is the package's. (The import direction is held by
import-linter, `lint-imports`, in `make lint`.)"""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest

from feedback_flywheel.warehouse import catalogue
from feedback_flywheel.warehouse.schema import ML_TABLES
from tests.python.helpers import PROJECT_DIR, dbt

PACKAGE = PROJECT_DIR / "feedback_flywheel"
FLOWS = PROJECT_DIR / "flows"
#: only these may name relations in SQL directly: the schema and the catalogue themselves, and
#: ingest, the one writer (and so the one reader) of raw
OWNERS = ("warehouse", "ingest")
RELATION = re.compile(r"\b(raw|staging|intermediate|marts|ml|snapshots)\.[a-z_]+\b")
SQL_WORD = re.compile(r"\b(select|insert|update|delete|create)\b", re.IGNORECASE)
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 90


def _python_files() -> list[Path]:
    return sorted([*PACKAGE.rglob("*.py"), *FLOWS.rglob("*.py")])


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the constant nodes that are docstrings (module, class, function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def test_no_sql_outside_the_owners_names_a_relation_directly() -> None:
    offenders = []
    for path in _python_files():
        relative = path.relative_to(PROJECT_DIR)
        if relative.parts[0] == "feedback_flywheel" and relative.parts[1] in OWNERS:
            continue
        tree = ast.parse(path.read_text())
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Constant) or not isinstance(node.value, str):
                continue
            if id(node) in docstrings or not SQL_WORD.search(node.value):
                continue
            for match in RELATION.finditer(node.value):
                offenders.append(f"{relative}:{node.lineno}: {match.group(0)}")
    assert not offenders, (
        "SQL outside warehouse/ and ingest/ must name relations through "
        "feedback_flywheel/warehouse/catalogue.py:\n" + "\n".join(offenders)
    )


def test_the_catalogue_names_only_marts_and_declared_ml_tables() -> None:
    assert catalogue.MARTS and catalogue.ML
    assert {relation.schema for relation in catalogue.MARTS} == {"marts"}
    assert {relation.name for relation in catalogue.ML} <= set(ML_TABLES)


@pytest.fixture(scope="module")
def manifest(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """dbt's manifest of the project (``dbt parse``; no database is built)."""
    target = tmp_path_factory.mktemp("parse")
    dbt(["parse", "--quiet"], db_path=target / "parse.duckdb", target_path=target)
    return json.loads((target / "manifest.json").read_text())


def _models_by_name(manifest: dict) -> dict[str, dict]:
    return {
        node["name"]: node
        for node in manifest["nodes"].values()
        if node["resource_type"] in ("model", "seed")
    }


def test_every_relation_python_reads_is_public_contracted_and_exposed(manifest: dict) -> None:
    models = _models_by_name(manifest)
    exposed = {
        dependency
        for exposure in manifest["exposures"].values()
        for dependency in exposure["depends_on"]["nodes"]
    }
    problems = []
    for relation in catalogue.MARTS:
        node = models.get(relation.name)
        if node is None:
            problems.append(f"{relation}: no such dbt model")
            continue
        if node.get("access") != "public":
            problems.append(f"{relation}: access is {node.get('access')}, not public")
        if not node["config"].get("contract", {}).get("enforced"):
            problems.append(f"{relation}: no enforced contract")
        if node["unique_id"] not in exposed:
            problems.append(f"{relation}: in no exposure")
    assert not problems, "\n".join(problems)


def test_every_ml_table_is_a_source_under_one_name(manifest: dict) -> None:
    sources = [source for source in manifest["sources"].values() if source["schema"] == "ml"]
    assert {source["source_name"] for source in sources} == {"ml"}
    assert {source["name"] for source in sources} == set(ML_TABLES)
    for source in sources:
        assert source["description"], source["name"]
        assert all(column["description"] for column in source["columns"].values()), source["name"]


def test_modules_and_functions_stay_small() -> None:
    """The house guide is ~400 lines a file and ~60 a function; this holds a looser line so the
    guide cannot quietly erode."""
    long_files, long_functions = [], []
    for path in _python_files():
        text = path.read_text()
        relative = path.relative_to(PROJECT_DIR)
        if len(text.splitlines()) > MAX_MODULE_LINES:
            long_files.append(f"{relative}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{relative}:{node.lineno} {node.name}: {length}")
    assert not long_files, "\n".join(long_files)
    assert not long_functions, "\n".join(long_functions)


def test_the_readme_tree_is_the_package() -> None:
    """Every folder of the package appears in the README's Architecture tree, and every folder the
    tree names exists."""
    readme = (PROJECT_DIR / "README.md").read_text()
    section = readme.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    tree = next(block for block in section.split("```")[1::2] if "feedback_flywheel/" in block)
    named = set(re.findall(r"^\s*([a-z_]+)/", tree, re.MULTILINE))
    folders = {
        path.name for path in PACKAGE.iterdir() if path.is_dir() and (path / "__init__.py").exists()
    }
    assert folders <= named, f"folders missing from the README tree: {sorted(folders - named)}"
    phantom = named - folders - {"feedback_flywheel", "flows", "models", "macros", "tests"}
    phantom -= {"staging", "intermediate", "marts", "reports", "python", "dbt", "views"}
    assert not phantom, f"the README tree names folders that do not exist: {sorted(phantom)}"


#: The models that parse a payload's JSON text, and why each may: the JSON of an inference is
#: parsed where it is validated, split into segments, typed for monitoring (once per inference,
#: append-only) or profiled on demand; everything else reads their typed columns.
JSON_PARSERS = {
    "int_inferences_validated": "validation: inputs/context are objects, probabilities summary",
    "int_feedback_events_classified": "validation: the payload is an object",
    "int_drift_values_typed": "the monitored inputs, typed once per inference",
    "fct_inference_segments": "the context keys, once per accepted inference",
    "rpt_payload_keys": "discovery: an on-demand view, never built in a batch",
}
JSON_MACROS = re.compile(
    r"\b(json_get_string|json_get_strings|json_get_double|json_object_entries|json_is_object|"
    r"json_is_valid|probability_summary)\b"
)


def test_payload_json_is_parsed_only_where_it_is_parsed_once() -> None:
    """Parse once: no model but the listed ones calls a JSON macro (a new reader of a payload
    must read a typed column, or be added here with its reason)."""
    parsers = {
        path.stem
        for path in (PROJECT_DIR / "models").rglob("*.sql")
        if JSON_MACROS.search(path.read_text())
    }
    assert parsers == set(JSON_PARSERS), (
        f"models that parse JSON: {sorted(parsers)}; allowed: {sorted(JSON_PARSERS)}"
    )


def test_the_slowest_first_list_names_test_files_that_exist() -> None:
    """tests/python/conftest.py starts these first; a renamed file would silently drop out."""
    from tests.python.conftest import SLOWEST_FIRST

    missing = [
        name for name in SLOWEST_FIRST if not (PROJECT_DIR / "tests" / "python" / name).is_file()
    ]
    assert not missing, missing
