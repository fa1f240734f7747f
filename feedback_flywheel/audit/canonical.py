"""The one text form of an audit payload: normalised to plain JSON types, keys sorted, no
whitespace — so equal content always gives the same text, and the same hash."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from datetime import UTC, date, datetime
from datetime import time as time_of_day
from decimal import Decimal
from typing import Any


def _normalise(value: Any) -> Any:
    """Turn a payload into plain JSON types, deterministically (see the module docstring)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return None if math.isnan(value) or math.isinf(value) else value
    if isinstance(value, Decimal):
        return _normalise(float(value)) if value != value.to_integral_value() else int(value)
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.isoformat()
    if isinstance(value, (date, time_of_day)):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(key): _normalise(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(item) for item in value]
    if isinstance(value, (set, frozenset)):
        return sorted((_normalise(item) for item in value), key=canonical_json)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _normalise(dataclasses.asdict(value))
    # numpy / pandas scalars, pandas NaT / NA, without importing them here.
    if type(value).__name__ in {"NaTType", "NAType"}:
        return None
    if hasattr(value, "to_pydatetime"):
        return _normalise(value.to_pydatetime())
    if hasattr(value, "item"):
        return _normalise(value.item())
    if hasattr(value, "tolist"):
        return _normalise(value.tolist())
    raise TypeError(
        f"audit payload value {value!r} of type {type(value).__name__} is not JSON-serialisable; "
        "pass numbers, strings, booleans, datetimes, lists or dicts"
    )


def canonical_json(value: Any) -> str:
    """The one text form of a payload: normalised, keys sorted, no whitespace."""
    return json.dumps(
        _normalise(value),
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
    )
