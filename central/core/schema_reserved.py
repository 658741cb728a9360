"""Schema versions 20–22, reserved for branches merged beside this one: DROP THIS FILE AT MERGE
(and its line in ``central.core.store``), as the branches that own v20–v22 bring the real steps."""

from __future__ import annotations

from central.core.migrations import Step

TABLES: frozenset[str] = frozenset()
STEPS = [Step(version, "SELECT 1;") for version in (20, 21, 22)]
