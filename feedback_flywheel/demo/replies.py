"""The suggested replies (``output_text``) and their hidden quality.

A reply is composed from a few optional parts (greeting, apology, a core phrase for the predicted
label, escalation, help-center link, closing), so every possible text can be enumerated once and
a reply is just a code into that vocabulary. The latent quality is linear in the text's features
(``QUALITY_WEIGHTS``) plus noise and the model version's offset; the preference judgments are
drawn from it and the warehouse's Bradley–Terry fit should recover the weights.
"""

from __future__ import annotations

import numpy as np

from feedback_flywheel.demo.constants import (
    APOLOGIES,
    CLOSINGS,
    CORE_PHRASES,
    ESCALATIONS,
    GREETINGS,
    HELP_LINKS,
    LABELS,
    QUALITY_FEATURES,
    QUALITY_NOISE_SD,
    QUALITY_WEIGHTS,
    TEXT_PART_PROBS,
    VERSION_QUALITY_OFFSET,
)
from feedback_flywheel.demo.draws import pick


def text_vocabulary() -> tuple[list[str], np.ndarray]:
    """Every reply output_text can be, and the quality features of each.

    Index = ((((((label * 3 + greeting) * 2 + apology) * 2 + core) * 2 + escalation) * 2 + help)
    * 3 + closing). Returns (texts, features[n_texts, len(QUALITY_FEATURES)]).
    """
    texts: list[str] = []
    features: list[list[float]] = []
    for label in LABELS:
        for greeting in GREETINGS:
            for apology in APOLOGIES:
                for core in CORE_PHRASES[label]:
                    for escalation in ESCALATIONS:
                        for help_link in HELP_LINKS:
                            for closing in CLOSINGS:
                                text = greeting + apology + core + escalation + help_link + closing
                                texts.append(text)
                                features.append(
                                    _features(text, apology, escalation, help_link, closing)
                                )
    return texts, np.array(features)


def _features(
    text: str, apology: str, escalation: str, help_link: str, closing: str
) -> list[float]:
    """The QUALITY_FEATURES of one composed reply, in their declared order."""
    return [
        float(len(text.split())),
        float(bool(apology)),
        float(bool(escalation)),
        float(bool(help_link)),
        float(closing == "Thanks."),
    ]


def draw_replies(
    rng: np.random.Generator, predicted: np.ndarray, version: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Draw each row's reply for its predicted label, and the reply's latent quality.

    Returns (text code into :func:`text_vocabulary`, quality).
    """
    n = len(predicted)
    _, text_features = text_vocabulary()
    part_codes = [pick(rng, TEXT_PART_PROBS[part], n).astype(np.int64) for part in TEXT_PART_PROBS]
    greeting, apology, core, escalation, help_link, closing = part_codes
    text_code = predicted.astype(np.int64)
    for code, size in ((greeting, 3), (apology, 2), (core, 2), (escalation, 2), (help_link, 2)):
        text_code = text_code * size + code
    text_code = text_code * 3 + closing
    weights = np.array([QUALITY_WEIGHTS[name] for name in QUALITY_FEATURES])
    quality = (
        QUALITY_WEIGHTS["intercept"]
        + text_features[text_code] @ weights
        + rng.normal(0.0, QUALITY_NOISE_SD, n)
        + np.where(version == 1, VERSION_QUALITY_OFFSET["v2"], VERSION_QUALITY_OFFSET["v1"])
    )
    return text_code, quality
