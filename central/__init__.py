"""Central: the force-wide server. Receives clips (tus) and serves the clip API.

Built by one ``central.core.app.create_app(settings)``; run with ``fleet central serve``.
"""
