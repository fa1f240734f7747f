"""The planted parameters of the demo world: every share, rate, accuracy and weight it draws from.

They live apart from the code that draws with them so a reader can see the whole world on one
page, and because :mod:`feedback_flywheel.demo.truth` copies most of them into ``truth.json``
(the warehouse's tests check it recovers them). Codes used by the generators (event types,
sources, clients, schema versions) are tuples whose index is the code.
"""

from __future__ import annotations

from datetime import date

import numpy as np

MODEL_NAME = "support_router"
LABELS: tuple[str, ...] = ("billing", "technical", "account")

US_PER_SECOND = 1_000_000
US_PER_MINUTE = 60 * US_PER_SECOND
US_PER_HOUR = 60 * US_PER_MINUTE
US_PER_DAY = 24 * US_PER_HOUR
EPOCH = date(1970, 1, 1)

# Segment attributes of a subject (fixed per subject), with a majority value each.
CONTEXT_SHARES: dict[str, dict[str, float]] = {
    "region": {"na": 0.50, "eu": 0.25, "apac": 0.15, "latam": 0.10},
    "device": {"web": 0.50, "ios": 0.30, "android": 0.20},
    "age_band": {"25-34": 0.40, "35-54": 0.30, "18-24": 0.20, "55+": 0.10},
    "language": {"en": 0.60, "es": 0.20, "de": 0.12, "fr": 0.08},
}
CHANNEL_SHARES_BEFORE: dict[str, float] = {"email": 0.50, "chat": 0.30, "phone": 0.20}
CHANNEL_SHARES_AFTER: dict[str, float] = {"email": 0.30, "chat": 0.55, "phone": 0.15}
PRODUCT_SHARES: dict[str, float] = {"basic": 0.55, "pro": 0.35, "enterprise": 0.10}
MESSAGE_LENGTH_MEDIAN = 220.0  # characters; lognormal with sigma 0.6 before drift
MESSAGE_LENGTH_SHIFT = 1.6  # multiplier on message_length from the covariate drift day on
MISSING_RESPONSE_TIME_RATE = 0.01  # share of inputs without the response_time_s key

# Generating accuracies: outside the biased segment, and the gap inside it.
ACCURACY: dict[str, float] = {"v1": 0.72, "v2": 0.84}
BIASED_ATTRIBUTE, BIASED_VALUE, BIASED_ACCURACY_GAP = "language", "de", 0.20
CONCEPT_DRIFT_ATTRIBUTE, CONCEPT_DRIFT_VALUE = "region", "latam"
CONCEPT_DRIFT_ROTATE_SHARE = 0.5  # share of the segment's rows whose true label rotates
# In a closed loop the change is one a model can learn from its inputs (the region is one of
# them there): this share of the segment's rows get this true label.
CLOSED_LOOP_RELABEL_SHARE = 0.9
CLOSED_LOOP_CONCEPT_LABEL = "account"
PROBABILITIES_NULL_RATE = 0.02

WEEKDAY_VOLUME_RATIO = 1.4  # inferences on a weekday / inferences on a weekend day
PAIR_TICKET_SHARE = 0.05  # share of tickets answered twice (preference pairs)
# From v2's deployment on, this share of the tickets answered twice get their second answer from
# v1 kept running in shadow (champion / challenger), so preferences compare the two versions.
SHADOW_PAIR_SHARE = 0.5
# Added to the latent quality of a version's replies: v2 writes better replies on average, which
# the item-level Bradley-Terry fit (the model-version leaderboard) should recover.
VERSION_QUALITY_OFFSET: dict[str, float] = {"v1": 0.0, "v2": 0.6}
SESSION_SHARE = 0.10  # share of inferences inside RL-style sessions
SESSION_STEPS = (2, 8)  # min / max steps of a session
SESSION_STEP_GAP_MINUTES = (1.0, 5.0)

# Feedback coverage (share of inferences, except correction: of labelled, retraction: of
# ratings + thumbs) and signal models.
FEEDBACK_RATES: dict[str, float] = {
    "label": 0.60,
    "correction": 0.03,
    "rating": 0.15,
    "thumbs": 0.10,
    "click": 0.40,
    "dwell_seconds": 0.20,
    "conversion": 0.05,
    "retraction": 0.01,
}
LABEL_DELAY_DAYS = (0.0, 10.0)
CORRECTION_DELAY_DAYS = (1.0, 5.0)
P_CLICK = {"correct": 0.70, "wrong": 0.25}
P_THUMBS_UP = {"correct": 0.85, "wrong": 0.30}
P_CONVERSION = {"correct": 0.30, "wrong": 0.08}
RATING_PROBS = {
    "correct": (0.03, 0.07, 0.15, 0.35, 0.40),
    "wrong": (0.35, 0.30, 0.20, 0.10, 0.05),
}
REWARD_MEAN = {"correct": 0.6, "wrong": -0.4}
REWARD_SD = 0.3
SCHEMA_VERSION_1_1_SHARE = 0.3

# Bad feedback: share of the valid events injected per kind. The names are the warehouse's
# quarantine reason codes.
BAD_FEEDBACK_RATES: dict[str, float] = {
    "malformed_payload": 0.005,
    "unknown_inference_id": 0.005,
    "duplicate_event_id": 0.005,
    "value_out_of_range": 0.005,
    "occurred_before_inference": 0.005,
    "occurred_in_future": 0.005,
    "unknown_event_type": 0.005,
    "unsupported_schema_version": 0.005,
}

# Event types as written; codes index this tuple. The last one is never valid.
EVENT_TYPES: tuple[str, ...] = (
    "label",
    "correction",
    "rating",
    "thumbs",
    "click",
    "dwell_seconds",
    "conversion",
    "reward",
    "retraction",
    "emoji_reaction",
)
T_LABEL, T_CORRECTION, T_RATING, T_THUMBS, T_CLICK, T_DWELL, T_CONVERSION = range(7)
T_REWARD, T_RETRACTION, T_UNKNOWN = 7, 8, 9
SCHEMA_VERSIONS: tuple[str, ...] = ("1.0", "1.1", "0.9", "2.0")  # the first two are supported
SOURCES: tuple[str, ...] = (
    "labeling_vendor",
    "annotation_tool",
    "web_client",
    "mobile_app",
    "environment",
)
CLIENTS: tuple[str, ...] = (
    "vendor-api/2.3",
    "annotator-ui/1.8",
    "web/4.2.0",
    "ios/5.1.2",
    "android/5.0.7",
    "session-sim/1.0",
)
UNKNOWN_INFERENCE_BASE = 900_000_000  # ids from here on never exist in inference_log

# Suggested replies: composed from parts; the latent quality is linear in their features.
GREETINGS = ("", "Hi there! ", "Hello. ")
APOLOGIES = ("", "Sorry for the trouble. ")
CORE_PHRASES: dict[str, tuple[str, str]] = {
    "billing": (
        "Your invoice question has been routed to Billing. ",
        "We are reviewing the charge on your account. ",
    ),
    "technical": (
        "Our technical team is looking into the issue. ",
        "Please try restarting the app and clearing the cache. ",
    ),
    "account": (
        "We can help you update your account settings. ",
        "Your account access request is being processed. ",
    ),
}
ESCALATIONS = ("", "I have escalated this to a specialist. ")
HELP_LINKS = ("", "You can find step-by-step guides in our help center. ")
CLOSINGS = ("Thanks.", "Let us know if anything else comes up.", "Best regards, the Support team.")
TEXT_PART_PROBS: dict[str, tuple[float, ...]] = {
    "greeting": (0.4, 0.3, 0.3),
    "apology": (0.6, 0.4),
    "core": (0.5, 0.5),
    "escalation": (0.7, 0.3),
    "help": (0.65, 0.35),
    "closing": (0.4, 0.3, 0.3),
}
QUALITY_FEATURES: dict[str, str] = {
    "n_words": "number of whitespace-separated words in output_text",
    "has_apology": "output_text contains 'Sorry for the trouble.'",
    "has_escalation": "output_text contains 'I have escalated this to a specialist.'",
    "has_help_center": "output_text contains 'help center'",
    "has_generic_closing": "output_text ends with 'Thanks.'",
}
QUALITY_WEIGHTS: dict[str, float] = {
    "intercept": 0.0,
    "n_words": 0.04,
    "has_apology": 0.6,
    "has_escalation": 0.9,
    "has_help_center": 0.5,
    "has_generic_closing": -0.4,
}
QUALITY_NOISE_SD = 0.3
TIE_THRESHOLD = 0.2  # |q_a - q_b| below this can be judged a tie ...
TIE_PROBABILITY = 0.5  # ... with this probability
POSITION_BIAS = 0.3  # logit added in favour of the first-shown output (a)
N_HUMAN_ANNOTATORS = 9
N_AI_JUDGES = 2  # humans + judges = 11, a prime, so distinct annotators per pair are easy
JUDGMENTS_PER_PAIR_PROBS = (0.7, 0.2, 0.1)  # 1, 2 or 3 judgments of the same pair

# True label model: softmax(W @ features) over LABELS; features listed in LABEL_FEATURES.
LABEL_FEATURES = (
    "intercept",
    "z_account_age",
    "z_message_length",
    "sentiment",
    "z_prior_tickets",
    "channel_chat",
    "channel_phone",
    "product_pro",
    "product_enterprise",
)
LABEL_WEIGHTS = np.array(
    [
        [0.2, 0.3, -0.4, -0.6, 0.0, -0.3, 0.2, 0.8, 1.2],  # billing
        [0.0, 0.0, 1.0, -0.2, 0.4, 0.6, -0.2, 0.3, 0.2],  # technical
        [0.1, -0.9, -0.3, 0.0, 0.5, -0.2, 0.6, -0.3, -0.4],  # account
    ]
)
LABEL_TEMPERATURE = 1.5
