"""What every page shares: where the snapshot is, cached reads, and the "not published yet" note.

Reads are cached per (snapshot path, file identity): a new publication replaces the file (new
inode and mtime), so the next rerun reads the new copy, while reruns in between cost nothing.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
import streamlit as st

from feedback_flywheel.config import paths
from feedback_flywheel.dashboard import queries
from feedback_flywheel.publish import serving

CACHE_SECONDS = 600
# every ASCII punctuation character Markdown (and Streamlit's extensions: $ for LaTeX, : for
# emoji and icon shortcodes) might act on
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&\"'=^])")


def md(value: object) -> str:
    """A data value for a Markdown-rendering element (st.markdown, captions, labels, alerts):
    every Markdown and HTML special character backslash-escaped and newlines flattened, so a
    model name, segment value or reason from the logs is shown as the text it is and never
    becomes a link, an image that fetches a URL, a heading or HTML. Values shown on their own go
    through st.text, st.code or a dataframe instead."""
    text = " ".join(str(value).splitlines())
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def snapshot_path() -> Path:
    """``$FLYWHEEL_SERVING_DUCKDB`` (set by ``flywheel dashboard``, which runs this app in a
    process of its own), else next to the default warehouse."""
    environ = os.environ
    return paths.published_path(paths.database_path(environ, paths.project_dir(environ)), environ)


def _identity(path: Path) -> tuple[int, int]:
    stat = path.stat()
    return stat.st_ino, stat.st_mtime_ns


@st.cache_data(ttl=CACHE_SECONDS, show_spinner=False)
def _cached(
    name: str, _query: Callable[..., Any], path: str, identity: tuple[int, int], args: tuple
) -> Any:
    # `_query` is not hashed (leading underscore); its name is the cache key.
    with serving.open_snapshot(Path(path)) as con:
        return _query(con, *args)


def load(query: Callable[..., Any], *args: Any) -> Any:
    """``query(con, *args)`` — a function of :mod:`feedback_flywheel.dashboard.data` — on the
    published snapshot (cached until it is replaced)."""
    path = snapshot_path()
    return _cached(query.__name__, query, str(path), _identity(path), args)


def require_snapshot() -> Path:
    """Stop the page with instructions when no snapshot has been published yet."""
    path = snapshot_path()
    if not path.exists():
        st.error(
            f"No serving snapshot at `{path}` yet.\n\n"
            "The dashboard reads only the read-only copy the batch cycle publishes after each "
            "successful batch. Run a batch (`flywheel run`, or `make run` for the demo), or "
            "publish the warehouse you already have with `flywheel publish` "
            f"(set `{serving.SERVING_ENV}` to read a copy elsewhere)."
        )
        st.stop()
    return path


def snapshot_caption() -> None:
    """One line under each page title: which batch, when published."""
    info: pd.DataFrame = load(queries.snapshot_info)
    if info.empty:
        return
    first = info.iloc[0]
    st.caption(
        f"Snapshot of batch **{md(first.batch_id or 'n/a')}**, published "
        f"{pd.Timestamp(first.published_at):%Y-%m-%d %H:%M} UTC from {md(first.source_db)} "
        f"· {len(info)} tables"
    )


def page_header(title: str, lede: str) -> None:
    require_snapshot()
    st.title(title)
    snapshot_caption()
    st.markdown(lede)


def model_picker(key: str) -> str | None:
    """A model selector (hidden when there is only one model)."""
    names: list[str] = load(queries.model_names)
    if not names:
        return None
    if len(names) == 1:
        return names[0]
    return st.selectbox("Model", names, key=key)


def table(frame: pd.DataFrame, label: str = "Table") -> None:
    """The rows behind a chart, folded away under it."""
    with st.expander(f"{label} ({len(frame):,} rows)"):
        st.dataframe(frame, width="stretch", hide_index=True)
