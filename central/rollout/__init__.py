"""The roll-out planner: pure, deterministic functions from a scenario to a plan.

scenario.py   the boroughs and the roll-out scenario (TOML), validated
sizing.py     cameras, spares and dock slots a borough needs (charging model)
plan.py       week-by-week waves, feasibility, the binding constraint and remedies
storage.py    the storage forecast from clips per officer and retention
"""
