"""Shared kernel of the body-worn video fleet: domain types, wire protocol, config, hashing.

This package imports neither ``station`` nor ``central``: both depend on it, never the
other way round. The ``fleet`` command finds their sub-commands through entry points.
"""

__version__ = "0.1.0"
