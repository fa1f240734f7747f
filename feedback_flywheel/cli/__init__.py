"""The ``flywheel`` command: one module per command group (as Prefect's own CLI is laid out).

- :mod:`.data`: ``init``, ``contract``, ``demo-data``, ``ingest``
- :mod:`.run`: ``run``, ``demo``, ``serve``
- :mod:`.reports`: ``summary``, ``batches``, ``decisions``, ``drift``, ``dataset``
- :mod:`.backtest`: ``backtest``
- :mod:`.audit`: ``audit verify``, ``audit trace``
- :mod:`.config`: ``config show``, ``config discover``
- :mod:`.dashboard`: ``dashboard``, ``publish``
- :mod:`.docs`: ``docs``
- :mod:`.check`: ``check``
- :mod:`.reward`: ``reward status``, ``reward leaderboard``
- :mod:`.replay`: ``replay status``, ``replay sample``, ``replay priorities``, ``replay verify``

Nothing imports this package; it imports the flows and the capabilities, never SQL of its own.
"""

from feedback_flywheel.cli import (  # noqa: F401  (each module registers its commands)
    audit,
    backtest,
    check,
    config,
    dashboard,
    data,
    docs,
    replay,
    reports,
    reward,
    run,
)
from feedback_flywheel.cli.app import main

__all__ = ["main"]

if __name__ == "__main__":
    main()
