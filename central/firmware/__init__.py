"""Firmware releases and camera profiles: what central holds for the cameras themselves.

``releases`` keeps vendor-signed firmware artifacts (one per camera model and version) in the
blob store, checked against ``[firmware] release_keys``; ``profiles`` keeps the settings a
camera must carry, by scope, and explains any camera's effective settings. Deployments (phases
to stations and cameras) build on both (docs/firmware.md).
"""
