"""Curation: the Incremental Dataset and its training samples are dbt models
(``models/marts/curation``); this package rebuilds a dataset version's sample and proves it is
identical (:mod:`.datasets`, ``flywheel dataset verify``)."""
