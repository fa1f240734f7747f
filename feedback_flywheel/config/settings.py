"""The settings of one run, loaded once and passed explicitly.

A run is configured by the dbt vars (``dbt_project.yml``, overridden by ``--var``), the two policy
files (retraining and reward) and a handful of environment variables (where the warehouse and its
serving copy live, which dbt target to build). :meth:`Settings.load` reads all of them once, at
the edge (the CLI, a flow's entry point, a test), validates them, and returns one immutable
object that every stage receives as an argument; nothing deeper reads the environment or a file
to find its configuration again.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any

from feedback_flywheel.config import file as config_file
from feedback_flywheel.config import paths
from feedback_flywheel.config.policies import (
    Policy,
    RewardPolicy,
    default_policy_path,
    default_reward_policy_path,
    load_policy,
    load_reward_policy,
)
from feedback_flywheel.config.replay_policy import (
    ReplayPolicy,
    default_replay_policy_path,
    load_replay_policy,
)
from feedback_flywheel.config.secrets import SECRET_ENV, Secret, load_secret
from feedback_flywheel.config.vars import BATCH_VARS, FlywheelVars, load_vars

DEFAULT_TARGET = "dev"


@dataclass(frozen=True)
class Settings:
    """Everything a run is configured with (see the module docstring)."""

    project_dir: Path
    db_path: Path
    serving_path: Path
    target: str
    vars: FlywheelVars
    retraining_policy: Policy
    reward_policy: RewardPolicy
    replay_policy: ReplayPolicy
    #: the ``--var`` overrides as given (dbt receives them, merged with the project's vars)
    overrides: dict[str, Any] = field(default_factory=dict)
    #: the warehouse's configuration file (:mod:`.file`); its vars sit between the project's
    #: defaults and the overrides
    config: config_file.ConfigFile | None = None
    #: ``$FLYWHEEL_SECRET_KEY`` as read at load time (None: the key file beside the warehouse)
    secret_key: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def load(
        cls,
        *,
        db_path: Path | str | None = None,
        serving_path: Path | str | None = None,
        overrides: Mapping[str, Any] | None = None,
        policy_path: Path | str | None = None,
        reward_policy_path: Path | str | None = None,
        replay_policy_path: Path | str | None = None,
        config_path: Path | str | None = None,
        environ: Mapping[str, str] | None = None,
    ) -> Settings:
        """Read and validate the configuration of a run. Explicit arguments win over the
        environment (``FLYWHEEL_DUCKDB``, ``FLYWHEEL_SERVING_DUCKDB``, ``FLYWHEEL_TARGET``,
        ``FLYWHEEL_PROJECT_DIR``, ``FLYWHEEL_SECRET_KEY``), which wins over the defaults. Raises
        ``SettingsError``, ``PolicyError``, ``RewardPolicyError``, ``ReplayPolicyError`` or
        ``ConfigFileError`` naming the key and what is allowed. The vars are the project's
        defaults, then the configuration file (``config_path``, else :func:`.file.locate`), then
        ``overrides``."""
        environ = os.environ if environ is None else environ
        project = paths.project_dir(environ)
        database = (
            Path(db_path).expanduser().resolve()
            if db_path
            else paths.database_path(environ, project)
        )
        serving = (
            Path(serving_path).expanduser().resolve()
            if serving_path
            else paths.published_path(database, environ)
        )
        overrides = dict(overrides or {})
        config = config_file.read(
            Path(config_path).expanduser().resolve()
            if config_path
            else config_file.locate(environ, database)
        )
        return cls(
            project_dir=project,
            db_path=database,
            serving_path=serving,
            target=environ.get("FLYWHEEL_TARGET") or DEFAULT_TARGET,
            vars=load_vars(project, {**config.vars, **overrides}, source=config.path),
            retraining_policy=load_policy(
                Path(policy_path) if policy_path else default_policy_path(project)
            ),
            reward_policy=load_reward_policy(
                Path(reward_policy_path)
                if reward_policy_path
                else default_reward_policy_path(project)
            ),
            replay_policy=load_replay_policy(
                Path(replay_policy_path)
                if replay_policy_path
                else default_replay_policy_path(project)
            ),
            overrides=overrides,
            config=config,
            secret_key=environ.get(SECRET_ENV),
        )

    @cached_property
    def secret(self) -> Secret:
        """The run's secret (``$FLYWHEEL_SECRET_KEY``, else the key file beside the warehouse,
        created on first use): the audit chain's HMAC key and the pseudonymisation key."""
        environ = {} if self.secret_key is None else {SECRET_ENV: self.secret_key}
        return load_secret(environ, self.db_path)

    def with_db(self, db_path: Path) -> Settings:
        """The same settings for another warehouse (its serving copy beside it)."""
        db_path = Path(db_path).resolve()
        return replace(self, db_path=db_path, serving_path=paths.serving_path_beside(db_path))

    def event_types(self) -> tuple[str, ...]:
        """The feedback event types the project knows (``seeds/feedback_event_types.csv``)."""
        with (self.project_dir / "seeds" / "feedback_event_types.csv").open() as handle:
            return tuple(row["event_type"] for row in csv.DictReader(handle))

    def reload(self, config_path: Path | None = None) -> Settings:
        """The same run's settings with its configuration file read again (after discovery
        wrote it), keeping the explicit paths and overrides."""
        path = config_path or (
            self.config.path if self.config else config_file.beside(self.db_path)
        )
        config = config_file.read(path)
        return replace(
            self,
            vars=load_vars(self.project_dir, {**config.vars, **self.overrides}, source=config.path),
            config=config,
        )

    def dbt_vars(self) -> dict[str, Any]:
        """The vars dbt receives on the command line (the batch window travels separately, as
        environment variables of the dbt process, so dbt keeps its partial parse)."""
        return {
            name: value for name, value in self.vars.dbt_vars().items() if name not in BATCH_VARS
        }
