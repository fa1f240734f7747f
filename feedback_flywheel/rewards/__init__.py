"""The reward model: a batched Bradley–Terry model trained on the preference pairs dbt curates,
promoted only when it beats the current version, scoring new outputs.

- :mod:`.stage`: one batch of the reward stage (``run_batch``) and the promotion rule;
- :mod:`.bradley_terry`: the likelihood, its gradient and the penalised fit (numpy / scipy);
- :mod:`.model`: the reward model itself, the hash of a scored input, held-out pair metrics;
- :mod:`.training`: training a candidate, the echo cap, the validation pairs;
- :mod:`.leaderboard`: the item-level fit ranking model versions, with bootstrap intervals;
- :mod:`.store`: every read and write of the warehouse.
"""
