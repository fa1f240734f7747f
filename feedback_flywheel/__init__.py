"""feedback_flywheel: batch feedback processing for continuous model learning.

The warehouse (dbt models under ``models/``) does the heavy lifting; this package holds the code the
flows and the ``flywheel`` command call: the raw input contract, ingest, the demo world and the
batch
bookkeeping.
"""

__version__ = "0.1.0"
