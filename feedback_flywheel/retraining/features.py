"""Features of the built-in trainer: how ``features_json`` becomes a numeric matrix.

**Features** (:func:`learn_features`, learned on the training part only, applied to both parts):

* ``features_json`` is a JSON object per row (the inputs the model saw).
* A key is *numeric* when every non-null value it has in the training part is a JSON number or
  boolean (booleans count as 0/1). Missing values (key absent, ``null``, NaN, or a non-numeric
  value at scoring time) are replaced by the training mean; then the column is standardised with
  the training mean and standard deviation (a constant column is only centred), so the L2 penalty
  treats every numeric feature alike.
* Every other key is *categorical*: its values as text, one-hot over the categories seen in
  training (at most ``max_categories`` per key, the most frequent, ties by name). A missing or
  unseen category is all zeros for that key (the intercept carries the base rate). No category is
  dropped: the L2 penalty makes the full one-hot identifiable.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

DEFAULT_MAX_CATEGORIES = 50


def parse_features(features_json: Iterable[str | None]) -> list[dict[str, Any]]:
    """One dict per row from JSON-object text; null, invalid JSON or a non-object is ``{}``."""
    records: list[dict[str, Any]] = []
    for text in features_json:
        try:
            value = json.loads(text) if isinstance(text, str) else None
        except ValueError:
            value = None
        records.append(value if isinstance(value, dict) else {})
    return records


def _as_number(value: Any) -> float | None:
    """A JSON number or boolean as a finite float; anything else (text, null, NaN) is None."""
    if isinstance(value, bool | int | float):
        number = float(value)
        return number if math.isfinite(number) else None
    return None


def _as_category(value: Any) -> str | None:
    """A value as category text (nested values as compact JSON); null is None."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, separators=(",", ":"))
    return str(value)


@dataclass(frozen=True)
class FeatureSpec:
    """How ``features_json`` becomes a numeric matrix; learned on training rows only.

    ``numeric`` are (key, mean, scale) triples: value -> (value or mean - mean) / scale.
    ``categorical`` are (key, categories) pairs: one 0/1 column per category.
    """

    numeric: tuple[tuple[str, float, float], ...]
    categorical: tuple[tuple[str, tuple[str, ...]], ...]

    @property
    def feature_names(self) -> list[str]:
        """Column names: numeric keys, then ``key=category`` for every one-hot column."""
        names = [key for key, _, _ in self.numeric]
        for key, categories in self.categorical:
            names.extend(f"{key}={category}" for category in categories)
        return names

    def transform(self, records: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """The (rows x features) float matrix of ``records`` (dicts from :func:`parse_features`)."""
        matrix = np.zeros((len(records), len(self.feature_names)), dtype=np.float64)
        for column, (key, mean, scale) in enumerate(self.numeric):
            values = [_as_number(record.get(key)) for record in records]
            matrix[:, column] = [
                ((mean if value is None else value) - mean) / scale for value in values
            ]
        column = len(self.numeric)
        for key, categories in self.categorical:
            position = {category: index for index, category in enumerate(categories)}
            for row, record in enumerate(records):
                index = position.get(_as_category(record.get(key)))
                if index is not None:
                    matrix[row, column + index] = 1.0
            column += len(categories)
        return matrix

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description (for ``parameters_json``)."""
        return {
            "numeric": [
                {"key": key, "mean": mean, "scale": scale} for key, mean, scale in self.numeric
            ],
            "categorical": [
                {"key": key, "categories": list(categories)} for key, categories in self.categorical
            ],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FeatureSpec:
        """The inverse of :meth:`to_dict`."""
        return cls(
            numeric=tuple(
                (item["key"], float(item["mean"]), float(item["scale"])) for item in data["numeric"]
            ),
            categorical=tuple(
                (item["key"], tuple(item["categories"])) for item in data["categorical"]
            ),
        )


def learn_features(
    records: Sequence[Mapping[str, Any]], *, max_categories: int = DEFAULT_MAX_CATEGORIES
) -> FeatureSpec:
    """Learn the feature encoding from training rows (see the module docstring for the rules).

    Keys are taken in sorted order so the columns do not depend on row order; a key whose values
    are all null in training is left out.
    """
    if max_categories < 1:
        raise ValueError(f"max_categories must be at least 1; got {max_categories}")
    keys = sorted({key for record in records for key in record})
    numeric: list[tuple[str, float, float]] = []
    categorical: list[tuple[str, tuple[str, ...]]] = []
    for key in keys:
        present = [record[key] for record in records if record.get(key) is not None]
        if not present:
            continue
        numbers = [_as_number(value) for value in present]
        if all(isinstance(value, bool | int | float) for value in present):
            finite = np.array([number for number in numbers if number is not None])
            if finite.size == 0:
                continue
            mean = float(finite.mean())
            # Standard deviation after imputation (the imputed values sit at the mean).
            spread = float(np.sqrt(((finite - mean) ** 2).sum() / len(records)))
            numeric.append((key, mean, spread if spread > 0 else 1.0))
        else:
            counts = Counter(_as_category(value) for value in present)
            ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            kept = sorted(str(category) for category, _ in ranked[:max_categories])
            categorical.append((key, tuple(kept)))
    return FeatureSpec(tuple(numeric), tuple(categorical))
