"""One owner per table: each package writes only the tables its ``schema.py`` declares.

Every SQL string in a package's source (docstrings aside) is scanned for the statements that
write a table (INSERT, REPLACE, UPDATE, DELETE, CREATE, ALTER, DROP). Another package's table
is written by calling the owner's functions, never by its SQL. Reads of another package's
tables are allowed only where listed in ``SHARED_READS``, each with its reason.
"""

import ast
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import central
from central.core import migrations
from central.core.store import MIGRATIONS, SCHEMAS
from fleet import sqlite

CENTRAL = Path(central.__file__).parent
PACKAGES = sorted(p.name for p in CENTRAL.iterdir() if (p / "__init__.py").exists())
OWNERS = {table: package.split(".")[-1] for table, package in migrations.owners(SCHEMAS).items()}
OWNERS["schema_version"] = "core"  # the version on PostgreSQL (SQLite's is its user_version), kept by the runner
EVER_OWNED = OWNERS | {table: s.__name__.split(".")[-2] for s in SCHEMAS for table in getattr(s, "DROPPED", ())}
"""With the tables a later step dropped: still their package's in the steps that made and used them."""

WRITE = re.compile(
    r"\b(?:INSERT(?:\s+OR\s+\w+)?\s+INTO|REPLACE\s+INTO|DELETE\s+FROM|ALTER\s+TABLE|DROP\s+TABLE(?:\s+IF\s+EXISTS)?"
    r"|CREATE\s+(?:TEMP(?:ORARY)?\s+)?TABLE(?:\s+IF\s+NOT\s+EXISTS)?"
    r"|CREATE\s+(?:UNIQUE\s+)?INDEX(?:\s+IF\s+NOT\s+EXISTS)?\s+\w+\s+ON)\s+(\w+)"
    r"|\bUPDATE\s+(\w+)\s+SET\b",
    re.IGNORECASE,
)
READ = re.compile(r"\b(?:FROM|JOIN)\s+(\w+)", re.IGNORECASE)

SHARED_READS = {
    "access": (
        {"devices", "officers", "clips", "attributions", "uploads", "holds", "conflicts", "keep_requests"},
        "borough scope is decided in one place (``scope.OwnerLookup``): one indexed lookup of the "
        "borough of each thing a route touches, on every scoped request",
    ),
    "evidence": (
        {"attributions", "officers", "stations", "devices"},
        "a hold covers the clips attributed to its officer: judged in the same statement as the "
        "deletion it stops (``holds.HELD``) and per retention batch; a station's borough for its "
        "``ClipHold``; the holds list's borough filter; a public request covers its borough's "
        "cameras' clips (``holds.REQUEST_HELD``, the same statement)",
    ),
    "rollout": (
        {"devices", "assignments", "officers", "device_history", "withdrawn_models"},
        "planning, checking a proposal and progress are set-based queries over the whole registry "
        "(one per rule, ~20,000 cameras), joined with the roll-out's own tables; a withdrawn model's "
        "cameras are never handed out (one rule of the check, ``swap.problems``)",
    ),
    "firmware": (
        {"devices", "assignments", "officers"},
        "a camera's effective profile is decided by its model, its borough and the role of the officer it "
        "is issued to: one indexed lookup by serial (``profiles.ProfileService.explain``)",
    ),
    "core": (
        {"uploads", "holds", "devices", "stations"},
        "the /metrics collector's aggregate counts at scrape time (``metrics.CentralCollector``): uploads "
        "under way and holds in force from their partial indexes, cameras and stations by borough",
    ),
    "registry": (
        {"ingest_claims"},
        "v34 moved the events package's waiting ingest claims into their clips' attribution rows, "
        "once, in the step that made the columns (the events package's step then dropped its table)",
    ),
    "web": (
        {"devices", "attributions", "clips", "clip_retention", "audit", "officers", "assignments"},
        "the dashboard's read-only counts and listings",
    ),
}
"""Reads of another package's tables left as SQL, by reading package, and why."""


def sql_strings(path: Path) -> Iterator[tuple[int, str]]:
    """(line, text) of each string literal in a module, f-strings with ``{}`` for their fields;
    docstrings (a string that is a statement of its own) are prose, not SQL."""
    tree = ast.parse(path.read_text(), str(path))
    prose = {id(n.value) for n in ast.walk(tree) if isinstance(n, ast.Expr)}
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    for node in ast.walk(tree):
        if id(node) in prose or id(node) in parts:
            continue
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            yield node.lineno, node.value
        elif isinstance(node, ast.JoinedStr):
            text = (v.value if isinstance(v, ast.Constant) and isinstance(v.value, str) else "{}" for v in node.values)
            yield node.lineno, "".join(text)


def statements(package: str, pattern: re.Pattern) -> Iterator[tuple[str, str]]:
    """(table, where) of each table ``pattern`` finds in the package's SQL."""
    for path in sorted((CENTRAL / package).rglob("*.py")):
        for line, text in sql_strings(path):
            for match in pattern.finditer(text):
                yield next(g for g in match.groups() if g), f"{path.relative_to(CENTRAL.parent)}:{line}"


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_writes_only_its_own_tables(package):
    foreign = [
        f"{where}: writes {table} ({EVER_OWNED.get(table, 'no package')}'s)"
        for table, where in statements(package, WRITE)
        if EVER_OWNED.get(table) != package
    ]
    assert not foreign, "call the owner's functions instead:\n" + "\n".join(foreign)


@pytest.mark.parametrize("package", PACKAGES)
def test_a_package_reads_another_packages_tables_only_where_listed(package):
    allowed = SHARED_READS.get(package, (set(), ""))[0]
    foreign = sorted(
        {
            f"{where}: reads {table} ({EVER_OWNED[table]}'s)"
            for table, where in statements(package, READ)
            if table in EVER_OWNED and EVER_OWNED[table] != package and table not in allowed
        }
    )
    assert not foreign, "read through the owner's functions, or list the read in SHARED_READS:\n" + "\n".join(foreign)


def test_every_shared_read_is_still_made():
    """A listed read no package makes any more is taken off the list."""
    made = {(package, table) for package in SHARED_READS for table, _ in statements(package, READ)}
    stale = [
        (package, table)
        for package, (tables, _) in SHARED_READS.items()
        for table in tables
        if (package, table) not in made
    ]
    assert not stale


def test_the_write_scan_sees_writes(tmp_path, monkeypatch):
    """The scan finds each kind of write, and ignores prose."""
    package = tmp_path / "central" / "demo"
    package.mkdir(parents=True)
    (package / "mod.py").write_text(
        '"""INSERT INTO devices is prose here."""\n'
        'A = "INSERT OR IGNORE INTO clips (clip_id) VALUES (?)"\n'
        'B = f"UPDATE devices SET lifecycle = {1} WHERE serial = ?"\n'
        'C = "DELETE FROM holds WHERE id = ?"\n'
        'D = "INSERT INTO x VALUES (1) ON CONFLICT (one) DO UPDATE SET rules = excluded.rules"\n'
        'E = "CREATE TEMP TABLE IF NOT EXISTS held_now (clip_id TEXT)"\n'
    )
    monkeypatch.setattr(sys.modules[__name__], "CENTRAL", tmp_path / "central")
    assert sorted(t for t, _ in statements("demo", WRITE)) == ["clips", "devices", "held_now", "holds", "x"]


def documented_owners() -> dict[str, str]:
    """{table: package} as ``central``'s docstring lists them."""
    owners: dict[str, str] = {}
    package: str | None = None
    listing = False
    for line in central.__doc__.splitlines():
        if m := re.match(r" {4}(\w+)/ ", line):
            package, listing = m.group(1), False
            continue
        if "tables:" in line:
            listing, line = True, line.split("tables:", 1)[1]
        elif not line.startswith(" " * 15):
            listing = False
        if listing:
            assert package is not None, f"tables listed before any package: {line!r}"
            owners |= {name: package for name in re.findall(r"\w+", re.sub(r"\([^)]*\)", "", line)) if name != "none"}
    return owners


def test_every_table_has_one_owner_and_the_docs_say_which(tmp_path):
    db = sqlite.open_database(tmp_path / "central.db")
    try:
        sqlite.migrate(db, MIGRATIONS)
        tables = {
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        }
    finally:
        db.close()
    # held_now and checking are temporary, made when used; schema_version is PostgreSQL's only
    assert tables == set(OWNERS) - {"held_now", "checking", "schema_version"}
    assert documented_owners() == OWNERS
