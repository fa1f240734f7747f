"""The dbt docs site of the warehouse: every model, source, test and exposure with its lineage
and column docs, generated from the project and the warehouse's catalog (``dbt docs
generate``), into a folder of its own so it never disturbs a build's artifacts."""

from __future__ import annotations

import shutil
from pathlib import Path

from feedback_flywheel.config import Settings
from feedback_flywheel.warehouse.dbt import run_dbt, target_dir

#: what a docs site needs besides index.html (the static page embeds them too)
SITE_FILES = ("index.html", "manifest.json", "catalog.json", "static_index.html")


def generate(settings: Settings, out_dir: Path | None = None) -> Path:
    """Generate the site; returns the folder holding ``index.html`` (and a self-contained
    ``static_index.html`` that opens without a server)."""
    target = target_dir(settings.project_dir) / "docs"
    run_dbt(
        ["docs", "generate", "--static", "--quiet"],
        project_dir=settings.project_dir,
        db_path=settings.db_path,
        target=settings.target,
        dbt_vars=settings.dbt_vars(),
        target_path=target,
    )
    if out_dir is None:
        return target
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in SITE_FILES:
        if (target / name).exists():
            shutil.copyfile(target / name, out_dir / name)
    return out_dir
