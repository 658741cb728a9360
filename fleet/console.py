"""The one console every command line prints its rich tables to.

In a terminal a table fits the window, as rich does. Written to a pipe or a file (a log, ``| grep``,
``> report.txt``) it is never folded at rich's default 80 columns into stubs ("stat…"): every
value is printed whole, the table as wide as its widest row. ``--json`` is for programs; this is
for people reading a log."""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH = 10_000
"""Columns a table may take when nobody's window limits it: wide enough for any row (tables size
to their content, so nothing is padded to it)."""


def console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(highlight=False, stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)
