"""Benchmarks (not tests): ``make bench`` or ``python -m bench [ingest|upload|all]``."""
