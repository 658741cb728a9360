"""A borough docking-station node: dock ingest, the local clip queue, sync to central.

It keeps working with central unreachable; its SQLite database is its source of truth.
"""
