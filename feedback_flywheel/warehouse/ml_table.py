"""What an ``ml`` table declaration is: its columns with their types and meaning, its primary key,
when a row was written (freshness), and whether the serving copy publishes it."""

from __future__ import annotations

from dataclasses import dataclass

ML_SCHEMA = "ml"


@dataclass(frozen=True)
class MlColumn:
    """One column of an ``ml`` table."""

    name: str
    type: str
    description: str
    nullable: bool = True


@dataclass(frozen=True)
class MlTable:
    """One table the Python stage writes."""

    name: str
    description: str
    columns: tuple[MlColumn, ...]
    primary_key: tuple[str, ...] = ()
    #: the column that says when a row was written (dbt source freshness)
    loaded_at_field: str | None = None
    #: copied into the serving snapshot the dashboard reads (small tables only)
    published: bool = True

    @property
    def qualified(self) -> str:
        return f"{ML_SCHEMA}.{self.name}"

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)

    def ddl(self) -> str:
        """``create table if not exists`` for this table."""
        lines = [
            f"    {column.name} {column.type}" + ("" if column.nullable else " not null")
            for column in self.columns
        ]
        if self.primary_key:
            lines.append(f"    primary key ({', '.join(self.primary_key)})")
        body = ",\n".join(lines)
        return f"create table if not exists {self.qualified} (\n{body}\n)"


def col(name: str, type_: str, description: str, nullable: bool = True) -> MlColumn:
    return MlColumn(name, type_, description, nullable)
