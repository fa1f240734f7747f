"""Configuration: the dbt vars, the policy files, the paths, and the one :class:`Settings`
object a run loads once and passes to every stage. The lowest layer: it imports nothing else
from the package."""

from feedback_flywheel.config.file import ConfigFileError
from feedback_flywheel.config.policies import Policy, PolicyError, RewardPolicy, RewardPolicyError
from feedback_flywheel.config.replay_policy import ReplayPolicy, ReplayPolicyError
from feedback_flywheel.config.settings import Settings
from feedback_flywheel.config.vars import FlywheelVars, SettingsError, parse_overrides

__all__ = [
    "ConfigFileError",
    "FlywheelVars",
    "Policy",
    "PolicyError",
    "ReplayPolicy",
    "ReplayPolicyError",
    "RewardPolicy",
    "RewardPolicyError",
    "Settings",
    "SettingsError",
    "parse_overrides",
]
