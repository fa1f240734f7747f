"""The ``ml`` tables of the sampling-policy evaluation (:mod:`feedback_flywheel.calibration`).

Each batch evaluates the query policies offline on the model's last labelled batches: the
label-efficiency curve of every policy (``sampling_policy_curves``) and its area and gain over
random (``sampling_policy_scores``), with the round of the Exp3 bandit over the policies
(:mod:`feedback_flywheel.calibration.bandit`) beside each score. The mart
``fct_sampling_policy_scores`` chooses from them by a documented rule (or the bandit's draw); the
next batch's ``fct_training_sample`` reads the choice.
"""

from __future__ import annotations

from feedback_flywheel.warehouse.ml_table import MlTable
from feedback_flywheel.warehouse.ml_table import col as _c

BATCH_ID = "The batch whose evaluation wrote the row (b<watermark as YYYYMMDDTHHMMSS>)."
POLICY = "The query policy: random, stratified, least_confidence, margin, entropy or mix."
_EVALUATED = (
    _c("first_train_batch_id", "varchar", "The first pair's pool batch (t).", False),
    _c("last_test_batch_id", "varchar", "The last pair's test batch (t+1).", False),
    _c("pairs", "integer", "Pairs of consecutive batches (t, t+1) averaged over.", False),
    _c("seeds", "integer", "Seeds the interval is across.", False),
)

SAMPLING_POLICY_CURVES = MlTable(
    "sampling_policy_curves",
    "Label-efficiency curves: per batch, model, query policy and budget, the accuracy on batch "
    "t+1's labels of the built-in model trained on the policy's picks from the pool as of batch "
    "t, the mean over pairs and seeds with a 95% Student-t interval across seeds.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("model_name", "varchar", "Name of the model.", False),
        _c("policy", "varchar", POLICY, False),
        _c("budget", "integer", "Labelled rows the policy picks.", False),
        _c(
            "accuracy_mean", "double", "Mean accuracy across seeds (each a mean over pairs).", False
        ),
        _c("accuracy_lower", "double", "Lower bound of its 95% t interval (null: one seed)."),
        _c("accuracy_upper", "double", "Upper bound of its 95% t interval (null: one seed)."),
        _c(
            "picked_rows", "integer", "Rows picked (fewer than the budget when the pool is).", False
        ),
        *_EVALUATED,
        _c("computed_at", "timestamp", "When the row was written (UTC).", False),
    ),
    primary_key=("batch_id", "model_name", "policy", "budget"),
    loaded_at_field="computed_at",
)

SAMPLING_POLICY_SCORES = MlTable(
    "sampling_policy_scores",
    "Per batch, model and query policy: the area under its label-efficiency curve (AULC: mean "
    "accuracy over the budgets, trapezoid) and its gain over random on the same seeds, each with "
    "a 95% Student-t interval across seeds.",
    (
        _c("batch_id", "varchar", BATCH_ID, False),
        _c("model_name", "varchar", "Name of the model.", False),
        _c("policy", "varchar", POLICY, False),
        _c("aulc_mean", "double", "Mean AULC across seeds.", False),
        _c("aulc_lower", "double", "Lower bound of its 95% t interval (null: one seed)."),
        _c("aulc_upper", "double", "Upper bound of its 95% t interval (null: one seed)."),
        _c("gain_mean", "double", "Mean of AULC minus random's AULC, seed by seed.", False),
        _c("gain_lower", "double", "Lower bound of the gain's 95% t interval (null: one seed)."),
        _c("gain_upper", "double", "Upper bound of the gain's 95% t interval (null: one seed)."),
        *_EVALUATED,
        _c("exp3_log_weight", "double", "Exp3: the policy's log weight after this round (max 0)."),
        _c("exp3_probability", "double", "Exp3: the probability this round draws the policy."),
        _c(
            "exp3_reward",
            "double",
            "Exp3: the realised gain (this round's AULC) credited to the previous round's draw "
            "(null on every other row).",
        ),
        _c("is_exp3_draw", "boolean", "Exp3: whether this round drew the policy."),
        _c("exp3_gamma", "double", "Exp3: the exploration share the round used."),
        _c("computed_at", "timestamp", "When the row was written (UTC).", False),
    ),
    primary_key=("batch_id", "model_name", "policy"),
    loaded_at_field="computed_at",
)

CALIBRATION_TABLES = (SAMPLING_POLICY_CURVES, SAMPLING_POLICY_SCORES)
