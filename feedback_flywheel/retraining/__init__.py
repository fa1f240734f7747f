"""The retraining trigger: drift tests (:mod:`.drift`) and performance checks
(:mod:`.performance`) over the warehouse's summaries, the statistics they share (:mod:`.stats`),
the decision (:mod:`.decision`), and the built-in trainer (:mod:`.trainer` with its
:mod:`.features`, :mod:`.logistic` model and :mod:`.evaluation`; its reads and writes in
:mod:`.training_store`)."""
