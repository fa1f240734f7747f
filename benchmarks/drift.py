"""Benchmark the drift suite against pandas + scipy in memory: ``python -m benchmarks.drift``.

What is measured, on the same data (``--rows`` reference-day + ``--rows`` current-day inferences of
one model, ``--numeric`` numeric and ``--categorical`` categorical keys in ``inputs``, plus the
built-in ``predicted_score`` and ``predicted_label``):

* **warehouse, dbt wall**: ``dbt run --full-refresh --select int_drift_values_typed
  int_drift_values_daily int_drift_values_edge_counted int_drift_values_counted
  fct_drift_reference_bins fct_drift_numeric fct_drift_categorical fct_drift_categorical_summary``
  through ``dbt_runner.run_dbt``, exactly as ``flows.batch_cycle`` passes the batch (environment
  variables) and the other vars (``--vars``). The wall time of the whole invocation: dbt's start-up
  and (partial) parse included. ``--full-refresh`` makes every repeat do the same work.
* **warehouse, SQL**: the sum of the drift models' ``execution_time`` in ``run_results.json`` (the
  SQL without dbt's start-up; with ``threads: 2`` two models can overlap, so the sum can exceed the
  span, which the notes show), and each model on its own line.
* **warehouse, statistics**: the same sum without ``int_drift_values_typed`` (the one model that
  parses the JSON): the statistics computed from the stored typed values, against scipy's compute.
* **daily drift stage**: what a nightly batch does. The reference day is built by its own batch
  first (not timed; ``--full-refresh``, so every repeat starts alike), then the current day's
  batch is timed: ``dbt run`` of the drift models, incremental, so ``int_drift_values_typed``
  parses the current day only (the reference day is already stored), ``int_drift_values_daily``
  counts the current day, and the statistics merge the two day summaries. Compared with pandas
  reading and parsing both days plus scipy's compute. The agreement check reads what this daily
  batch wrote.
* **warehouse, Python stage**: ``retraining.drift.drift_tests`` as the flow's ``test-drift`` task
  calls it: read the three summary marts, KS p-value from (D, n, m) and chi-square per
  contingency table, Benjamini-Hochberg, the gate.
* **in memory, read**: the raw Parquet file the warehouse ingested, read with pandas (pyarrow),
  its ``inputs`` JSON parsed into one column per feature (``orjson`` per row into DataFrames of
  250k rows; on this data as fast as pyarrow's vectorised JSON reader, 2.5x faster than the
  standard library's ``json`` and several times faster than ``pd.read_json``), the two windows
  selected.
* **in memory, compute**: per numeric feature ``scipy.stats.ks_2samp`` (D and p-value),
  ``scipy.stats.wasserstein_distance``, PSI and ``scipy.spatial.distance.jensenshannon`` over bins
  cut at the reference quantiles (``np.quantile(method='inverted_cdf')`` + ``np.histogram``),
  missing counts, means and the reference standard deviation; per categorical feature the top-k /
  ``__other__`` / ``__unseen__`` / ``__missing__`` contingency table (pandas ``value_counts``),
  ``scipy.stats.chi2_contingency``, L-infinity and JS distance, the unseen share.

Not timed (reported on their own lines): generating the data (numpy; the JSON text is built in
DuckDB), ``ingest_file`` into a fresh DuckDB file, and ``dbt build`` of everything upstream of
``int_drift_values_typed`` (``int_inferences_validated``, ``fct_training_examples`` and what they
need).
No feedback is generated, so the built-in ``label`` feature has no values: the suite emits no
``label`` rows (checked), and it is not compared.

Every repeat checks that both sides agree (KS D, Wasserstein, PSI, JS, L-infinity within 1e-9,
absolute or relative for values above 1; p-values within 1e-6; counts and contingency tables
exactly) and stops with exit code 1 naming every difference if they do not.

How to read the table (stdout; progress goes to stderr): medians over ``--repeat``. The ratios
divide the warehouse time by the in-memory time, so above 1 means the warehouse is slower. "SQL /
compute" compares the statistics only, except that the SQL side also extracts the features from
the JSON (``int_drift_values_typed``, shown separately; the "statistics" ratio leaves it out);
"dbt wall / read + compute" compares the two end to end from the stored JSON text. ``others`` is
the CPU the rest of the machine used during the step, as a share of all cores: above ~5 % the
wall time is inflated by other processes. Peak RSS: the dbt subprocess (the warehouse steps) or
this process (the in-memory steps) at its highest, sampled every 50 ms.
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import math
import os
import platform
import shutil
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from importlib import metadata
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import orjson
import pandas as pd
import pyarrow as pa
from scipy import stats
from scipy.spatial import distance

from feedback_flywheel import batches, warehouse
from feedback_flywheel.config import Settings
from feedback_flywheel.ingest import ingest_file
from feedback_flywheel.retraining import drift as monitoring
from feedback_flywheel.warehouse.dbt import run_dbt

DEFAULT_WORKDIR = Path("/tmp/flywheel-drift-bench")
MODEL_NAME = "bench"
REFERENCE_DAY = datetime(2026, 1, 1)
CURRENT_DAY = REFERENCE_DAY + timedelta(days=1)
BATCH_END = CURRENT_DAY + timedelta(days=1)
DRIFT_MODELS = (
    "int_drift_values_typed",
    "int_drift_values_daily",
    "int_drift_values_edge_counted",
    "int_drift_values_counted",
    "fct_drift_reference_bins",
    "fct_drift_numeric",
    "fct_drift_categorical",
    "fct_drift_categorical_summary",
)
MARTS = tuple(model for model in DRIFT_MODELS if model.startswith("fct_"))
PARSE = DRIFT_MODELS[0]
STATISTICS = DRIFT_MODELS[1:]
STAT_TOLERANCE = 1e-9
P_TOLERANCE = 1e-6
PSI_EPSILON = 1e-4
MISSING_SHARE = 0.01
LABELS = ("a", "b", "c")
JSON_CHUNK_ROWS = 250_000


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the data ---------------------------------------------------------------------------------

NumericGenerator = Callable[[np.random.Generator, int, bool], np.ndarray]

# (kind, generator(rng, n, shifted), integer-valued). Integer kinds have many ties.
NUMERIC_KINDS: tuple[tuple[str, NumericGenerator, bool], ...] = (
    ("normal", lambda r, n, s: r.normal(0.25 if s else 0.0, 1.0, n), False),
    ("lognormal", lambda r, n, s: r.lognormal(3.0, 0.9 if s else 0.8, n), False),
    ("uniform", lambda r, n, s: r.uniform(0.0, 105.0 if s else 100.0, n), False),
    ("gamma2dp", lambda r, n, s: np.round(r.gamma(2.0, 2.3 if s else 2.0, n), 2), False),
    ("exponential", lambda r, n, s: r.exponential(5.5 if s else 5.0, n), False),
    ("poisson", lambda r, n, s: r.poisson(3.5 if s else 3.0, n), True),
    ("binomial", lambda r, n, s: r.binomial(20, 0.33 if s else 0.3, n), True),
    ("intuniform", lambda r, n, s: r.integers(0, 105 if s else 100, n), True),
    ("geometric", lambda r, n, s: r.geometric(0.18 if s else 0.2, n), True),
    ("zipf", lambda r, n, s: np.minimum(r.zipf(1.7 if s else 1.8, n), 10_000), True),
)


@dataclass(frozen=True)
class CategoricalKind:
    """Categories and their shares per window; ``unseen`` only occur in the current window."""

    name: str
    categories: tuple[str, ...]
    reference_shares: tuple[float, ...]
    current_shares: tuple[float, ...]
    unseen: tuple[str, ...] = ()
    unseen_share: float = 0.0


def _zipf_shares(count: int, exponent: float) -> tuple[float, ...]:
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return tuple(float(w) for w in weights / weights.sum())


CATEGORICAL_KINDS: tuple[CategoricalKind, ...] = (
    CategoricalKind(
        "channel",
        ("web", "app", "email", "phone", "chat", "sms"),
        (0.3, 0.25, 0.2, 0.1, 0.1, 0.05),
        (0.3, 0.25, 0.2, 0.1, 0.1, 0.05),
    ),
    CategoricalKind(  # more categories than drift_top_k: __other__, and three new ones
        "zipf40",
        tuple(f"k{j:02d}" for j in range(40)),
        _zipf_shares(40, 1.0),
        _zipf_shares(40, 0.9),
        unseen=("new0", "new1", "new2"),
        unseen_share=0.02,
    ),
    CategoricalKind(  # shifted
        "tier",
        ("free", "basic", "pro", "enterprise"),
        (0.5, 0.3, 0.15, 0.05),
        (0.4, 0.3, 0.2, 0.1),
    ),
    CategoricalKind(  # high cardinality, 5 % of the current values never seen before
        "item2000",
        tuple(f"i{j:04d}" for j in range(2000)),
        tuple([1 / 2000] * 2000),
        tuple([1 / 2000] * 2000),
        unseen=tuple(f"i{j:04d}" for j in range(2000, 2100)),
        unseen_share=0.05,
    ),
    CategoricalKind(
        "flag3",
        ("x", "y", "z"),
        (0.6, 0.3, 0.1),
        (0.6, 0.3, 0.1),
        unseen=("w",),
        unseen_share=0.005,
    ),
)


@dataclass(frozen=True)
class Features:
    """The generated feature names, in var drift_features order."""

    numeric: list[str]
    integer: set[str]
    shifted: set[str]
    categorical: list[str]

    def drift_features(self) -> dict[str, list[str]]:
        return {"numeric": self.numeric, "categorical": self.categorical}


def feature_set(numeric: int, categorical: int) -> Features:
    """Names that say what each feature is; every fourth numeric one (from the 2nd) shifts."""
    names: list[str] = []
    integer: set[str] = set()
    shifted: set[str] = set()
    for index in range(numeric):
        kind, _, is_integer = NUMERIC_KINDS[index % len(NUMERIC_KINDS)]
        name = f"n{index + 1:02d}_{kind}"
        names.append(name)
        if is_integer:
            integer.add(name)
        if index % 4 == 1:
            shifted.add(name)
    categorical_names = [
        f"c{index + 1:02d}_{CATEGORICAL_KINDS[index % len(CATEGORICAL_KINDS)].name}"
        for index in range(categorical)
    ]
    return Features(names, integer, shifted, categorical_names)


def _categorical_values(
    rng: np.random.Generator, kind: CategoricalKind, n: int, current: bool
) -> np.ndarray:
    shares = np.array(kind.current_shares if current else kind.reference_shares)
    values = np.array(kind.categories, dtype=object)[rng.choice(len(shares), n, p=shares)]
    if current and kind.unseen:
        new = rng.random(n) < kind.unseen_share
        values[new] = np.array(kind.unseen, dtype=object)[
            rng.integers(0, len(kind.unseen), new.sum())
        ]
    return values


def day_table(rng: np.random.Generator, features: Features, n: int, day_index: int) -> pa.Table:
    """One day's inferences as typed columns (missing values are nulls)."""
    current = day_index == 1
    columns: dict[str, pa.Array] = {
        "day_index": pa.array(np.full(n, day_index, dtype=np.int64)),
        "row_index": pa.array(np.arange(n, dtype=np.int64)),
    }
    for index, name in enumerate(features.numeric):
        _, generate, is_integer = NUMERIC_KINDS[index % len(NUMERIC_KINDS)]
        values = generate(rng, n, current and name in features.shifted)
        values = values.astype(np.int64 if is_integer else np.float64)
        columns[name] = pa.array(values, mask=rng.random(n) < MISSING_SHARE)
    for index, name in enumerate(features.categorical):
        kind = CATEGORICAL_KINDS[index % len(CATEGORICAL_KINDS)]
        values = _categorical_values(rng, kind, n, current)
        values[rng.random(n) < MISSING_SHARE] = None
        columns[name] = pa.array(values, type=pa.string())
    label_shares = [0.45, 0.3, 0.25] if current else [0.5, 0.3, 0.2]
    columns["predicted_label"] = pa.array(
        np.array(LABELS, dtype=object)[rng.choice(3, n, p=label_shares)], type=pa.string()
    )
    score = 0.34 + 0.66 * (rng.beta(1.2, 1.0, n) if current else rng.random(n))
    columns["predicted_score"] = pa.array(np.round(score, 4))
    return pa.table(columns)


def _json_member(name: str, is_string: bool, null_when_missing: bool) -> str:
    """SQL for one ``"key":value`` member; a missing value is JSON null or the key left out."""
    value = f"""'"' || "{name}" || '"'""" if is_string else f'cast("{name}" as varchar)'
    if null_when_missing:
        return f"""'"{name}":' || coalesce({value}, 'null')"""
    return f"""case when "{name}" is not null then '"{name}":' || {value} end"""


def write_inference_log(table: pa.Table, features: Features, rows: int, path: Path) -> None:
    """The raw inference_log file: the JSON text of inputs, context and probabilities built in
    DuckDB (concat_ws skips the NULL members of left-out keys). Rows stay in the table's order
    (DuckDB's preserve_insertion_order)."""
    members = [
        _json_member(name, False, index % 2 == 1) for index, name in enumerate(features.numeric)
    ] + [
        _json_member(name, True, index % 2 == 1) for index, name in enumerate(features.categorical)
    ]
    inputs = "'{' || concat_ws(',', " + ", ".join(members) + ") || '}'"
    probabilities = (
        "'{' || concat_ws(',', "
        + ", ".join(
            f"""'"{label}":' || cast(case when predicted_label = '{label}' then predicted_score
            else (1 - predicted_score) / 2 end as varchar)"""
            for label in LABELS
        )
        + ") || '}'"
    )
    context = """'{"region":"' || ['eu', 'us', 'apac'][1 + row_index % 3]
        || '","device":"' || ['ios', 'android', 'web'][1 + row_index % 7 % 3]
        || '","age_band":"' || ['18-24', '25-34', '35-54', '55+'][1 + row_index % 4]
        || '","language":"' || ['en', 'de', 'fr'][1 + row_index % 5 % 3] || '"}'"""
    con = duckdb.connect()
    try:
        con.register("generated", table)
        con.execute(
            f"""
            copy (
                select
                    'inf-' || day_index || '-' || lpad(cast(row_index as varchar), 9, '0')
                        as inference_id,
                    timestamp '{REFERENCE_DAY:%Y-%m-%d}' + to_days(cast(day_index as integer))
                        + to_microseconds(row_index * 86400000000 // {rows}) as logged_at,
                    '{MODEL_NAME}' as model_name,
                    'v1' as model_version,
                    's-' || cast(row_index % 50000 as varchar) as subject_id,
                    {context} as context,
                    {inputs} as inputs,
                    predicted_label,
                    predicted_score,
                    {probabilities} as probabilities
                from generated
            ) to '{path}' (format parquet, compression zstd)
            """
        )
    finally:
        con.close()


# --- measuring --------------------------------------------------------------------------------


def _cpu_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores), from /proc/stat."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return float("nan")
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in fields[:8])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_seconds() -> float:
    """User + system CPU of this process and of its waited-for children (dbt)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def _descendants(root: int) -> list[int]:
    found: list[int] = []
    stack = [root]
    while stack:
        pid = stack.pop()
        for children in Path(f"/proc/{pid}/task").glob("*/children"):
            try:
                pids = [int(child) for child in children.read_text().split()]
            except (OSError, ValueError):
                continue
            found += pids
            stack += pids
    return found


def _rss_bytes(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


@dataclass
class Sample:
    """One timed run of one step."""

    seconds: float
    others_share: float = float("nan")
    peak_rss: int = 0
    note: str = ""


@contextmanager
def measured(children: bool) -> Iterator[Sample]:
    """Times the block; samples the RSS of this process (or of its child processes) every 50 ms
    and the CPU the rest of the machine used meanwhile."""
    sample = Sample(0.0)
    stop = threading.Event()
    me = os.getpid()

    def watch() -> None:
        while not stop.wait(0.05):
            pids = _descendants(me) if children else [me]
            sample.peak_rss = max(sample.peak_rss, sum(_rss_bytes(pid) for pid in pids))

    watcher = threading.Thread(target=watch, daemon=True)
    busy, own = _cpu_busy_seconds(), _own_cpu_seconds()
    started = time.perf_counter()
    watcher.start()
    try:
        yield sample
    finally:
        sample.seconds = time.perf_counter() - started
        stop.set()
        watcher.join()
        others = (_cpu_busy_seconds() - busy) - (_own_cpu_seconds() - own)
        sample.others_share = max(0.0, others) / max(sample.seconds * (os.cpu_count() or 1), 1e-9)


# --- the warehouse side -----------------------------------------------------------------------


@dataclass
class Warehouse:
    """The DuckDB file, the batch and the dbt settings every invocation uses."""

    db_path: Path
    workdir: Path
    batch: batches.BatchWindow
    dbt_vars: dict[str, Any]
    project_dir: Path

    @property
    def target_path(self) -> Path:
        return self.workdir / "dbt-target"

    def dbt(
        self, args: list[str], log_name: str, window: batches.BatchWindow | None = None
    ) -> float:
        """``dbt <args>`` as the flow runs it, for ``window`` (default: the benchmark's batch);
        its output goes to ``<workdir>/logs/``."""
        log = self.workdir / "logs" / f"{log_name}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        with log.open("w") as handle:
            result = run_dbt(
                args,
                project_dir=self.project_dir,
                dbt_vars=self.dbt_vars,
                db_path=self.db_path,
                target_path=self.target_path,
                on_line=lambda line: print(line, file=handle),
                extra_env={
                    **(window or self.batch).dbt_env(),
                    "DBT_LOG_PATH": str(self.workdir / "logs"),
                    "DBT_USE_COLORS": "false",
                },
            )
        return result.seconds


def model_timings(run_results: Path) -> tuple[dict[str, float], float]:
    """Each model's execution_time, and the span from the first start to the last end."""
    results = json.loads(run_results.read_text())["results"]
    seconds: dict[str, float] = {}
    starts: list[datetime] = []
    ends: list[datetime] = []
    for result in results:
        name = result["unique_id"].rsplit(".", 1)[-1]
        if result["status"] != "success":
            raise SystemExit(f"dbt: {name} ended {result['status']}: {result.get('message')}")
        seconds[name] = float(result["execution_time"])
        for timing in result["timing"]:
            starts.append(datetime.fromisoformat(timing["started_at"].replace("Z", "+00:00")))
            ends.append(datetime.fromisoformat(timing["completed_at"].replace("Z", "+00:00")))
    span = (max(ends) - min(starts)).total_seconds() if starts else float("nan")
    return seconds, span


def compiled_sql(target_path: Path) -> dict[str, str]:
    """The SELECT dbt compiled for each of the drift models (``<target>/compiled/``; the DDL around
    it in ``run/`` differs between creating a table and replacing it, so it is left out)."""
    compiled: dict[str, str] = {}
    for model in DRIFT_MODELS:
        for path in sorted((target_path / "compiled").rglob(f"{model}.sql")):
            compiled[model] = path.read_text()
    return compiled


def sql_fingerprint(compiled: dict[str, str]) -> str:
    """Short hash of the drift models' compiled SQL: did the repeats run the same code?"""
    digest = hashlib.sha256()
    for model in DRIFT_MODELS:
        digest.update(compiled.get(model, "").encode())
    return digest.hexdigest()[:12]


@dataclass
class WarehouseResults:
    """What the suite produced for the batch, indexed for the comparison."""

    numeric: pd.DataFrame  # index feature_name
    tables: dict[str, dict[str, tuple[int, int]]]  # feature -> category -> (n_ref, n_cur)
    summary: pd.DataFrame  # index feature_name
    tests: pd.DataFrame  # drift_tests output, index (feature_name, test)
    row_counts: dict[str, int]
    label_rows: int


def _count(con: duckdb.DuckDBPyConnection, sql: str) -> int:
    row = con.execute(sql).fetchone()
    return int(row[0]) if row else 0


def read_warehouse_results(db_path: Path, batch_id: str, tests: pd.DataFrame) -> WarehouseResults:
    with warehouse.connect(db_path, read_only=True) as con:
        numeric = con.execute(
            "select * from marts.fct_drift_numeric where batch_id = ?", [batch_id]
        ).df()
        categories = con.execute(
            "select feature_name, category, n_ref, n_cur from marts.fct_drift_categorical "
            "where batch_id = ?",
            [batch_id],
        ).df()
        summary = con.execute(
            "select * from marts.fct_drift_categorical_summary where batch_id = ?", [batch_id]
        ).df()
        row_counts = {
            model: _count(
                con,
                f"select count(*) from {'marts' if model.startswith('fct_') else 'intermediate'}"
                f".{model}",
            )
            for model in DRIFT_MODELS
        }
        label_rows = _count(
            con,
            "select coalesce(sum(n_ref + n_cur), 0) from marts.fct_drift_categorical_summary "
            "where feature_name = 'label'",
        )
    tables: dict[str, dict[str, tuple[int, int]]] = {}
    for row in categories.itertuples(index=False):
        tables.setdefault(str(row.feature_name), {})[str(row.category)] = (
            int(row.n_ref),
            int(row.n_cur),
        )
    return WarehouseResults(
        numeric=numeric.set_index("feature_name"),
        tables=tables,
        summary=summary.set_index("feature_name"),
        tests=tests.set_index(["feature_name", "test"]),
        row_counts=row_counts,
        label_rows=label_rows,
    )


# --- the in-memory side -----------------------------------------------------------------------


@dataclass
class InMemoryData:
    """Per feature, the values of each window (numeric: float arrays with NaN for missing)."""

    numeric: dict[str, tuple[np.ndarray, np.ndarray]]
    categorical: dict[str, tuple[pd.Series, pd.Series]]


def read_in_memory(parquet: Path, features: Features, timings: dict[str, float]) -> InMemoryData:
    """The raw file with pandas; inputs parsed with orjson per row into one column per key, in
    chunks of JSON_CHUNK_ROWS rows (as fast as one go, a fraction of the memory)."""
    started = time.perf_counter()
    frame = pd.read_parquet(
        parquet,
        columns=["logged_at", "model_name", "inputs", "predicted_label", "predicted_score"],
    )
    timings["parquet"] = time.perf_counter() - started
    started = time.perf_counter()
    wanted = [*features.numeric, *features.categorical]
    texts = frame["inputs"].to_numpy()
    inputs = pd.concat(
        [
            pd.DataFrame.from_records(
                [orjson.loads(text) for text in texts[start : start + JSON_CHUNK_ROWS]],
                columns=wanted,
            )
            for start in range(0, len(texts), JSON_CHUNK_ROWS)
        ],
        ignore_index=True,
    )
    timings["json"] = time.perf_counter() - started
    started = time.perf_counter()
    in_model = (frame["model_name"] == MODEL_NAME).to_numpy()
    logged_at = frame["logged_at"]
    reference = in_model & ((logged_at >= REFERENCE_DAY) & (logged_at < CURRENT_DAY)).to_numpy()
    current = in_model & ((logged_at >= CURRENT_DAY) & (logged_at < BATCH_END)).to_numpy()
    numeric: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for name in features.numeric:
        values = pd.to_numeric(inputs[name], errors="coerce").to_numpy(dtype=float, copy=True)
        values[~np.isfinite(values)] = np.nan
        numeric[name] = (values[reference], values[current])
    score = frame["predicted_score"].to_numpy(dtype=float)
    numeric["predicted_score"] = (score[reference], score[current])
    categorical: dict[str, tuple[pd.Series, pd.Series]] = {}
    for name in features.categorical:
        column = inputs[name]
        categorical[name] = (column[reference], column[current])
    labels = frame["predicted_label"]
    categorical["predicted_label"] = (labels[reference], labels[current])
    timings["windows"] = time.perf_counter() - started
    return InMemoryData(numeric, categorical)


@dataclass(frozen=True)
class NumericStats:
    n_ref: int
    n_cur: int
    missing_ref: int
    missing_cur: int
    ks_d: float
    ks_p: float
    wasserstein: float
    psi: float
    js_distance: float
    ref_mean: float
    ref_std: float
    cur_mean: float


def numeric_stats(reference: np.ndarray, current: np.ndarray, bins: int) -> NumericStats:
    ref = reference[~np.isnan(reference)]
    cur = current[~np.isnan(current)]
    ks = stats.ks_2samp(ref, cur)
    cut_points = np.quantile(ref, np.arange(1, bins) / bins, method="inverted_cdf")
    edges = np.concatenate([[-np.inf], cut_points, [np.inf]])
    ref_counts = np.histogram(ref, bins=edges)[0]
    cur_counts = np.histogram(cur, bins=edges)[0]
    p = ref_counts / ref_counts.sum()
    q = cur_counts / cur_counts.sum()
    p = np.where(p == 0, PSI_EPSILON, p)
    q = np.where(q == 0, PSI_EPSILON, q)
    return NumericStats(
        n_ref=len(ref),
        n_cur=len(cur),
        missing_ref=len(reference) - len(ref),
        missing_cur=len(current) - len(cur),
        ks_d=float(ks.statistic),
        ks_p=float(ks.pvalue),
        wasserstein=float(stats.wasserstein_distance(ref, cur)),
        psi=float(np.sum((q - p) * np.log(q / p))),
        js_distance=float(distance.jensenshannon(ref_counts, cur_counts)),
        ref_mean=float(np.mean(ref)),
        ref_std=float(np.std(ref, ddof=1)),
        cur_mean=float(np.mean(cur)),
    )


@dataclass(frozen=True)
class CategoricalStats:
    table: dict[str, tuple[int, int]]  # bucket -> (n_ref, n_cur), __missing__ included
    chi2: float
    chi2_p: float
    linf: float
    js_distance: float
    unseen_share: float


def categorical_stats(reference: pd.Series, current: pd.Series, top_k: int) -> CategoricalStats:
    ref_counts = reference.value_counts(dropna=True)
    cur_counts = current.value_counts(dropna=True)
    ranked = sorted(ref_counts.items(), key=lambda item: (-item[1], item[0]))
    top = {value for value, _ in ranked[:top_k]}

    def bucket(value: Any) -> str:
        if value in top:
            return str(value)
        return "__other__" if value in ref_counts.index else "__unseen__"

    table: dict[str, list[int]] = {}
    for counts, side in ((ref_counts, 0), (cur_counts, 1)):
        for value, count in counts.items():
            table.setdefault(bucket(value), [0, 0])[side] += int(count)
    missing = (int(reference.isna().sum()), int(current.isna().sum()))
    observed = np.array(list(table.values()), dtype=float).T  # 2 x buckets, __missing__ left out
    if observed.shape[1] < 2 or (observed.sum(axis=1) == 0).any():
        chi2, chi2_p = 0.0, 1.0
    else:
        result = stats.chi2_contingency(observed, correction=False)
        chi2, chi2_p = float(result.statistic), float(result.pvalue)
    shares = observed / observed.sum(axis=1, keepdims=True)
    if any(missing):
        table["__missing__"] = list(missing)
    return CategoricalStats(
        table={key: (value[0], value[1]) for key, value in table.items()},
        chi2=chi2,
        chi2_p=chi2_p,
        linf=float(np.max(np.abs(shares[0] - shares[1]))),
        js_distance=float(distance.jensenshannon(observed[0], observed[1])),
        unseen_share=table.get("__unseen__", [0, 0])[1] / observed[1].sum(),
    )


@dataclass
class InMemoryResults:
    numeric: dict[str, NumericStats]
    categorical: dict[str, CategoricalStats]


def compute_in_memory(
    data: InMemoryData, bins: int, top_k: int, timings: dict[str, float]
) -> InMemoryResults:
    started = time.perf_counter()
    numeric = {
        name: numeric_stats(reference, current, bins)
        for name, (reference, current) in data.numeric.items()
    }
    timings["numeric"] = time.perf_counter() - started
    started = time.perf_counter()
    categorical = {
        name: categorical_stats(reference, current, top_k)
        for name, (reference, current) in data.categorical.items()
    }
    timings["categorical"] = time.perf_counter() - started
    return InMemoryResults(numeric, categorical)


# --- agreement --------------------------------------------------------------------------------


@dataclass
class Agreement:
    """Largest differences per statistic, and every difference beyond its tolerance."""

    max_diff: dict[str, float] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    def close(
        self, what: str, feature: str, sql: Any, memory: float, p_value: bool = False
    ) -> None:
        """A statistic within STAT_TOLERANCE (relative above 1), a p-value within P_TOLERANCE."""
        if (sql is None or pd.isna(sql)) and pd.isna(memory):
            return
        difference = abs(float(sql) - float(memory))
        limit = P_TOLERANCE if p_value else STAT_TOLERANCE * max(1.0, abs(float(memory)))
        if math.isnan(difference) or difference > limit:
            self.problems.append(f"{feature} {what}: warehouse {sql!r} vs in memory {memory!r}")
        self.max_diff[what] = max(self.max_diff.get(what, 0.0), difference)

    def equal(self, what: str, feature: str, sql: object, memory: object) -> None:
        if sql != memory:
            self.problems.append(f"{feature} {what}: warehouse {sql!r} vs in memory {memory!r}")


def compare(sql: WarehouseResults, memory: InMemoryResults) -> Agreement:
    agreement = Agreement()
    if set(sql.numeric.index) != set(memory.numeric):
        agreement.problems.append(
            f"numeric features: warehouse {sorted(sql.numeric.index)} vs {sorted(memory.numeric)}"
        )
    for name, expected in memory.numeric.items():
        if name not in sql.numeric.index:
            continue
        row = sql.numeric.loc[name]
        for column in ("n_ref", "n_cur", "missing_ref", "missing_cur"):
            agreement.equal(column, name, int(row[column]), getattr(expected, column))
        for column in ("ks_d", "wasserstein", "psi", "js_distance"):
            agreement.close(column, name, row[column], getattr(expected, column))
        for column in ("ref_mean", "ref_std", "cur_mean"):
            agreement.close("means and std", name, row[column], getattr(expected, column))
        p_value = sql.tests.loc[(name, "ks"), "p_value"]
        agreement.close("ks p-value", name, p_value, expected.ks_p, p_value=True)
    if set(sql.tables) != set(memory.categorical):
        agreement.problems.append(
            f"categorical features: warehouse {sorted(sql.tables)} vs {sorted(memory.categorical)}"
        )
    for name, expected_cat in memory.categorical.items():
        if name not in sql.tables:
            continue
        agreement.equal("contingency table", name, sql.tables[name], expected_cat.table)
        row = sql.summary.loc[name]
        agreement.close("linf", name, row["linf"], expected_cat.linf)
        agreement.close("categorical js", name, row["js_distance"], expected_cat.js_distance)
        agreement.close("unseen_share", name, row["unseen_share_cur"], expected_cat.unseen_share)
        test = sql.tests.loc[(name, "chi2")]
        agreement.close("chi2 statistic", name, test["statistic"], expected_cat.chi2)
        agreement.close("chi2 p-value", name, test["p_value"], expected_cat.chi2_p, p_value=True)
    if sql.label_rows:
        agreement.problems.append(f"label: {sql.label_rows} rows without any feedback loaded")
    return agreement


# --- the run ----------------------------------------------------------------------------------


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "?"


def machine_line() -> str:
    cpu, mem_kib = "unknown CPU", 0
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return (
        f"machine: {os.cpu_count()} cores ({cpu}), {mem_kib / 2**20:.1f} GiB RAM; DuckDB "
        f"{duckdb.__version__}, dbt-core {_version('dbt-core')}, dbt-duckdb "
        f"{_version('dbt-duckdb')}, pandas {pd.__version__}, numpy {np.__version__}, scipy "
        f"{_version('scipy')}, Python {platform.python_version()}"
    )


def _load() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())


def _mib(value: float) -> str:
    return f"{value / 2**20:,.0f} MiB"


@dataclass
class Step:
    """The samples of one row of the table; a ratio row holds one computed value."""

    name: str
    samples: list[Sample] = field(default_factory=list)
    is_ratio: bool = False

    def median(self) -> float:
        return statistics.median(sample.seconds for sample in self.samples)

    def median_sample(self) -> Sample:
        """The run whose time is the median (the lower middle one for an even count)."""
        ordered = sorted(self.samples, key=lambda sample: sample.seconds)
        return ordered[(len(ordered) - 1) // 2]


def render(steps: list[Step], header: list[str], footer: list[str], repeat: int) -> str:
    lines = [*header, "", "| step | median s | notes |", "|---|---:|---|"]
    for step in steps:
        if step.is_ratio:
            lines.append(f"| **{step.name}** | **{step.median():.2f}x** | {step.samples[0].note} |")
            continue
        seconds = [sample.seconds for sample in step.samples]
        middle = step.median_sample()
        notes = [middle.note] if middle.note else []
        if len(seconds) > 1:
            notes.append(f"range {min(seconds):.2f}-{max(seconds):.2f} s")
        others = [s.others_share for s in step.samples if not math.isnan(s.others_share)]
        if others:
            notes.append(f"others {statistics.median(others):.0%}")
        peaks = [s.peak_rss for s in step.samples if s.peak_rss]
        if peaks:
            notes.append(f"peak RSS {_mib(max(peaks))}")
        lines.append(f"| {step.name} | {step.median():.2f} | {'; '.join(notes)} |")
    return "\n".join(
        [
            *lines,
            "",
            *footer,
            f"median s: the median over {repeat} repeat(s); a row's notes are from its median run.",
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.drift",
        description="The warehouse drift suite against pandas + scipy in memory, same data.",
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="inferences per day (window)")
    parser.add_argument("--numeric", type=int, default=20, help="numeric input features")
    parser.add_argument("--categorical", type=int, default=5, help="categorical input features")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs; the table shows medians")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="scratch folder")
    parser.add_argument("--keep", action="store_true", help="keep the workdir afterwards")
    parser.add_argument("--seed", type=int, default=20260101, help="numpy seed")
    args = parser.parse_args(argv)
    if args.rows < 1000:
        parser.error("--rows must be at least 1000")
    if args.numeric < 1 or args.categorical < 1:
        parser.error("--numeric and --categorical must be at least 1")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")

    load_at_start = _load()
    workdir: Path = args.workdir.resolve()
    if workdir.exists():
        shutil.rmtree(workdir)
    (workdir / "logs").mkdir(parents=True)
    header = [
        machine_line(),
        f"load average (1, 5, 15 min) at start: {load_at_start}",
        f"workload: {args.rows:,} reference-day + {args.rows:,} current-day inferences of one "
        f"model; {args.numeric} numeric + {args.categorical} categorical inputs, plus "
        "predicted_score and predicted_label (label: no feedback, not compared)",
    ]
    for line in header:
        _say(line)

    features = feature_set(args.numeric, args.categorical)
    overrides: dict[str, Any] = {
        "drift_features": features.drift_features(),
        "drift_current_days": 1,
        "drift_reference_days": 1,
    }
    batch = batches.window(REFERENCE_DAY, BATCH_END)
    reference_batch = batches.window(REFERENCE_DAY, CURRENT_DAY)
    daily_batch = batches.window(CURRENT_DAY, BATCH_END)
    run_settings = Settings.load(overrides=overrides)
    dbt_vars = run_settings.dbt_vars()
    settings = run_settings.vars
    bins, top_k = settings.drift_bins, settings.drift_top_k

    # --- untimed setup ---
    _say("generating the data ...")
    started = time.perf_counter()
    rng = np.random.default_rng(args.seed)
    table = pa.concat_tables([day_table(rng, features, args.rows, day) for day in (0, 1)])
    parquet = workdir / "inference_log.parquet"
    write_inference_log(table, features, args.rows, parquet)
    del table
    generate_seconds = time.perf_counter() - started
    _say(f"  {generate_seconds:.1f} s, {_mib(parquet.stat().st_size)} Parquet")

    _say("ingesting into a fresh DuckDB file ...")
    db_path = workdir / "flywheel.duckdb"
    started = time.perf_counter()
    with warehouse.connect(db_path) as con:
        warehouse.init_warehouse(con)
        loaded = ingest_file(con, "inference_log", parquet)
    ingest_seconds = time.perf_counter() - started
    if not loaded.ok:
        raise SystemExit(f"ingest refused the file: {loaded.message}")
    _say(f"  {ingest_seconds:.1f} s: {loaded.message}")

    bench = Warehouse(db_path, workdir, batch, dbt_vars, run_settings.project_dir)
    _say("dbt build of everything upstream of the drift models ...")
    setup_seconds = bench.dbt(
        [
            "build",
            "--select",
            *[f"+{model}" for model in DRIFT_MODELS],
            "--exclude",
            *DRIFT_MODELS,
            "--exclude-resource-type",
            "unit_test",
            "--indirect-selection",
            "cautious",
        ],
        "dbt-setup-build",
    )
    _say(f"  {setup_seconds:.1f} s")
    setup_line = (
        f"setup, not timed: data generation {generate_seconds:.1f} s "
        f"({_mib(parquet.stat().st_size)} Parquet); ingest_file {ingest_seconds:.1f} s "
        f"({loaded.rows:,} rows); dbt build upstream (of the drift models, with its "
        f"tests) {setup_seconds:.1f} s"
    )

    policy = run_settings.retraining_policy
    steps = {
        key: Step(name)
        for key, name in [
            ("wall", f"warehouse: dbt run, wall ({len(DRIFT_MODELS)} models, --full-refresh)"),
            ("sql", "warehouse: SQL = sum of the models' execution_time"),
            *[(model, f"warehouse SQL: {model}") for model in DRIFT_MODELS],
            (
                "statistics",
                f"warehouse: SQL of the statistics from typed values ({len(STATISTICS)} models)",
            ),
            ("marts", "warehouse: SQL of the 4 marts"),
            ("daily_wall", "daily drift stage: dbt run, wall (current day parsed + statistics)"),
            (
                "daily_sql",
                f"daily drift stage: SQL = sum of the {len(DRIFT_MODELS)} models' execution_time",
            ),
            ("daily_parse", f"daily drift stage SQL: {PARSE} (the current day only)"),
            ("python", "warehouse: Python stage (retraining.drift.drift_tests)"),
            ("read", "in memory: read (pandas)"),
            ("compute", "in memory: compute (scipy)"),
        ]
    }
    worst: dict[str, float] = {}  # largest difference per statistic over every repeat
    row_counts: dict[str, int] = {}
    fingerprints: list[str] = []
    for repeat in range(1, args.repeat + 1):
        _say(f"repeat {repeat}/{args.repeat}: dbt run ...")
        with measured(children=True) as sample:
            bench.dbt(["run", "--full-refresh", "--select", *DRIFT_MODELS], f"dbt-run-r{repeat}")
        run_results = bench.target_path / "run_results.json"
        shutil.copyfile(run_results, workdir / "logs" / f"run_results-r{repeat}.json")
        per_model, span = model_timings(run_results)
        sql_seconds = sum(per_model.values())
        compiled = compiled_sql(bench.target_path)
        fingerprints.append(sql_fingerprint(compiled))
        if fingerprints[-1] not in fingerprints[:-1]:  # keep each version of the SQL measured
            folder = workdir / "logs" / f"sql-{fingerprints[-1]}"
            folder.mkdir()
            for model, text in compiled.items():
                (folder / f"{model}.sql").write_text(text)
        sample.note = (
            f"dbt start-up, parse and {len(DRIFT_MODELS)} models; SQL span {span:.2f} s; "
            f"SQL {fingerprints[-1]}"
        )
        steps["wall"].samples.append(sample)
        steps["sql"].samples.append(
            Sample(sql_seconds, note="threads: 2, so two models may overlap (see the span)")
        )
        for model in DRIFT_MODELS:
            steps[model].samples.append(Sample(per_model[model]))
        steps["marts"].samples.append(Sample(sum(per_model[model] for model in MARTS)))
        _say(
            f"  wall {sample.seconds:.1f} s, SQL {sql_seconds:.1f} s ("
            + ", ".join(f"{model} {per_model[model]:.1f}" for model in DRIFT_MODELS)
            + ")"
        )

        steps["statistics"].samples.append(Sample(sum(per_model[model] for model in STATISTICS)))

        # The daily drift stage: the reference day was parsed by its own earlier batch (untimed,
        # a full refresh so every repeat starts from the same state and the reference bins of
        # the day are computed in the timed batch, as on every real day: the windows slide);
        # the timed batch parses the current day and computes the statistics against it.
        _say("  daily drift stage: the reference day's batch (not timed) ...")
        bench.dbt(
            ["run", "--full-refresh", "--select", *DRIFT_MODELS],
            f"dbt-daily-reference-r{repeat}",
            window=reference_batch,
        )
        with measured(children=True) as sample:
            bench.dbt(
                ["run", "--select", *DRIFT_MODELS], f"dbt-daily-r{repeat}", window=daily_batch
            )
        daily_results = bench.target_path / "run_results.json"
        shutil.copyfile(daily_results, workdir / "logs" / f"run_results-daily-r{repeat}.json")
        daily_per_model, daily_span = model_timings(daily_results)
        sample.note = (
            f"dbt start-up, parse and {len(DRIFT_MODELS)} models; SQL span {daily_span:.2f} s"
        )
        steps["daily_wall"].samples.append(sample)
        steps["daily_sql"].samples.append(Sample(sum(daily_per_model.values())))
        steps["daily_parse"].samples.append(Sample(daily_per_model[PARSE]))
        _say(
            f"  daily: wall {sample.seconds:.1f} s, SQL {sum(daily_per_model.values()):.1f} s "
            f"({PARSE} {daily_per_model[PARSE]:.1f} s)"
        )

        with (
            measured(children=False) as sample,
            warehouse.connect(db_path, read_only=True) as con,
        ):
            tests = monitoring.drift_tests(con, batch.batch_id, policy)
        sample.note = f"read the 3 summary marts, {len(tests)} tests: p-values, BH, the gate"
        steps["python"].samples.append(sample)
        _say(f"  Python stage {sample.seconds:.2f} s")
        sql = read_warehouse_results(db_path, batch.batch_id, tests)
        row_counts = sql.row_counts

        _say("  in memory: read ...")
        gc.collect()
        read_parts: dict[str, float] = {}
        with measured(children=False) as sample:
            data = read_in_memory(parquet, features, read_parts)
        sample.note = (
            f"read_parquet {read_parts['parquet']:.2f} s + JSON parse (orjson per row) "
            f"{read_parts['json']:.2f} s + windows and typed arrays {read_parts['windows']:.2f} s"
        )
        steps["read"].samples.append(sample)
        _say(f"  read {sample.seconds:.1f} s ({sample.note})")
        compute_parts: dict[str, float] = {}
        with measured(children=False) as sample:
            memory = compute_in_memory(data, bins, top_k, compute_parts)
        sample.note = (
            f"{len(memory.numeric)} numeric features {compute_parts['numeric']:.2f} s + "
            f"{len(memory.categorical)} categorical {compute_parts['categorical']:.2f} s"
        )
        steps["compute"].samples.append(sample)
        _say(f"  compute {sample.seconds:.1f} s ({sample.note})")
        del data
        gc.collect()

        agreement = compare(sql, memory)
        for what, difference in agreement.max_diff.items():
            worst[what] = max(worst.get(what, 0.0), difference)
        if agreement.problems:
            _say("warehouse and in-memory results DISAGREE:")
            for problem in agreement.problems:
                _say(f"  {problem}")
            _say(f"workdir kept for inspection: {workdir}")
            return 1
        _say("  results agree")

    median = {key: step.median() for key, step in steps.items()}
    in_memory = median["read"] + median["compute"]
    ratios = [
        Step(
            "ratio: warehouse SQL / in-memory compute",
            [Sample(median["sql"] / median["compute"], note="SQL includes the JSON extraction")],
        ),
        Step(
            "ratio: warehouse statistics SQL / in-memory compute",
            [
                Sample(
                    median["statistics"] / median["compute"],
                    note="the statistics only, both sides (from typed values / typed arrays)",
                )
            ],
        ),
        Step(
            "ratio: daily drift stage SQL / in-memory read + compute",
            [
                Sample(
                    median["daily_sql"] / in_memory,
                    note="parse the new day + statistics vs a notebook reading both days",
                )
            ],
        ),
        Step(
            "ratio: daily drift stage dbt wall / in-memory read + compute",
            [Sample(median["daily_wall"] / in_memory, note="with dbt's start-up and parse")],
        ),
        Step(
            "ratio: warehouse SQL + Python stage / in-memory compute",
            [Sample((median["sql"] + median["python"]) / median["compute"], note="with p-values")],
        ),
        Step(
            "ratio: dbt wall / in-memory read + compute",
            [Sample(median["wall"] / in_memory, note="end to end from the stored JSON text")],
        ),
        Step(
            "ratio: dbt wall + Python stage / in-memory read + compute",
            [
                Sample(
                    (median["wall"] + median["python"]) / in_memory,
                    note="the flow's drift work vs a notebook's",
                )
            ],
        ),
    ]
    for ratio in ratios:
        ratio.is_ratio = True
    for model in DRIFT_MODELS:
        for sample in steps[model].samples:
            sample.note = f"{row_counts.get(model, 0):,} rows"
    versions = list(dict.fromkeys(fingerprints))
    same_sql = (
        f"the drift models' compiled SQL was the same in every repeat ({versions[0]})"
        if len(versions) == 1
        else f"WARNING: the models' SQL changed between repeats ({', '.join(fingerprints)}): "
        "the project was edited during the run, so the medians mix versions (each version is in "
        "<workdir>/logs/sql-<hash>/)"
    )
    footer = [
        same_sql,
        setup_line,
        f"load average (1, 5, 15 min) at end: {_load()}",
        "agreement (every repeat): counts and contingency tables equal; max |difference| "
        + ", ".join(f"{key} {value:.1e}" for key, value in worst.items())
        + f" (tolerance {STAT_TOLERANCE:g}, relative above 1; p-values {P_TOLERANCE:g})",
        "label: no feedback was loaded, so the drift marts have no label rows and no "
        "label feature; it is not compared.",
        f"dbt logs and run_results per repeat: {workdir / 'logs'}"
        + ("" if args.keep else " (deleted: pass --keep)"),
    ]
    _say(f"load average at end: {_load()}")
    print(render([*steps.values(), *ratios], header, footer, args.repeat))
    if not args.keep:
        shutil.rmtree(workdir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
