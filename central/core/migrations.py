"""Central's schema, assembled from the packages that own its tables.

Each feature package declares its tables and the steps that build them in its own
``schema.py`` (``TABLES``, ``STEPS``). The database has one schema version (SQLite's
``user_version``), so the steps keep one global numbering: version *n* is every package's
step *n*, applied in one transaction. A version that touched several packages' tables
(before the packages existed) is split into parts, ordered by ``part``, so that the
statements run in exactly the order they always did and a database built today is the
one built before the split (``tests/central/core/test_schema.py``).

A new migration goes in the package that owns the table, as ``Step(<next version>, ...)``;
a change that spans packages gives each package's piece the same version and its own part.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Step:
    """One package's share of one schema version: SQL statements, run in order."""

    version: int
    sql: str
    part: int = 1
    """Where this share runs among the version's shares (1, 2, …)."""
    postgres: str = ""
    """Statements run on PostgreSQL only, after ``sql``'s (translated): what SQLite has no word for,
    such as a table's storage parameters or dropping the ``rowid`` column emulated there."""


def assemble(schemas: Iterable[ModuleType], *, postgres: bool = False) -> list[str]:
    """The migrations, one script per version, from each package's ``STEPS`` (with their
    PostgreSQL-only statements when ``postgres``).

    Refuses a gap in the versions or in a version's parts, and two shares in one place:
    either would make the order in which statements run a matter of chance."""
    steps: dict[tuple[int, int], tuple[str, Step]] = {}
    for schema in schemas:
        for step in schema.STEPS:
            place = (step.version, step.part)
            if place in steps:
                raise ValueError(
                    f"schema v{step.version} part {step.part} is declared by both "
                    f"{steps[place][0]} and {schema.__name__}"
                )
            steps[place] = (schema.__name__, step)
    versions: dict[int, list[int]] = {}
    for version, part in sorted(steps):
        versions.setdefault(version, []).append(part)
    if list(versions) != list(range(1, len(versions) + 1)):
        raise ValueError(f"schema versions must run 1, 2, … without a gap: {list(versions)}")
    for version, parts in versions.items():
        if parts != list(range(1, len(parts) + 1)):
            raise ValueError(f"schema v{version}'s parts must run 1, 2, … without a gap: {parts}")
    return [
        "\n".join(
            text
            for part in parts
            for text in (steps[version, part][1].sql, steps[version, part][1].postgres if postgres else "")
            if text
        )
        for version, parts in versions.items()
    ]


def owners(schemas: Iterable[ModuleType]) -> dict[str, str]:
    """{table: the package that owns it}, from each package's ``TABLES``."""
    owned: dict[str, str] = {}
    for schema in schemas:
        package = schema.__name__.rsplit(".", 1)[0]
        for table in schema.TABLES:
            if table in owned:
                raise ValueError(f"table {table} is claimed by both {owned[table]} and {package}")
            owned[table] = package
    return owned
