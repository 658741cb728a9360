"""Camera profiles: the settings a camera must carry, and how one camera's are decided.

A profile sets some of a camera's settings for a **scope**: the force's default, a camera model,
a borough, or an officer role. A camera's effective value for each setting comes from the most
specific scope that sets it, each setting on its own:

    built-in  <  force default  <  model  <  borough  <  role        (the right one wins)

Why this order: the built-in values are the seeds' (30 s of pre-record, the red light on); the
force's default is policy for every camera; a model's profile says what its hardware should
run; a borough adjusts for its own needs; and a role is what the wearer's duty demands (armed
officers' cameras on the head), which no borough or model may undo. The role is that of the
officer the camera is issued to now (docs/firmware.md).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Annotated, Literal, get_args

import msgspec
from msgspec import Meta, Struct

from fleet.events import OfficerRole
from fleet.firmware import Model
from fleet.protocol import BoroughName

Resolution = Literal["720p", "1080p", "1440p"]
FrameRate = Literal[25, 30, 50, 60]
Mount = Literal["shoulder", "head"]
ScopeKind = Literal["default", "model", "borough", "role"]
PreRecordSeconds = Annotated[int, Meta(ge=0, le=120, description="seconds of video kept from before recording starts")]
PRECEDENCE: tuple[ScopeKind, ...] = ("default", "model", "borough", "role")
"""Scopes from the least specific to the most: a later one's setting wins."""


class CameraSettings(Struct, kw_only=True, forbid_unknown_fields=True, omit_defaults=True):
    """A profile: the settings one scope sets. A setting left out (null) is not set here, and
    comes from a less specific scope."""

    pre_record_s: PreRecordSeconds | None = None
    resolution: Resolution | None = None
    frame_rate: FrameRate | None = None
    """Frames a second."""
    audio: bool | None = None
    """Sound recorded with the video."""
    recording_indicator: bool | None = None
    """The red light that shows the camera is recording."""
    mount: Mount | None = None
    """Where the camera is worn: ``head`` for armed officers' head-mounted cameras."""


SETTINGS: tuple[str, ...] = CameraSettings.__struct_fields__

BUILT_IN = CameraSettings(
    pre_record_s=30, resolution="1080p", frame_rate=30, audio=True, recording_indicator=True, mount="shoulder"
)
"""What a camera carries when no profile sets a setting (the seeds' cameras)."""


class ProfileScope(Struct, frozen=True, kw_only=True):
    kind: ScopeKind
    name: str = ""
    """The model, borough or role; empty for the force default."""

    @property
    def key(self) -> str:
        """``default``, or ``<kind>:<name>`` (``role:armed``): how the API and the CLI name it."""
        return "default" if self.kind == "default" else f"{self.kind}:{self.name}"

    @property
    def label(self) -> str:
        """How an explanation names it: ``force default``, ``role armed``."""
        return "force default" if self.kind == "default" else f"{self.kind} {self.name}"


def parse_scope(text: str) -> ProfileScope:
    """``default``, ``model:<model>``, ``borough:<borough>`` or ``role:<role>``; ValueError otherwise."""
    if text == "default":
        return ProfileScope(kind="default")
    kind, sep, name = text.partition(":")
    if not sep or kind not in ("model", "borough", "role"):
        raise ValueError(f"a profile scope is default, model:<model>, borough:<borough> or role:<role>, not {text!r}")
    kinds = {"model": Model, "borough": BoroughName, "role": OfficerRole}
    try:
        msgspec.convert(name, kinds[kind])
    except msgspec.ValidationError:
        if kind == "role":
            raise ValueError(f"{name!r} is not an officer role ({', '.join(get_args(OfficerRole))})") from None
        raise ValueError(f"{name!r} is not a valid {kind} name") from None
    return ProfileScope(kind=kind, name=name)  # type: ignore[arg-type]


class Layer(Struct, frozen=True, kw_only=True):
    """One scope's profile, as it applies to a camera."""

    scope: ProfileScope
    settings: CameraSettings


class ResolvedSetting(Struct, kw_only=True):
    setting: str
    value: int | str | bool
    source: str
    """The scope it came from (``force default``, ``role armed``) or ``built-in``."""
    overrides: list[str] = []
    """Less specific scopes that set it too, and lost (``borough Camden = shoulder``)."""


def resolve(layers: list[Layer]) -> list[ResolvedSetting]:
    """Each setting's value and where it came from, for a camera whose applicable profiles are
    ``layers`` (any order; at most one of each kind)."""
    ordered = sorted(layers, key=lambda layer: PRECEDENCE.index(layer.scope.kind))
    resolved = []
    for name in SETTINGS:
        value, source, lost = getattr(BUILT_IN, name), "built-in", []
        for layer in ordered:
            mine = getattr(layer.settings, name)
            if mine is None:
                continue
            if source != "built-in":
                lost.append(f"{source} = {_text(value)}")
            value, source = mine, layer.scope.label
        resolved.append(ResolvedSetting(setting=name, value=value, source=source, overrides=lost))
    return resolved


def effective(resolved: list[ResolvedSetting]) -> CameraSettings:
    """The settings alone, as a camera would be given them."""
    return msgspec.convert({r.setting: r.value for r in resolved}, CameraSettings)


def explain(resolved: list[ResolvedSetting]) -> list[str]:
    """One line per setting: ``pre_record_s = 30 from: force default``."""
    return [
        f"{r.setting} = {_text(r.value)} from: {r.source}"
        + (f" (over {', '.join(r.overrides)})" if r.overrides else "")
        for r in resolved
    ]


def _text(value: object) -> str:
    return ("on" if value else "off") if isinstance(value, bool) else str(value)


def settings_sha256(settings: Mapping[str, object]) -> str:
    """The SHA-256 of a camera's settings as sorted compact JSON: what a camera that applied a profile
    reports as ``profile_sha256`` in its ``device.json`` (docs/firmware.md)."""
    return hashlib.sha256(json.dumps(settings, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
