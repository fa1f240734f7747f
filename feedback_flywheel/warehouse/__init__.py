"""The warehouse: connecting to it, the one schema of every table Python owns, the raw input
contract, the relation catalogue Python reads through, and running dbt. Above ``config`` only."""

from feedback_flywheel.warehouse.connection import WarehouseMissing, WarehouseUnavailable, connect
from feedback_flywheel.warehouse.schema import init_warehouse

__all__ = ["WarehouseMissing", "WarehouseUnavailable", "connect", "init_warehouse"]
