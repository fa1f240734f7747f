"""Discovery: what a warehouse's own logs contain, turned into its configuration.

:mod:`.profile` reads the keys of every inference's ``inputs`` and ``context`` from the report
``marts.rpt_payload_keys``; :mod:`.propose` turns them into the monitored features and segment
attributes by documented rules and writes them into the warehouse's configuration file, which
the user can then edit or pin (``flywheel config discover`` / ``show``)."""
