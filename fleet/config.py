"""Configuration files (docs/contracts.md §4): TOML decoded into strict msgspec Structs.

Config Structs forbid unknown keys so a typo is a clear error at start-up. Any secret may
be given as ``<key>_env = "VAR"`` instead of inline; the secrets a systemd unit hands over
(docs/deploy.md) also as ``<key>_credential = "NAME"``, read from ``$CREDENTIALS_DIRECTORY/NAME``
(``LoadCredential=``). Relative paths are taken relative to
the config file, so a config folder can be moved as a whole.
"""

from __future__ import annotations

import os
import re
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import msgspec
from msgspec import Meta, Struct

from fleet.errors import ConfigError
from fleet.protocol import BoroughName, readable

Port = Annotated[int, Meta(ge=0, le=65535)]
PositiveInt = Annotated[int, Meta(gt=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]
NonNegativeFloat = Annotated[float, Meta(ge=0)]
Sha256Hex = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$(?!\n)")]
StationId = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$(?!\n)")]

MiB = 1 << 20
GiB = 1 << 30
DEFAULT_CHUNK_BYTES = 64 * MiB


class StationEntry(Struct, kw_only=True, forbid_unknown_fields=True):
    """A station central accepts: ``[stations.<station_id>]``."""

    borough: BoroughName
    token: str | None = None
    token_env: str | None = None
    token_sha256: Sha256Hex | None = None
    """The token's SHA-256 instead of the token, so central's file holds no usable secret."""
    next_token_sha256: Sha256Hex | None = None
    """During a token rotation: the new token's SHA-256, accepted beside the current one until
    the station runs with it; then it becomes ``token_sha256`` and this line goes (SECURITY.md)."""


AssignmentModeSetting = Literal["personal", "pool"]


class FleetSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[fleet]`` in central's file: assignment policy, battery thresholds, staleness."""

    default_assignment_mode: AssignmentModeSetting = "pool"
    assignment_modes: dict[BoroughName, AssignmentModeSetting] = {}
    """Per-borough policy, e.g. ``{Camden = "personal"}``; others use the default."""
    min_checkout_pct: Annotated[float, Meta(ge=0, le=100)] = 80.0
    """A pool camera is handed out only when charged at least this much."""
    recharge_hours: PositiveFloat = 9.0
    """Empty to full on a dock (Axon Body 2 class: up to ~9 h)."""
    shift_hours: PositiveFloat = 10.0
    rated_runtime_hours: PositiveFloat = 12.0
    replace_below_soh_pct: Annotated[float, Meta(gt=0, le=100)] = 80.0
    over_temperature_c: float = 45.0
    sudden_drop_pct: PositiveFloat = 5.0
    stale_device_days: PositiveFloat = 7.0
    """A camera not docked for this long is listed as stale (possibly lost)."""
    stale_station_hours: PositiveFloat = 6.0
    """A station not heard from for this long is listed as stale."""
    health_check_minutes: PositiveFloat = 10.0
    change_history: Annotated[int, Meta(ge=100)] = 1_000_000
    """Changes kept for the stations' feed; a station further behind reloads a snapshot."""
    event_clock_tolerance_minutes: Annotated[float, Meta(ge=0)] = 15.0
    """A station's docking, checkout or check-in dated further than this beyond its measured
    clock skew (ahead of when it was sent, or before what the station reported already) is
    refused and listed as a security alert, never applied."""

    def assignment_mode(self, borough: str) -> AssignmentModeSetting:
        return self.assignment_modes.get(borough, self.default_assignment_mode)


class RolloutFiles(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[rollout]`` in central's file: the plan that allocation and progress follow."""

    boroughs: str | None = None
    """The boroughs file (officers by role, stations, dock slots), e.g. config/boroughs.toml."""
    scenario: str | None = None
    """The roll-out scenario, e.g. config/rollout.toml."""


class RetentionSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[retention]`` in central's file: the rules and when the deletion job runs."""

    rules: str | None = None
    """The retention rules file (e.g. config/retention.toml); without it: 31 days, evidential 6 years."""
    job_hour_utc: Annotated[int, Meta(ge=0, le=23)] = 2
    """The daily retention job (soft deletes, then purges) runs at this hour, UTC."""


class AuditSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[audit]`` in central's file: where the audit chain's anchors are published."""

    anchors_file: str | None = None
    """Append-only file the chain's anchors and head are published to (one JSON line each).
    Put it where whoever could rewrite central's database cannot (another host's mount,
    write-once storage). Default: ``audit-anchors.jsonl`` in the data directory."""
    publish_minutes: PositiveFloat = 60.0
    """How often new anchors and the head are published."""
    verify_hours: PositiveFloat = 24.0
    """How often the leading replica recomputes the whole chain (the ``fleet_central_audit_chain_*``
    metrics report the last result; docs/metrics.md)."""


class MetricsSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[metrics]``: who may scrape ``/metrics`` (SECURITY.md). Without a token, central's
    answers only an admin and a station's only what may read its desk API."""

    token: str | None = None
    token_env: str | None = None
    token_sha256: Sha256Hex | None = None
    """The scraper's bearer token's SHA-256 instead of the token (central's file then holds no usable secret)."""

    @property
    def configured(self) -> bool:
        return self.token is not None or self.token_env is not None or self.token_sha256 is not None


class DashboardSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[dashboard]`` in central's file: the browser pages."""

    secure_cookies: bool = True
    """Session cookies only over HTTPS (browsers also send them to http://localhost). Set false
    only for a demo on another plain-HTTP address."""


class LimitsSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[limits]`` in central's file: how much central takes on at once before it says "later".

    Past a lane's limit central answers 503, past a client's share 429, both with
    ``Retry-After`` (see central/core/admission.py). The defaults suit one central serving a
    whole force: 64 stations uploading 2 clips each at once fit in the upload lane.
    """

    uploads_in_flight: PositiveInt = 192
    events_in_flight: PositiveInt = 96
    other_in_flight: PositiveInt = 256
    """Everything else, the stations' long-polls on the changes feed included."""
    per_client_in_flight: PositiveInt = 16
    """Per lane, per bearer token or session."""
    retry_after_s: PositiveInt = 2
    """Refused clients are told to wait between this and twice this many seconds."""
    storage_full_retry_after_s: PositiveInt = 60
    """``Retry-After`` of a 507 (central's disk is full): someone has to make room first."""
    body_idle_timeout_s: PositiveFloat = 60.0
    """An upload whose body stops arriving this long is ended, keeping what arrived, so a dead
    link does not hold its place in the upload lane."""


PartBytes = Annotated[int, Meta(ge=5 * MiB, le=512 * MiB)]
"""S3 parts are at least 5 MiB (but the last); each part is held in memory while it is sent."""


class BlobSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[blobs]`` in central's file: where verified clips are kept (docs/storage.md)."""

    backend: Literal["filesystem", "s3"] = "filesystem"
    """``filesystem``: files under ``<data_dir>/blobs``; ``s3``: objects in an S3-compatible bucket."""
    bucket: Annotated[str, Meta(pattern=r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$(?!\n)")] | None = None
    """The bucket (backend ``s3``). Central refuses to start when it is missing, unless ``create_bucket``."""
    create_bucket: bool = False
    """Create the bucket at start-up when it does not exist (handy for a test server; off in production)."""
    endpoint_url: Annotated[str, Meta(pattern=r"^https?://")] | None = None
    """An S3-compatible server (MinIO, Ceph, ...), e.g. ``https://s3.internal:9000``; unset for AWS S3."""
    region: Annotated[str, Meta(pattern=r"^[a-z0-9-]+$(?!\n)")] | None = None
    prefix: Annotated[str, Meta(max_length=256, pattern=r"^(?![/.])[A-Za-z0-9._/-]*$(?!\n)")] = ""
    """Put before every clip's key (e.g. ``"bwv/"``), so one bucket can serve several systems."""
    access_key_id: str | None = None
    secret_access_key: str | None = None
    secret_access_key_env: str | None = None
    secret_access_key_credential: str | None = None
    """Give both key settings or neither: without them boto3 finds credentials itself
    (``AWS_*`` variables, a shared credentials file, an instance role)."""
    multipart_threshold_bytes: PartBytes = 16 * MiB
    """A clip this big or bigger goes up as a multipart upload, smaller ones in one PUT."""
    part_bytes: PartBytes = 16 * MiB
    """Size of one part (raised for huge clips: S3 allows at most 10,000 parts)."""
    upload_concurrency: Annotated[int, Meta(ge=1, le=16)] = 4
    """Parts of one clip sent at once; memory use is up to this many parts per clip being stored."""
    stage_uploads: bool | None = None
    """Backend ``s3``: keep an upload's acknowledged bytes in the bucket as they arrive (the parts of
    a multipart upload, as tusd's S3 store does), so any replica resumes it and a replica's death
    loses none of them; ``data_dir`` then need not be shared. Unset: on with ``s3``
    (docs/deployment.md, "Uploads in progress")."""


class DatabaseSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[database]`` in central's file: without ``url``, SQLite under ``data_dir`` (docs/deployment.md)."""

    url: Annotated[str, Meta(pattern=r"^postgres(ql)?://")] | None = None
    """PostgreSQL, e.g. ``postgresql://fleet@db.internal/fleet``; its password through ``url_env``."""
    url_env: str | None = None
    """The name of an environment variable holding the whole URL (it carries the password)."""
    url_credential: str | None = None
    """Or a systemd credential's name holding it (``LoadCredential=``; docs/deploy.md)."""
    readers: Annotated[int, Meta(ge=1, le=64)] = 8
    """PostgreSQL connections each central process keeps for reads (besides its one for writes)."""


class ServerTlsSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tls]`` in central's file: central serves HTTPS itself (SECURITY.md). Without it,
    plain HTTP: on loopback, or behind a balancer that terminates TLS."""

    certificate: str
    """Central's certificate chain (PEM), the leaf first. Read again on SIGHUP."""
    key: str
    """Its private key (PEM, unencrypted; readable only by central's user). Read again on SIGHUP."""
    client_ca: str | None = None
    """Mutual TLS: the CA (PEM) that signs the stations' client certificates. When set, a
    station's token is accepted only over a connection whose certificate names that station
    (its common name or a DNS name equal to the station id). Browsers need no certificate."""


class DisclosureSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[disclosure]`` in central's file: evidence handed to prosecutors and partners (docs/disclosure.md)."""

    signing_key: KeySource | None = None
    """The Ed25519 key that signs every disclosure package's index (its 32-byte seed as 64 hex
    digits, ``openssl rand -hex 32``): a file readable by central's user only, an environment
    variable or a systemd credential. Every replica must be given the same. Without it, a central
    on SQLite makes one in its data directory on first start; on PostgreSQL exports are refused."""
    previous_public_keys: list[Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$(?!\n)")]] = []
    """Public keys (64 hex digits) of signing keys replaced: still published, so packages they
    signed can still be checked against central's list."""
    share_max_days: Annotated[int, Meta(ge=1, le=365)] = 30
    """The longest a share link for a partner may live."""


class KeepRequestSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[keep_requests]`` in central's file: the public's requests to keep footage."""

    per_borough_per_day: Annotated[int, Meta(ge=1, le=10_000)] = 50
    """Requests one borough takes from the public form in any 24 hours; past it the form asks the
    requester to phone instead (docs/contracts.md says why 50)."""


class ReleaseKey(Struct, kw_only=True, forbid_unknown_fields=True):
    """A release key that may sign only for some camera models (a vendor's own):
    ``{ key = "<public key>", models = ["Axon Body 2", "Axon Body 3"] }``."""

    key: str
    """The Ed25519 public key, in any form a plain entry takes."""
    models: Annotated[list[Annotated[str, Meta(min_length=1, max_length=64)]], Meta(min_length=1)]
    """The camera models (as the registry names them) it may sign releases for."""


class FirmwareSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[firmware]`` in central's file: firmware releases (docs/firmware.md)."""

    release_keys: list[str | ReleaseKey] = []
    """Ed25519 public keys (64 hex digits, the base64 of the 32 bytes, or a PEM ``PUBLIC KEY``) of
    the vendors who sign firmware releases: a release is accepted only when one of them signed
    it. A plain key may sign for any model; ``{ key = "...", models = [...] }`` only for those
    models. None: every release is refused."""
    max_artifact_bytes: Annotated[int, Meta(ge=1024, le=16 * GiB)] = 512 * MiB
    """The largest firmware artifact central takes."""
    phase_check_seconds: Annotated[float, Meta(ge=1, le=86_400)] = 300
    """How often the elected job judges running deployments' phases again (a soak ends with the
    clock; results arriving are judged as they arrive)."""


AlertKind = Literal[
    "replace_soon",
    "short_shift",
    "over_temp",
    "capacity_drop",
    "lost",
    "stale",
    "failed_uploads",
    "conflicts",
    "unattributed",
    "station_refusals",
    "keep_overdue",
    "station_silent",
    "audit_chain",
]
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)
"""The alerts central pushes (``central.alerts.conditions`` says what each counts; docs/alerts.md)."""
DestinationName = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$(?!\n)")]
EmailAddress = Annotated[str, Meta(max_length=254, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$(?!\n)")]


class SmtpSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[alerts.smtp]``: the mail relay alerts are sent through (stdlib ``smtplib``)."""

    host: Annotated[str, Meta(min_length=1, max_length=253)]
    port: Port = 25
    from_address: EmailAddress
    """The sender (``From:``) of every alert mail."""
    security: Literal["starttls", "tls", "none"] = "starttls"
    """``starttls``: upgrade the connection (refused if the relay cannot); ``tls``: TLS from the first
    byte (port 465); ``none``: plain, for a relay on this host or a trusted segment only."""
    ca_bundle: str | None = None
    """CA certificates (PEM) that may sign the relay's certificate; unset: the system's."""
    username: str | None = None
    password: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    """Give ``username`` with one of ``password``, ``password_env``, ``password_file``; neither: no AUTH."""
    timeout_s: PositiveFloat = 30.0


class AlertDestination(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[alerts.destinations.<name>]``: a webhook or a list of mailboxes, and what it wants."""

    webhook_url: Annotated[str, Meta(pattern=r"^https?://[^\s]+$(?!\n)", max_length=2000)] | None = None
    """POSTed a signed JSON digest (docs/alerts.md says how to verify it)."""
    secret: str | None = None
    secret_env: str | None = None
    secret_file: str | None = None
    """The webhook's shared secret (one of the three; at least 32 characters): signs each request."""
    email_to: list[EmailAddress] = []
    """Mailboxes sent the digest through ``[alerts.smtp]``."""
    boroughs: list[BoroughName] | None = None
    """Only these boroughs' alerts (each a borough of a ``[stations.*]``); unset: force-wide, every
    borough's and the force's own (a broken audit chain)."""
    kinds: list[AlertKind] | None = None
    """Only these kinds of alert; unset: every kind."""

    @property
    def channel(self) -> Literal["webhook", "email"]:
        return "webhook" if self.webhook_url is not None else "email"


class AlertSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[alerts]``: alerts that need a person, pushed by central as digests (docs/alerts.md)."""

    dashboard_url: Annotated[str, Meta(pattern=r"^https?://[^\s]+$(?!\n)")] | None = None
    """The dashboard's address as people reach it, for the links in alerts; unset: central's own host and port."""
    digest_minutes: Annotated[float, Meta(ge=1, le=1440)] = 15.0
    """How often the elected job gathers what changed into one message per destination."""
    remind_hours: Annotated[float, Meta(ge=1, le=24 * 30)] = 24.0
    """An alert still active is told again (with every other active one) after this long."""
    station_silent_hours: PositiveFloat = 3.0
    """A station not heard from (events or heartbeat) for this long is an alert."""
    max_attempts: Annotated[int, Meta(ge=1, le=100)] = 10
    """Deliveries of one message tried before it is given up (shown by the CLI and /metrics)."""
    retry_initial_s: PositiveFloat = 30.0
    retry_max_s: PositiveFloat = 1800.0
    """Backoff between attempts grows from ``retry_initial_s`` to at most this (full jitter)."""
    timeout_s: PositiveFloat = 10.0
    """A webhook request's connect and read timeout."""
    smtp: SmtpSettings | None = None
    destinations: dict[DestinationName, AlertDestination] = {}


UserRole = Literal["admin", "fleet_manager", "planner", "supervisor", "auditor", "information_manager", "viewer"]
"""A dashboard user's role (``central.access.users`` says what each may do)."""
BOROUGH_ROLES = ("supervisor", "information_manager")
"""Roles a user may hold for one borough only."""


class OidcGroup(Struct, kw_only=True, forbid_unknown_fields=True):
    """What one directory group gives its members: ``{ role = "supervisor", borough = "Camden" }``."""

    role: UserRole
    borough: BoroughName | None = None
    """Only for a supervisor or an information manager: the borough they act for."""
    force_wide: bool = False
    """A supervisor or an information manager for the whole force: said, never implied by a
    borough left out (a group meant for one borough would give every borough's footage)."""


class OidcSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[oidc]`` in central's file: staff sign in through the force's directory (OpenID Connect,
    docs/sign-in.md). Local passwords keep working beside it (break-glass accounts)."""

    issuer: Annotated[str, Meta(pattern=r"^https?://[^\s]+$(?!\n)")]
    """The directory's issuer URL, exactly as its ID tokens name it (its discovery document is
    ``<issuer>/.well-known/openid-configuration``). https://, or http:// on loopback for a test."""
    client_id: Annotated[str, Meta(min_length=1, max_length=256)]
    client_secret: str | None = None
    client_secret_env: str | None = None
    client_secret_file: str | None = None
    """A file holding the client secret, readable by central's user only."""
    client_secret_credential: str | None = None
    redirect_url: Annotated[str, Meta(pattern=r"^https?://[^\s]+/login/oidc/callback$(?!\n)")]
    """The address the directory sends browsers back to: central's public address (the balancer's)
    followed by ``/login/oidc/callback``, registered with the directory as this client's redirect URI."""
    display_name: Annotated[str, Meta(min_length=1, max_length=80)] = "the force's directory"
    """Shown on the login page: "Sign in with <display_name>"."""
    scopes: list[Annotated[str, Meta(pattern=r"^[\x21\x23-\x5b\x5d-\x7e]+$(?!\n)")]] = msgspec.field(
        default_factory=lambda: ["openid", "profile", "email"]
    )
    """Scopes asked for; ``openid`` is always among them."""
    groups_claim: Annotated[str, Meta(min_length=1)] = "groups"
    """The ID token's (or userinfo's) claim listing the user's groups (or roles)."""
    name_claim: Annotated[str, Meta(min_length=1)] = "preferred_username"
    """The claim that names the user in central (lower-cased; a character outside a-z, 0-9, '.', '_',
    '-' becomes '-'); the link to the directory is its ``sub``, never this name."""
    groups: dict[str, OidcGroup] = {}
    """Directory group → role (and borough). A user whose groups match none is refused; one in
    several gets the first that matches, in this file's order: list the strongest first."""
    ca_bundle: str | None = None
    """CA certificates (PEM) to trust for the directory's HTTPS, instead of the system's."""
    timeout_s: Annotated[float, Meta(gt=0, le=60)] = 10.0
    """How long central waits for the directory (discovery, keys, the token exchange)."""


class CentralSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """Central's config file."""

    data_dir: str
    host: str = "127.0.0.1"
    port: Port = 8000
    admin_token: str | None = None
    admin_token_env: str | None = None
    admin_token_credential: str | None = None
    admin_token_sha256: Sha256Hex | None = None
    stations: dict[StationId, StationEntry] = {}
    max_upload_bytes: PositiveInt = 64 * GiB
    """Largest clip central accepts (advertised as ``Tus-Max-Size``)."""
    upload_expiry_hours: PositiveFloat = 7 * 24.0
    """An unfinished upload untouched this long is removed (tus expiration)."""
    expiry_check_minutes: PositiveFloat = 30.0
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object a line on stderr, for a log platform (docs/deploy.md)."""
    fleet: FleetSettings = msgspec.field(default_factory=FleetSettings)
    rollout: RolloutFiles = msgspec.field(default_factory=RolloutFiles)
    retention: RetentionSettings = msgspec.field(default_factory=RetentionSettings)
    audit: AuditSettings = msgspec.field(default_factory=AuditSettings)
    dashboard: DashboardSettings = msgspec.field(default_factory=DashboardSettings)
    blobs: BlobSettings = msgspec.field(default_factory=BlobSettings)
    limits: LimitsSettings = msgspec.field(default_factory=LimitsSettings)
    database: DatabaseSettings = msgspec.field(default_factory=DatabaseSettings)
    trusted_proxies: list[str] = msgspec.field(default_factory=lambda: ["127.0.0.1"])
    """Addresses (or networks) of the load balancers in front of central: from them, the client's
    address is taken from ``X-Forwarded-For`` (login throttling, the audit's place). Anyone else's
    ``X-Forwarded-For`` is ignored. ``[]``: believe no one."""
    tls: ServerTlsSettings | None = None
    disclosure: DisclosureSettings = msgspec.field(default_factory=DisclosureSettings)
    keep_requests: KeepRequestSettings = msgspec.field(default_factory=KeepRequestSettings)
    firmware: FirmwareSettings = msgspec.field(default_factory=FirmwareSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    alerts: AlertSettings = msgspec.field(default_factory=AlertSettings)
    oidc: OidcSettings | None = None

    @property
    def anchors_file(self) -> Path:
        return Path(self.audit.anchors_file or Path(self.data_dir) / "audit-anchors.jsonl")


class StationTlsSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[tls]`` in a station's file: whom the station trusts as central, and its own certificate
    for mutual TLS (SECURITY.md). Without ``ca_bundle`` or ``pinned_certificate`` an
    ``https://`` central is checked against the system's trust store."""

    ca_bundle: str | None = None
    """The CA certificates (PEM) that may sign central's certificate, and only they."""
    pinned_certificate: str | None = None
    """Central's own certificate (PEM): trusted alone, whoever signed it (its host name is still checked).
    A chain file pins its first certificate (the leaf) only, never the CA certificates after it."""
    certificate: str | None = None
    """The station's client certificate (PEM), naming the station id, for central's ``[tls] client_ca``."""
    key: str | None = None
    """Its private key (PEM, unencrypted; readable only by the station's user)."""


class KeySource(Struct, kw_only=True, forbid_unknown_fields=True):
    """Where a station key is read from: exactly one of ``file``, ``env``, ``credential``."""

    file: str | None = None
    """A file holding the key as 64 hex digits, readable by the station's user only."""
    env: str | None = None
    """The name of an environment variable holding it."""
    credential: str | None = None
    """A systemd credential's name (``LoadCredential=``): read from ``$CREDENTIALS_DIRECTORY/<name>``."""


class StationKeySettings(KeySource, kw_only=True, forbid_unknown_fields=True):
    """``[station_key]`` in a station's file: the key its clips are sealed under (docs/at-rest.md).

    Never in the station's database: a station without it does not start."""

    previous: list[KeySource] = []
    """During a key rotation, the keys replaced: still accepted for reading until
    ``fleet station rotate-key`` has re-wrapped every clip's data key under the current one."""


class StationFirmwareSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """``[firmware]`` in a station's file: whose firmware it hands to cameras (docs/firmware.md)."""

    release_keys: list[str | ReleaseKey] = []
    """Ed25519 public keys of the vendors whose releases this station hands to cameras, each
    optionally limited to its models (as central's ``[firmware] release_keys``): a downloaded
    artifact is kept only when one of them, for its model, signed it, so the station never takes
    central's word alone. None: no release is handed to a camera."""


class StationSettings(Struct, kw_only=True, forbid_unknown_fields=True):
    """A station node's config file."""

    station_id: StationId
    borough: BoroughName
    central_url: Annotated[str, Meta(pattern=r"^https?://")]
    data_dir: str
    dock_dir: str
    token: str | None = None
    token_env: str | None = None
    token_credential: str | None = None
    """The token as a systemd credential's name (``LoadCredential=``; docs/deploy.md)."""
    scan_interval_s: PositiveFloat = 2.0
    """How often the dock folder is scanned for newly docked cameras."""
    sync_interval_s: PositiveFloat = 10.0
    """How often the sync worker runs when nothing wakes it earlier."""
    concurrent_uploads: Annotated[int, Meta(ge=1, le=32)] = 2
    chunk_bytes: Annotated[int, Meta(ge=64 * 1024, le=1024 * MiB)] = DEFAULT_CHUNK_BYTES
    """Size of one tus PATCH; each carries its own Upload-Checksum. Chunks are streamed from
    disk (no memory cost); larger ones mean fewer fsyncs at central, smaller ones less
    to resend after a cut."""
    chunk_checksum: Literal["crc32c", "crc32", "sha1", "sha256"] = "crc32c"
    """Algorithm of each chunk's Upload-Checksum. It guards the transfer of that chunk; the
    clip as a whole is always verified with SHA-256 before central says "verified"."""
    bandwidth_limit_mbps: NonNegativeFloat = 0.0
    """Cap on upload bandwidth for the whole station in Mbit/s; 0 means no cap."""
    upload_window: Annotated[str, Meta(pattern=r"^\d\d:\d\d-\d\d:\d\d$(?!\n)")] | None = None
    """Hours when clips that are neither evidential nor held may use the link, e.g.
    ``"19:00-07:00"`` (across midnight), in ``timezone``; evidential and held clips go up at
    any time. Unset: any time."""
    timezone: str = "Europe/London"
    """The station's local time, for ``upload_window``."""
    verified_grace_hours: NonNegativeFloat = 24.0
    """How long a verified clip's local copy is kept before it is deleted."""
    min_free_bytes: Annotated[int, Meta(ge=0)] = 256 * MiB
    """Room always kept free on the station's disk, so its database can record what happens. A
    camera whose clips would cut into it stays docked with its footage ("disk full: ...")
    and is ingested as soon as uploaded clips free the space."""
    retry_initial_s: PositiveFloat = 1.0
    retry_max_s: PositiveFloat = 300.0
    """Backoff between attempts grows from ``retry_initial_s`` to at most this (full jitter)."""
    request_timeout_s: PositiveFloat = 30.0
    log_level: str = "info"
    log_format: Literal["text", "json"] = "text"
    """``json``: one JSON object a line on stderr, for a log platform (docs/deploy.md)."""
    events_interval_s: PositiveFloat = 5.0
    """How often unsent events go up (ingest and checkouts also send at once)."""
    events_linger_s: NonNegativeFloat = 0.0
    """After an ingest or a checkout, wait this long before sending, so the events of a rush
    (a shift's cameras docking together) go up in one batch rather than one request each."""
    heartbeat_s: PositiveFloat = 60.0
    """With nothing to send, report the backlog to central this often."""
    events_batch: Annotated[int, Meta(ge=1, le=5000)] = 1000
    feed_wait_s: Annotated[float, Meta(gt=0, le=30)] = 20.0
    """Long-poll of central's changes feed: how long central may hold the request."""
    feed_linger_s: NonNegativeFloat = 0.0
    """After a page of changes, wait this long before asking again, so a burst of changes
    (cameras first seen all over a borough) comes in a few pages rather than a request each."""
    api_host: str = "127.0.0.1"
    api_port: Port | None = None
    """The desk's local HTTP API (checkout/check-in, status); off unless a port is given."""
    api_token: str | None = None
    api_token_env: str | None = None
    """Needed when the local API listens beyond loopback."""
    tls: StationTlsSettings | None = None
    station_key: StationKeySettings = msgspec.field(default_factory=StationKeySettings)
    firmware: StationFirmwareSettings = msgspec.field(default_factory=StationFirmwareSettings)
    metrics: MetricsSettings = msgspec.field(default_factory=MetricsSettings)
    """``/metrics`` on the desk API (``api_port``): with a token, only it scrapes; without, as ``/status``."""


SettingsT = TypeVar("SettingsT", CentralSettings, StationSettings)


def resolve_secret(owner: Any, key: str, where: str, *, base: Path | None = None) -> None:
    """Fill ``owner.<key>`` from ``owner.<key>_env`` (or ``_file``, ``_credential`` where the
    setting has them) when the secret is given by name.

    Central's secrets may also be given as ``<key>_sha256``; then ``<key>`` stays None.
    """
    sources = ("", "_env", "_file", "_credential", "_sha256")
    given = [key + suffix for suffix in sources if getattr(owner, key + suffix, None) is not None]
    if len(given) > 1:
        raise ConfigError(f"{where}: give only one of {', '.join(given)}")
    inline, env_name = getattr(owner, key), getattr(owner, f"{key}_env")
    file, credential = getattr(owner, f"{key}_file", None), getattr(owner, f"{key}_credential", None)
    if getattr(owner, f"{key}_sha256", None) is not None:
        return
    if file is not None:
        path = Path(_resolve_path(base or Path.cwd(), file))
        setattr(owner, f"{key}_file", str(path))
        setattr(owner, key, _read_secret_file(path, f"{where}: {key}_file"))
    elif env_name is not None:
        value = os.environ.get(env_name)
        if not value:
            raise ConfigError(f"{where}: {key}_env names ${env_name}, which is not set")
        setattr(owner, key, value)
    elif credential is not None:
        path = credential_path(credential, f"{where}: {key}_credential")
        setattr(owner, key, _read_secret_file(path, f"{where}: {key}_credential", private=False))
    elif inline is None:
        raise ConfigError(f"{where}: {key} (or {key}_env) is required")
    elif not inline.strip():
        raise ConfigError(f"{where}: {key} must not be empty")


def credential_path(name: str, where: str) -> Path:
    """``$CREDENTIALS_DIRECTORY/<name>``: a credential systemd loaded for this unit (``LoadCredential=``)."""
    if "/" in name or name in ("", ".", ".."):
        raise ConfigError(f"{where}: a credential is a name, not a path")
    folder = os.environ.get("CREDENTIALS_DIRECTORY")
    if not folder:
        raise ConfigError(
            f"{where}: credential {name!r} needs $CREDENTIALS_DIRECTORY "
            "(set by systemd for a unit with LoadCredential=)"
        )
    return Path(folder) / name


def _read_secret_file(path: Path, where: str, *, private: bool = True) -> str:
    """A secret kept in a file of its own (its first line). ``private``: readable by its owner only
    (a file named in the config); a credential's folder is the service's own (systemd's, or a
    container's secrets), whatever its files' modes."""
    import stat

    try:
        info = path.stat()
        if private and info.st_mode & 0o077:
            raise ConfigError(
                f"{where}: {path} is open to group or others (mode {stat.S_IMODE(info.st_mode):04o}): "
                f"`chmod 600 {path}`"
            )
        text = path.read_text(encoding="utf-8").split("\n", 1)[0].strip()
    except OSError as exc:
        raise ConfigError(f"{where}: {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{where}: {path} is not text") from None
    if not text:
        raise ConfigError(f"{where}: {path} is empty")
    return text


def _resolve_path(base: Path, value: str) -> str:
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else (base / path).resolve())


def read_toml(path: str | os.PathLike[str], what: str = "config file") -> dict[str, Any]:
    """A TOML file as a dict; ConfigError with a one-line reason otherwise (every TOML file here)."""
    path = Path(path)
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{what} not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def load_settings(path: str | os.PathLike[str], kind: type[SettingsT]) -> SettingsT:
    """Read and validate a config file; ConfigError with a one-line reason otherwise."""
    path = Path(path)
    return settings_from_dict(read_toml(path), kind, where=str(path), base=path.parent)


def settings_from_dict(
    raw: dict[str, Any], kind: type[SettingsT], *, where: str = "config", base: Path | None = None
) -> SettingsT:
    """Validate already-parsed settings (also used by tests and the demo)."""
    try:
        settings = msgspec.convert(raw, kind)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"{where}: {readable(str(exc))}") from None
    base = base or Path.cwd()
    if isinstance(settings, CentralSettings):
        resolve_secret(settings, "admin_token", where)
        for station_id, entry in settings.stations.items():
            resolve_secret(entry, "token", f"{where}: [stations.{station_id}]")
        if settings.metrics.configured:
            resolve_secret(settings.metrics, "token", f"{where}: [metrics]")
        settings.data_dir = _resolve_path(base, settings.data_dir)
        for key in ("boroughs", "scenario"):
            if getattr(settings.rollout, key) is not None:
                setattr(settings.rollout, key, _resolve_path(base, getattr(settings.rollout, key)))
        if settings.retention.rules is not None:
            settings.retention.rules = _resolve_path(base, settings.retention.rules)
        if settings.audit.anchors_file is not None:
            settings.audit.anchors_file = _resolve_path(base, settings.audit.anchors_file)
        _check_blobs(settings.blobs, f"{where}: [blobs]")
        _check_database(settings.database, f"{where}: [database]")
        _check_proxies(settings.trusted_proxies, where)
        if settings.tls is not None:
            _check_server_tls(settings.tls, base, f"{where}: [tls]")
        if settings.disclosure.signing_key is not None:
            _check_key_source(settings.disclosure.signing_key, base, f"{where}: [disclosure] signing_key")
        _check_release_keys(settings.firmware.release_keys, f"{where}: [firmware] release_keys")
        _check_alerts(settings, base, f"{where}: [alerts]")
        if settings.oidc is not None:
            _check_oidc(settings.oidc, base, f"{where}: [oidc]")
        if (settings.rollout.boroughs is None) != (settings.rollout.scenario is None):
            raise ConfigError(f"{where}: [rollout] needs both boroughs and scenario")
    else:
        resolve_secret(settings, "token", where, base=base)
        if settings.metrics.configured:
            resolve_secret(settings.metrics, "token", f"{where}: [metrics]")
        if settings.api_token is not None or settings.api_token_env is not None:
            resolve_secret(settings, "api_token", where)
            code = (settings.api_token or "").strip()
            if len(code) < MIN_ACCESS_CODE:
                raise ConfigError(
                    f"{where}: api_token has fewer than {MIN_ACCESS_CODE} characters: the desk's access code "
                    "checks cameras out; make a long random one (`openssl rand -hex 16`)"
                )
            if not (code.isascii() and code.isprintable()):
                # The page's form takes any text, but an HTTP header is read as Latin-1: the API never matched.
                raise ConfigError(
                    f"{where}: api_token has a character that is not printable ASCII: the desk's API could "
                    "never be given it in its Authorization header (`openssl rand -hex 16` makes a good one)"
                )
        elif settings.api_port is not None and settings.api_host not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(
                f"{where}: api_host {settings.api_host!r} is not loopback: set api_token "
                "(or api_token_env) so only the desk can check cameras out"
            )
        settings.data_dir = _resolve_path(base, settings.data_dir)
        settings.dock_dir = _resolve_path(base, settings.dock_dir)
        settings.central_url = settings.central_url.rstrip("/")
        _check_window(settings, where)
        if settings.tls is not None:
            _check_station_tls(settings.tls, settings.central_url, base, f"{where}: [tls]")
        _check_station_key(settings.station_key, base, f"{where}: [station_key]")
        _check_release_keys(settings.firmware.release_keys, f"{where}: [firmware] release_keys")
    return settings


def _check_window(settings: StationSettings, where: str) -> None:
    """A known time zone, and a window of real times that opens and closes at different minutes."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(settings.timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(f"{where}: timezone {settings.timezone!r} is not a known time zone") from None
    if settings.upload_window is None:
        return
    opens, _, closes = settings.upload_window.partition("-")
    for moment in (opens, closes):
        hour, minute = (int(part) for part in moment.split(":"))
        if hour > 23 or minute > 59:
            raise ConfigError(f"{where}: upload_window {settings.upload_window}: {moment} is not a time of day")
    if opens == closes:
        raise ConfigError(f"{where}: upload_window {settings.upload_window} opens and closes at once (leave it out)")


def _tls_files(tls: Any, keys: tuple[str, ...], base: Path, where: str) -> None:
    """Each given file made absolute and checked readable now, not at the first handshake."""
    for key in keys:
        value = getattr(tls, key)
        if value is None:
            continue
        path = Path(_resolve_path(base, value))
        try:
            path.read_bytes()
        except OSError as exc:
            raise ConfigError(f"{where}: {key} {path}: {exc.strerror or exc}") from None
        setattr(tls, key, str(path))


def _check_server_tls(tls: ServerTlsSettings, base: Path, where: str) -> None:
    _tls_files(tls, ("certificate", "key", "client_ca"), base, where)
    from fleet.tls import TlsError, server_context

    try:
        server_context(tls)  # the pair matches, the CA reads: checked before central starts
    except TlsError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_station_tls(tls: StationTlsSettings, central_url: str, base: Path, where: str) -> None:
    if tls.ca_bundle is not None and tls.pinned_certificate is not None:
        raise ConfigError(f"{where}: give ca_bundle or pinned_certificate, not both")
    if (tls.certificate is None) != (tls.key is None):
        raise ConfigError(f"{where}: give certificate and key together (mutual TLS), or neither")
    if not central_url.startswith("https://"):
        raise ConfigError(f"{where}: central_url {central_url} is not https://, so [tls] would never be used")
    _tls_files(tls, ("ca_bundle", "pinned_certificate", "certificate", "key"), base, where)
    from fleet.tls import TlsError, client_context

    try:
        client_context(tls)
    except TlsError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check_station_key(keys: StationKeySettings, base: Path, where: str) -> None:
    """One source per key (none at all: the station refuses to start, commands that only read work)."""
    for n, source in enumerate([keys, *keys.previous]):
        _check_key_source(source, base, where if n == 0 else f"{where} previous[{n - 1}]", required=n > 0)


def _check_key_source(source: KeySource, base: Path, where: str, *, required: bool = True) -> None:
    given = [name for name in ("file", "env", "credential") if getattr(source, name) is not None]
    if len(given) > 1 or (required and not given):
        raise ConfigError(f"{where}: give exactly one of file, env, credential")
    if source.file is not None:
        source.file = _resolve_path(base, source.file)
    if source.credential is not None and ("/" in source.credential or source.credential in (".", "..")):
        raise ConfigError(f"{where}: credential is a name, not a path")


S3_ONLY = (
    "bucket",
    "endpoint_url",
    "region",
    "access_key_id",
    "secret_access_key",
    "secret_access_key_env",
    "secret_access_key_credential",
)


def _check_blobs(blobs: BlobSettings, where: str) -> None:
    """The blob store's settings hang together; the S3 secret is resolved from its variable."""
    given = [name for name in S3_ONLY if getattr(blobs, name) is not None] + (["prefix"] if blobs.prefix else [])
    if blobs.backend == "filesystem":
        if blobs.stage_uploads:
            given.append("stage_uploads")
        if given:
            raise ConfigError(f'{where}: {", ".join(given)} only apply to backend = "s3"')
        blobs.stage_uploads = False
        return
    if blobs.stage_uploads is None:
        blobs.stage_uploads = True
    if blobs.bucket is None:
        raise ConfigError(f'{where}: backend = "s3" needs bucket')
    if any(getattr(blobs, f"secret_access_key{s}") is not None for s in ("", "_env", "_credential")):
        resolve_secret(blobs, "secret_access_key", where)
    if (blobs.access_key_id is None) != (blobs.secret_access_key is None):
        raise ConfigError(
            f"{where}: give access_key_id and secret_access_key (or secret_access_key_env) "
            "together, or neither to let boto3 find credentials"
        )


def _check_proxies(proxies: list[str], where: str) -> None:
    """Each an address or a network, never all of them: ``*`` or ``0.0.0.0/0`` would let any client
    say who it is (the key of the login and form throttles)."""
    import ipaddress

    for entry in proxies:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise ConfigError(
                f"{where}: trusted_proxies: {entry!r} is not an address or a network (list the balancers themselves)"
            ) from None
        if network.prefixlen == 0:
            raise ConfigError(
                f"{where}: trusted_proxies: {entry!r} trusts every address, so any client could claim any "
                "other's address (list the balancers themselves)"
            )


def _check_release_keys(keys: list[str | ReleaseKey], where: str) -> None:
    """Each key an Ed25519 public key, none given twice, each model it is limited to a model's
    name: a typo is found at start-up, not when a vendor's release is refused."""
    from fleet.firmware import Model, parse_public_key, public_key_hex

    seen: dict[str, int] = {}
    for n, entry in enumerate(keys):
        text = entry if isinstance(entry, str) else entry.key
        try:
            key = public_key_hex(parse_public_key(text))
        except ValueError as exc:
            raise ConfigError(f"{where}[{n}]: {exc}") from None
        for model in [] if isinstance(entry, str) else entry.models:
            try:
                msgspec.convert(model, Model)
            except msgspec.ValidationError as exc:
                raise ConfigError(f"{where}[{n}]: models: {model[:64]!r} is not a camera model's name: {exc}") from None
        if key in seen:
            raise ConfigError(f"{where}[{n}]: the same key as release_keys[{seen[key]}]")
        seen[key] = n


MIN_ACCESS_CODE = 16
"""Characters of a desk's ``api_token`` at least (``openssl rand -hex 16`` gives 32): with the desk's
lockout of wrong codes (``station.access_code``), far more guesses than a station's network
could send in the code's lifetime."""

MIN_WEBHOOK_SECRET = 32
"""Characters of a webhook's shared secret at least (``openssl rand -hex 32`` gives 64)."""


def _check_alerts(settings: CentralSettings, base: Path, where: str) -> None:
    """Each destination is one webhook (with its secret) or mailboxes (with ``[alerts.smtp]``), names
    known boroughs, and has its secrets resolved: a typo stops central, not the first alert."""
    alerts = settings.alerts
    if alerts.smtp is not None:
        smtp = alerts.smtp
        if smtp.ca_bundle is not None:
            smtp.ca_bundle = _resolve_path(base, smtp.ca_bundle)
        given = [k for k in ("password", "password_env", "password_file") if getattr(smtp, k) is not None]
        if (smtp.username is None) != (not given):
            raise ConfigError(f"{where} smtp: give username with password (or password_env, password_file), or neither")
        if given:
            resolve_secret(smtp, "password", f"{where} smtp", base=base)
    boroughs = {entry.borough for entry in settings.stations.values()}
    for name, dest in alerts.destinations.items():
        here = f"{where} destinations.{name}"
        if (dest.webhook_url is None) == (not dest.email_to):
            raise ConfigError(f"{here}: give webhook_url or email_to (one destination, one channel)")
        secrets = [k for k in ("secret", "secret_env", "secret_file") if getattr(dest, k) is not None]
        if dest.webhook_url is not None:
            resolve_secret(dest, "secret", here, base=base)
            if len(dest.secret or "") < MIN_WEBHOOK_SECRET:
                raise ConfigError(
                    f"{here}: the secret has fewer than {MIN_WEBHOOK_SECRET} characters (`openssl rand -hex 32`)"
                )
        elif secrets:
            raise ConfigError(f"{here}: {', '.join(secrets)} only go with webhook_url")
        elif alerts.smtp is None:
            raise ConfigError(f"{here}: email_to needs [alerts.smtp] (the mail relay)")
        for borough in dest.boroughs or []:
            if borough not in boroughs:
                raise ConfigError(
                    f"{here}: boroughs: {borough[:64]!r} is no station's borough "
                    f"(known: {', '.join(sorted(boroughs)) or 'none'})"
                )
        if dest.boroughs == [] or dest.kinds == []:
            raise ConfigError(f"{here}: an empty list would send nothing; leave the key out for all")


def _check_database(database: DatabaseSettings, where: str) -> None:
    """The URL given inline or by variable (not both), a PostgreSQL URL libpq can read. The
    messages never repeat it: it carries the password."""
    if database.url_env is not None or database.url_credential is not None:
        resolve_secret(database, "url", where)
        if not re.match(r"^postgres(ql)?://", database.url or ""):
            named = f"${database.url_env}" if database.url_env else f"credential {database.url_credential}"
            raise ConfigError(f"{where}: {named} is not a postgresql:// URL")
    if database.url is None:
        return
    from psycopg import conninfo

    try:
        conninfo.conninfo_to_dict(database.url)
    except Exception:  # its message quotes the URL, password and all
        raise ConfigError(
            f"{where}: url is not a valid PostgreSQL URL (a character in the password may need "
            "percent-encoding, e.g. % as %25)"
        ) from None


def _check_oidc(oidc: OidcSettings, base: Path, where: str) -> None:
    """The directory's address is HTTPS (plain HTTP only on loopback, for tests), the secret is
    resolved, each group's borough goes with a role that has one."""
    from urllib.parse import urlsplit

    for key in ("issuer", "redirect_url"):
        url = urlsplit(getattr(oidc, key))
        if url.scheme != "https" and url.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ConfigError(f"{where}: {key} must be https:// (plain http:// only on loopback, for a test)")
    oidc.issuer = oidc.issuer.rstrip("/")
    resolve_secret(oidc, "client_secret", where, base=base)
    if "openid" not in oidc.scopes:
        oidc.scopes = ["openid", *oidc.scopes]
    if not oidc.groups:
        raise ConfigError(f"{where}: groups maps no directory group to a role, so nobody could sign in")
    for group, grant in oidc.groups.items():
        if (grant.borough is not None or grant.force_wide) and grant.role not in BOROUGH_ROLES:
            raise ConfigError(
                f"{where}: groups.{group!r}: only a {' or an '.join(BOROUGH_ROLES)} has a borough (or is "
                f"force_wide), not a {grant.role}"
            )
        if grant.role in BOROUGH_ROLES and (grant.borough is None) == (not grant.force_wide):
            raise ConfigError(
                f'{where}: groups.{group!r}: a {grant.role} acts for one borough (borough = "...") or, said '
                "outright, for the whole force (force_wide = true): give exactly one"
            )
    if oidc.ca_bundle is not None:
        _tls_files(oidc, ("ca_bundle",), base, where)


def token_sha256(owner: Any, key: str) -> str:
    """The SHA-256 (hex) of a resolved secret: what central keeps in memory and compares."""
    import hashlib

    hashed = getattr(owner, f"{key}_sha256", None)
    return hashed if hashed is not None else hashlib.sha256(getattr(owner, key).encode()).hexdigest()
