"""Central: the force-wide server. Receives clips (tus) and serves the clip API.

Built by one ``central.core.app.create_app(settings)``; run with ``fleet central serve``.

One package per feature. Each owns its tables (declared in its ``schema.py`` with the
migrations that build them) and is the only one to write them: the others call its
functions, inside their own transaction where the change must commit with theirs.

    core/      builds central and holds what every package shares: the app factory, the
               database (SQLite or PostgreSQL) and its migration runner, errors, OpenAPI,
               pagination, jobs, CLI
               tables: job_runs, schema_version (PostgreSQL only)
    access/    decides who may do what: users, API tokens, sessions, logins, borough scope
               tables: users, api_tokens, sessions, login_throttle, signing_keys, directory_identities,
               directory_sign_ins
    uploads/   receives clips over tus and records each upload until its clip is verified
               tables: uploads
    events/    takes in what stations report (events, stored, acknowledged, then applied
               through the packages that own what they change) and feeds back what they mirror
               tables: events, changes, station_refusals
    registry/  knows the fleet: cameras and their models (withdrawn ones too), officers, who
               held what (so whose clip is whose), conflicts, and each station as central hears from it
               tables: devices, device_history, battery_readings, officers, assignments,
               conflicts, attributions, stations, station_samples, withdrawn_models, firmware_seen
    evidence/  keeps footage as evidence: clip records, retention, holds, the public's requests
               to keep footage, disclosure to prosecutors and partners, custody, audit
               tables: clips, clip_retention, access_log, audit, audit_head, audit_anchors, holds, case_clips,
               retention_rules, purge_pending, config_seen, held_now (temporary),
               keep_requests, keep_request_clips, case_shares, case_share_clips
    rollout/   plans the roll-out and hands cameras out in bulk through the registry, and
               swaps a withdrawn model's cameras for others the same way
               tables: rollout_proposals, rollout_items, checking (temporary)
    firmware/  holds what central gives the cameras themselves: vendor-signed firmware releases
               (artifacts in the blob store), camera profiles by scope, explained per camera, and
               their deployments in phases that pause themselves, and each camera's settings over time
               tables: firmware_releases, camera_profiles, deployments, deployment_phases,
               deployment_cameras, camera_settings
    alerts/    pushes what needs a person (the dashboard's alerts, a silent station, a broken
               audit chain) to webhooks and mailboxes, as digests from an outbox
               tables: alerts, alert_notices, alert_messages
    web/       the dashboard's pages, over the other packages' services
               tables: none

``tests/central/core/test_table_ownership.py`` holds this map to the packages' ``schema.py``,
and each package to writing its own tables only.
"""
