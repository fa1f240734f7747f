"""Prefect flows of feedback_flywheel: one ``@flow`` per module, composing the capabilities'
functions as tasks. Only this package imports Prefect.

Importing it sets the project's Prefect defaults (``PREFECT_HOME`` inside the project, telemetry
off) before any flow module imports prefect.
"""

from flows import prefect_env as _prefect_env

_prefect_env.configure()
