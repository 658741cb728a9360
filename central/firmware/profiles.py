"""Camera profiles at central: the settings each scope sets, and a camera's effective profile, explained.

A profile is kept per scope (``default``, ``model:<model>``, ``borough:<borough>``,
``role:<role>``); a camera's effective settings are resolved from the scopes that apply to it
(``fleet.profiles``: each setting from the most specific scope that sets it). Every change is
audited with the values before and after. Fleet managers set profiles; everyone may read them
(they are the force's settings, nobody's records), and a station may explain its own borough's
cameras.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from litestar import Controller, get, put
from litestar.params import JSONBody, PathParameter, QueryParameter

from central.access.auth import Caller, station_or_user_with, user_with
from central.access.scope import FORCE_WIDE, in_path, no_borough, touches
from central.core.database import Database
from central.core.openapi import errors
from central.core.providers import Injected
from central.evidence import audit
from central.firmware import settings_history
from central.firmware.resolution import cameras_resolved, stored_settings
from central.firmware.settings_history import SettingsHistory
from fleet.clock import from_iso, to_iso, utc_now
from fleet.errors import BadRequest, NotFound
from fleet.profiles import (
    CameraSettings,
    ProfileScope,
    ResolvedSetting,
    effective,
    explain,
    parse_scope,
)

SerialPath = Annotated[str, PathParameter(min_length=1, max_length=64, description="the camera's serial")]
ScopePath = Annotated[
    str,
    PathParameter(
        min_length=1,
        max_length=80,
        description="default, model:<model>, borough:<borough> or role:<role> (neighbourhood, response, armed, other)",
    ),
]


class Profile(msgspec.Struct, kw_only=True):
    scope: str
    """``default``, ``model:<model>``, ``borough:<borough>`` or ``role:<role>``."""
    settings: CameraSettings
    """What this scope sets (nothing: the scope has no profile)."""
    updated_at: datetime | None = None
    updated_by: str | None = None


class EffectiveProfile(msgspec.Struct, kw_only=True):
    """A camera's settings as the profiles decide them, each with where it came from."""

    serial: str
    model: str
    borough: str | None
    officer_id: str | None
    """The officer the camera is personally issued to now, if any: a pool camera's checkout gives it
    no role profile (settings reach a camera at the dock, and the next wearer may have another role)."""
    role: str | None
    settings: CameraSettings
    explanation: list[ResolvedSetting]
    lines: list[str]
    """The explanation for people: ``pre_record_s = 30 from: force default``."""


_ENCODER = msgspec.json.Encoder()


def _scope(text: str) -> ProfileScope:
    try:
        return parse_scope(text)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


class ProfileService:
    """The only writer of ``camera_profiles``."""

    def __init__(self, writer: Database) -> None:
        self.writer = writer

    def all(self) -> list[Profile]:
        """Every scope's profile, in precedence order (default, models, boroughs, roles)."""
        with self.writer.read() as db:
            rows = db.execute(
                "SELECT scope, settings, updated_at, updated_by FROM camera_profiles "
                "ORDER BY CASE kind WHEN 'default' THEN 0 WHEN 'model' THEN 1 WHEN 'borough' THEN 2 ELSE 3 END, name"
            ).fetchall()
        return [
            Profile(scope=r[0], settings=stored_settings(r[1]), updated_at=from_iso(r[2]), updated_by=r[3])
            for r in rows
        ]

    def get(self, scope: str) -> Profile:
        """One scope's profile; a scope with none answers empty settings."""
        key = _scope(scope).key
        with self.writer.read() as db:
            row = db.execute(
                "SELECT settings, updated_at, updated_by FROM camera_profiles WHERE scope = ?", [key]
            ).fetchone()
        if row is None:
            return Profile(scope=key, settings=CameraSettings())
        return Profile(scope=key, settings=stored_settings(row[0]), updated_at=from_iso(row[1]), updated_by=row[2])

    def set(self, scope: str, settings: CameraSettings, actor: str) -> Profile:
        """Replace what ``scope`` sets (no setting at all: the scope's profile is removed); audited
        with the settings before and after."""
        target = _scope(scope)
        now = to_iso(utc_now())
        text = _ENCODER.encode(settings).decode()
        with self.writer.write() as db:
            row = db.execute("SELECT settings FROM camera_profiles WHERE scope = ?", [target.key]).fetchone()
            before = row[0] if row else "{}"
            if before == text:
                return self.get(target.key) if row else Profile(scope=target.key, settings=settings)
            if text == "{}":
                db.execute("DELETE FROM camera_profiles WHERE scope = ?", [target.key])
            else:
                db.execute(
                    "INSERT INTO camera_profiles (scope, kind, name, settings, updated_at, updated_by) "
                    "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (scope) DO UPDATE SET settings = excluded.settings, "
                    "updated_at = excluded.updated_at, updated_by = excluded.updated_by",
                    [target.key, target.kind, target.name, text, now, actor],
                )
            audit.record(
                db,
                actor=actor,
                action="profile-set" if text != "{}" else "profile-remove",
                object_type="camera_profile",
                object_id=target.key,
                detail=f"before {before}; after {text}",
            )
            settings_history.observe(
                db,
                settings_history.in_scope(db, target.kind, target.name),
                f"profile {target.key} {'set' if text != '{}' else 'removed'}",
                actor,
                now,
            )
        if text == "{}":
            return Profile(scope=target.key, settings=settings)
        return Profile(scope=target.key, settings=settings, updated_at=from_iso(now), updated_by=actor)

    def explain(self, serial: str) -> EffectiveProfile:
        """A camera's effective profile and where each setting came from."""
        with self.writer.read() as db:
            found = cameras_resolved(db, [serial])
        if serial not in found:
            raise NotFound(f"no camera {serial}")
        (model, borough, officer_id, role), resolved = found[serial]
        return EffectiveProfile(
            serial=serial,
            model=model,
            borough=borough,
            officer_id=officer_id,
            role=role,
            settings=effective(resolved),
            explanation=resolved,
            lines=explain(resolved),
        )

    def history(self, serial: str, cursor: str | None = None, limit: int = settings_history.PAGE) -> SettingsHistory:
        """The camera's settings over time, newest first: each version, where it came from, and
        whether the camera confirmed it (``central.firmware.settings_history``)."""
        with self.writer.read() as db:
            if db.execute("SELECT 1 FROM devices WHERE serial = ?", [serial]).fetchone() is None:
                raise NotFound(f"no camera {serial}")
            return settings_history.read(db, serial, cursor, limit)


PROFILES = no_borough("camera profiles are the force's settings, nobody's records")


class ProfileController(Controller):
    tags = ["profiles"]

    @get(
        "/api/v1/profiles",
        summary="Every camera profile, by scope (default, model, borough, role)",
        guards=[station_or_user_with("viewer")],
        scope=PROFILES,
        sync_to_thread=True,
    )
    def list_profiles(self, principal: Caller, profiles: Injected[ProfileService]) -> list[Profile]:
        return profiles.all()

    @get(
        "/api/v1/profiles/{scope_key:str}",
        summary="One scope's profile (empty settings: the scope sets nothing)",
        guards=[station_or_user_with("viewer")],
        scope=PROFILES,
        sync_to_thread=True,
    )
    def get_profile(self, principal: Caller, profiles: Injected[ProfileService], scope_key: ScopePath) -> Profile:
        return profiles.get(scope_key)

    @put(
        "/api/v1/profiles/{scope_key:str}",
        summary="Replace what a scope sets (an empty body {} removes its profile); audited",
        guards=[user_with("fleet_manager")],
        scope=FORCE_WIDE,
        sync_to_thread=True,
    )
    def set_profile(
        self,
        principal: Caller,
        profiles: Injected[ProfileService],
        scope_key: ScopePath,
        data: JSONBody[CameraSettings],
    ) -> Profile:
        return profiles.set(scope_key, data, principal.name)

    @get(
        "/api/v1/devices/{serial:str}/profile",
        summary="A camera's effective profile: each setting's value and the scope it came from",
        guards=[station_or_user_with("viewer")],
        scope=touches(in_path("device", "serial")),
        responses=errors(404),
        sync_to_thread=True,
    )
    def explain_profile(
        self, principal: Caller, profiles: Injected[ProfileService], serial: SerialPath
    ) -> EffectiveProfile:
        return profiles.explain(serial)

    @get(
        "/api/v1/devices/{serial:str}/settings",
        summary="A camera's settings over time: each change, where it came from, confirmed by the camera or pending",
        guards=[user_with("viewer")],
        scope=touches(in_path("device", "serial")),
        responses=errors(404),
        sync_to_thread=True,
    )
    def camerastored_settings(
        self,
        principal: Caller,
        profiles: Injected[ProfileService],
        serial: SerialPath,
        cursor: Annotated[
            str | None,
            QueryParameter(max_length=64, pattern=r"^[A-Za-z0-9_=-]+$", description="next_cursor of the previous page"),
        ] = None,
        limit: Annotated[int, QueryParameter(ge=1, le=settings_history.MAX_PAGE)] = settings_history.PAGE,
    ) -> SettingsHistory:
        return profiles.history(serial, cursor, limit)
