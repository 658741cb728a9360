"""Central's composition root: every collaborator built in one place, with its type.

``build_services(settings, store, blobs)`` makes the feature services over one store; the
commands (``fleet central …``) and the benchmarks use them straight on the database. A serving
central holds more, opened by ``create_app``'s lifespan: ``AppServices`` adds the upload
receiver, the token registry, admission control, the scheduler and the login form's key.
Handlers receive these by name and type through Litestar's dependency injection
(``central.core.providers``), never by looking them up on the app's state.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from central.access.auth import TokenRegistry
from central.access.oidc import DirectorySignIn
from central.access.scope import OwnerLookup
from central.access.users import UserService
from central.alerts.service import AlertService
from central.core.admission import Admission
from central.core.leadership import Leadership
from central.core.metrics import CentralMetrics
from central.core.store import CentralStore
from central.events.changes import ChangeLog
from central.events.log import EventLog
from central.events.projection import Projector
from central.evidence.clip_records import ClipRecords
from central.evidence.disclosure import DisclosureService
from central.evidence.keep_requests import KeepRequests
from central.evidence.retention import RetentionService
from central.evidence.shares import ShareService
from central.firmware.deployments import DeploymentService
from central.firmware.profiles import ProfileService
from central.firmware.releases import ReleaseService
from central.registry.assignments import AssignmentService
from central.registry.devices import DeviceService
from central.registry.fleet_health import FleetHealth
from central.registry.models import ModelService
from central.registry.officers import OfficerService
from central.registry.stations import StationService
from central.rollout.replacements import Replacements
from central.rollout.service import RolloutService
from central.uploads.blobstore import BlobStore, open_blob_store
from central.uploads.receiver import UploadReceiver
from central.web.evidence_pages import ChainCheck
from central.web.public_figures import PublicFigures
from fleet.config import CentralSettings


@dataclass(frozen=True, kw_only=True, slots=True)
class Services:
    """The feature services over one store, and what they were built from."""

    settings: CentralSettings
    store: CentralStore
    clips: ClipRecords
    blobs: BlobStore
    changes: ChangeLog
    stations: StationService
    events: EventLog
    devices: DeviceService
    officers: OfficerService
    assignments: AssignmentService
    health: FleetHealth
    rollout: RolloutService
    models: ModelService
    """Camera models and their withdrawal (``central.registry.models``)."""
    replacements: Replacements
    """A withdrawn model's cameras swapped through the roll-out (``central.rollout.replacements``)."""
    users: UserService
    retention: RetentionService
    owners: OwnerLookup
    disclosure: DisclosureService
    shares: ShareService
    keep_requests: KeepRequests
    releases: ReleaseService
    """Firmware releases: vendor-signed artifacts in the blob store (``central.firmware.releases``)."""
    profiles: ProfileService
    """Camera profiles by scope, and each camera's explained (``central.firmware.profiles``)."""
    deployments: DeploymentService
    """Releases and profiles delivered in phases that pause themselves (``central.firmware.deployments``)."""
    public_figures: PublicFigures
    """The published months' figures, computed once each in this process (``central.web.public_figures``)."""
    metrics: CentralMetrics
    """This process's counters for ``/metrics`` (``central.core.metrics``)."""
    alerts: AlertService
    """Alerts that need a person, pushed as digests to webhooks and mailboxes (``central.alerts``)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class AppServices(Services):
    """What a serving central holds: its services and what only the app opens (the lifespan)."""

    receiver: UploadReceiver
    tokens: TokenRegistry
    admission: Admission
    scheduler: AsyncIOScheduler
    login_csrf_key: bytes
    chain_check: ChainCheck
    """The audit page's last chain check (who asked, when, what it found)."""
    leadership: Leadership
    """Whether this process runs the jobs that run once (``central.core.leadership``)."""
    directory: DirectorySignIn
    """Staff sign-in through the force's directory (``[oidc]``; ``central.access.oidc``)."""

    @classmethod
    def serving(
        cls,
        services: Services,
        *,
        receiver: UploadReceiver,
        tokens: TokenRegistry,
        admission: Admission,
        scheduler: AsyncIOScheduler,
        login_csrf_key: bytes,
        chain_check: ChainCheck,
        leadership: Leadership,
        directory: DirectorySignIn,
    ) -> AppServices:
        return cls(
            **{f.name: getattr(services, f.name) for f in fields(Services)},
            receiver=receiver,
            tokens=tokens,
            admission=admission,
            scheduler=scheduler,
            login_csrf_key=login_csrf_key,
            chain_check=chain_check,
            leadership=leadership,
            directory=directory,
        )


PLAIN_VALUES = frozenset({"settings", "admission", "login_csrf_key", "chain_check", "leadership", "metrics"})
"""Fields that never touch the database, the disk or the network: any handler may take them
(the others are services: see the event-loop rule in ``central.core.providers``)."""


def build_services(
    settings: CentralSettings,
    store: CentralStore,
    blobs: BlobStore | None = None,
    metrics: CentralMetrics | None = None,
) -> Services:
    """The feature services over ``store`` (``blobs``: the configured blob store when not given;
    ``metrics``: the app's, when serving)."""
    blobs = blobs or open_blob_store(settings)
    metrics = metrics or CentralMetrics()
    changes = ChangeLog(store.writer, settings)
    stations = StationService(store.writer, settings)
    retention = RetentionService(store.writer, changes, blobs, settings, metrics)
    disclosure = DisclosureService(store.writer, blobs, settings)
    rollout = RolloutService(store.writer, changes, settings)
    models = ModelService(store.writer)
    deployments = DeploymentService(store.writer, changes, settings)
    owners = OwnerLookup(store.writer, settings)
    devices = DeviceService(store.writer, changes)
    return Services(
        settings=settings,
        store=store,
        clips=ClipRecords(store.writer),
        blobs=blobs,
        changes=changes,
        stations=stations,
        events=EventLog(store.writer, Projector(settings.fleet, changes), metrics),
        devices=devices,
        officers=OfficerService(store.writer, changes),
        assignments=AssignmentService(store.writer, changes),
        health=FleetHealth(store.writer, settings, stations, changes),
        rollout=rollout,
        models=models,
        replacements=Replacements(store.writer, models, rollout),
        users=UserService(store.writer),
        owners=owners,
        retention=retention,
        disclosure=disclosure,
        shares=ShareService(store.writer, blobs, disclosure, settings),
        keep_requests=KeepRequests(store.writer, changes, retention, settings),
        releases=ReleaseService(store.writer, blobs, settings, deployments),
        profiles=ProfileService(store.writer),
        deployments=deployments,
        public_figures=PublicFigures(store.writer, stations),
        metrics=metrics,
        alerts=AlertService(store.writer, settings, owners, devices, stations, metrics),
    )


@contextmanager
def open_services(settings: CentralSettings) -> Iterator[Services]:
    """The services straight on central's database, for a command: it works whether or not
    central is serving (SQLite WAL; writes take their turn)."""
    store = CentralStore.open(settings)
    try:
        yield build_services(settings, store)
    finally:
        store.close()
