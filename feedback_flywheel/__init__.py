"""feedback_flywheel: batch feedback processing for continuous model learning.

The warehouse (dbt models under ``models/``) does the heavy lifting; this package holds the code the
flows and the ``flywheel`` command call: the raw input contract, ingest, the demo world and the
batch
bookkeeping.
"""

__version__ = "0.1.0"

# Prefect reads PREFECT_HOME when it loads: set the project's defaults before anything imports it.
from feedback_flywheel import prefect_env as _prefect_env

_prefect_env.configure()
