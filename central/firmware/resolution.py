"""A camera's settings resolved from the profiles that apply to it (its model's, its borough's,
its holder's role's, the force default), read for many cameras at once.

Its own module because both the profiles' service and a camera's settings history resolve
cameras, and the history is written by the service's changes.
"""

from __future__ import annotations

import msgspec

from fleet.profiles import CameraSettings, Layer, ProfileScope, ResolvedSetting, resolve


def stored_settings(text: str) -> CameraSettings:
    """A profile's settings as ``camera_profiles`` keeps them (JSON)."""
    return msgspec.json.decode(text, type=CameraSettings)


KINDS = ("model", "borough", "role")
Holder = tuple[str, str | None, str | None, str | None]
"""A camera's (model, borough, officer it is personally issued to now, that officer's role)."""


def cameras_resolved(db, serials: list[str]) -> dict[str, tuple[Holder, list[ResolvedSetting]]]:
    """Each of these cameras (those registered) with its settings resolved from the profiles that
    apply to it: one query for the cameras, one for the profiles, however many cameras."""
    rows = db.execute(
        "SELECT d.serial, d.model, d.borough, a.officer_id, o.role FROM devices d "
        "LEFT JOIN assignments a ON a.device_serial = d.serial AND a.ended_at IS NULL AND a.mode = 'personal' "
        "LEFT JOIN officers o ON o.officer_id = a.officer_id "
        f"WHERE {db.dialect.any_of('d.serial')} ORDER BY d.serial, a.started_at DESC NULLS LAST",
        [db.dialect.many(serials)],
    ).fetchall()
    holders: dict[str, Holder] = {}
    for serial, model, borough, officer_id, role in rows:
        holders.setdefault(serial, (model, borough, officer_id, role))  # the latest holding, if several
    wanted: dict[str, ProfileScope] = {"default": ProfileScope(kind="default")}
    for model, borough, _, role in holders.values():
        for kind, name in zip(KINDS, (model, borough, role), strict=True):
            if name:
                scope = ProfileScope(kind=kind, name=name)  # type: ignore[arg-type]
                wanted[scope.key] = scope
    profiles = {
        r[0]: Layer(scope=wanted[r[0]], settings=stored_settings(r[1]))
        for r in db.execute(
            f"SELECT scope, settings FROM camera_profiles WHERE {db.dialect.any_of('scope')}",
            [db.dialect.many(wanted)],
        )
    }
    resolved = {}
    alike: dict[tuple[str, str | None, str | None], list[ResolvedSetting]] = {}
    for serial, holder in holders.items():
        model, borough, _, role = holder
        if (model, borough, role) not in alike:  # a force's cameras share a few hundred combinations
            keys = ["default"] + [
                f"{kind}:{name}" for kind, name in zip(KINDS, (model, borough, role), strict=True) if name
            ]
            alike[model, borough, role] = resolve([profiles[k] for k in keys if k in profiles])
        resolved[serial] = (holder, alike[model, borough, role])
    return resolved
