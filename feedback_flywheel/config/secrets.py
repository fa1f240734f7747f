"""The run's secret: the key of the audit chain's HMAC and of the pseudonymisation of personal ids.

One secret, from ``$FLYWHEEL_SECRET_KEY`` (set it from your secret store in production), or — so a
demo or a laptop works without set-up — a key file beside the warehouse (``<warehouse>.secret``,
32 random bytes, created on first use with mode 0600, ignored by git). Two keys are derived from
it by HMAC-SHA256 with fixed labels, so the audit key never doubles as the pseudonymisation key:

- the **audit key** makes every ``ml.audit_log`` row hash an HMAC: a row forged or rewritten
  without the key does not verify, even when its hash was computed correctly by the unkeyed rule;
- the **pseudonym key** turns ``subject_id`` (and any column configured as personal) into a keyed
  hash in staging, before any mart sees it; without the key the raw id cannot be recomputed.

Whoever can read the key file can forge the chain: keep the warehouse's folder private, or set
``FLYWHEEL_SECRET_KEY`` and do not keep the key on the machine that holds the data.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

SECRET_ENV = "FLYWHEEL_SECRET_KEY"
MIN_SECRET_LENGTH = 16


class SecretError(ValueError):
    """The secret is unusable (too short, or its file unreadable); the message says what to do."""


@dataclass(frozen=True)
class Secret:
    """The run's secret (never printed: its repr shows only where it came from)."""

    source: str
    value: bytes = field(repr=False)

    def _derive(self, label: str) -> bytes:
        return hmac.new(self.value, label.encode(), hashlib.sha256).digest()

    @property
    def audit_key(self) -> bytes:
        """The key of the audit chain's HMAC-SHA256."""
        return self._derive("feedback_flywheel audit chain v1")

    @property
    def pseudonym_key(self) -> str:
        """The key of the pseudonymisation hash, as hex text (it travels to dbt)."""
        return self._derive("feedback_flywheel pseudonyms v1").hex()


def secret_path(db_path: Path) -> Path:
    """``<warehouse>.secret`` beside the warehouse file."""
    db_path = Path(db_path).resolve()
    return db_path.with_name(db_path.name + ".secret")


def load_secret(environ: Mapping[str, str], db_path: Path) -> Secret:
    """``$FLYWHEEL_SECRET_KEY`` if set, else the key file beside ``db_path`` (created when
    missing)."""
    configured = environ.get(SECRET_ENV)
    if configured is not None:
        if len(configured) < MIN_SECRET_LENGTH:
            raise SecretError(
                f"{SECRET_ENV} is too short ({len(configured)} characters): use at least "
                f"{MIN_SECRET_LENGTH}, e.g. the output of `openssl rand -hex 32`"
            )
        return Secret(f"environment {SECRET_ENV}", configured.encode())
    path = secret_path(db_path)
    try:
        return Secret(f"key file {path}", bytes.fromhex(path.read_text().strip()))
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as error:
        raise SecretError(
            f"cannot read the key file {path} ({error}); restore it from your backup, or set "
            f"{SECRET_ENV}"
        ) from None
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_bytes(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process created it a moment ago: use that one
        return Secret(f"key file {path}", bytes.fromhex(path.read_text().strip()))
    with os.fdopen(descriptor, "w") as handle:
        handle.write(value.hex() + "\n")
    return Secret(f"key file {path} (created)", value)
