"""Checking that statements read growing tables through an index (``EXPLAIN QUERY PLAN``).

At test sizes a full scan costs nothing, so only the plan shows it; at a month of the Met
it is what makes a process slower with every clip. Used by the central and station tests.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

from fleet import sqlite

DML = re.compile(r"\s*(SELECT|INSERT|UPDATE|DELETE|WITH)\b", re.I)


def trace_every_connection(monkeypatch, under: Path | None = None) -> list[str]:
    """Record each statement run on every connection opened from now on (writer and readers),
    or only on those to databases ``under`` a folder."""
    statements: list[str] = []

    def tracing(opener):
        def open_traced(path, *args, **kwargs):
            db = opener(path, *args, **kwargs)
            if under is None or Path(path).is_relative_to(under):
                db.set_trace_callback(statements.append)
            return db

        return open_traced

    monkeypatch.setattr(sqlite, "open_database", tracing(sqlite.open_database))
    monkeypatch.setattr(sqlite, "open_reader", tracing(sqlite.open_reader))
    return statements


def scans(conn, statement: str, growing: Iterable[str]) -> list[str]:
    """The plan's steps that read a whole growing table. Not counted: a scan in key order under a
    LIMIT (it reads a few rows) and a scan of a partial index (it holds only the rows wanted)."""
    partial = {
        name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '% WHERE %'")
    }
    index_of = dict(conn.execute("SELECT name, tbl_name FROM sqlite_master WHERE type = 'index'").fetchall())
    rows = conn.execute("EXPLAIN QUERY PLAN " + statement).fetchall()
    plan = [row[-1] for row in rows]
    bounded = re.search(r"\bLIMIT\b", statement, re.I) and not any("TEMP B-TREE" in step for step in plan)
    growing = set(growing)
    aliases = _aliases(statement)
    found = []
    for step in plan:
        m = re.match(r"SCAN (\w+)\b(?: USING (?:COVERING )?INDEX (\w+))?", step)
        if not m or bounded or m.group(2) in partial:
            continue
        # A plan names a table by its alias in the statement ("SCAN rc"): the index's table, or the alias's.
        table = index_of.get(m.group(2) or "") or aliases.get(m.group(1), m.group(1))
        if table in growing:
            found.append(step if table == m.group(1) else f"{step} ({table})")
    return found + _lists_scanned_per_row(rows)


KEYWORDS = {"on", "where", "join", "left", "cross", "inner", "natural", "using", "indexed", "group", "order", "limit"}


def _aliases(statement: str) -> dict[str, str]:
    """{alias: table} of ``FROM table alias`` and ``JOIN table [AS] alias`` in the statement."""
    return {
        alias: table
        for table, alias in re.findall(r"\b(?:FROM|JOIN)\s+(\w+)\s+(?:AS\s+)?(\w+)", statement, re.I)
        if alias.lower() not in KEYWORDS
    }


def _lists_scanned_per_row(rows) -> list[str]:
    """A list given as one parameter (``json_each``) scanned whole inside a loop over another table:
    as many passes over the list as rows on the outer side (offering 8,000 cameras of a phase
    took 296 s so; the list first, or materialised, is one pass)."""
    loops: dict[int, int] = {}
    found = []
    for _id, parent, _, step in rows:
        if not re.match(r"(SCAN|SEARCH) ", step):
            continue
        if step.startswith("SCAN json_each") and loops.get(parent, 0) > 0:
            found.append(f"{step} (inside a loop)")
        loops[parent] = loops.get(parent, 0) + 1
    return found


def full_scans(conn, statements: Iterable[str], growing: Iterable[str]) -> dict[str, list[str]]:
    """Every data statement among ``statements`` that scans a growing table, with the offending steps."""
    growing = tuple(growing)
    return {s: steps for s in sorted({s for s in statements if DML.match(s)}) if (steps := scans(conn, s, growing))}


def report(found: dict[str, list[str]]) -> str:
    return "\n\n".join(f"{steps}: {statement}" for statement, steps in found.items())
