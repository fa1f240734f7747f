"""The reward model: a batched Bradley–Terry model trained on the preference pairs dbt curates,
promoted only when it beats the current version, scoring new outputs (:mod:`.stage`)."""
