"""The one way to build central: ``create_app(settings)``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from pathlib import Path

import msgspec
from litestar import Litestar, Response, get
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware import DefineMiddleware
from litestar.plugins.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from central.access import login_csrf
from central.access.auth import TokenRegistry, metrics_scraper, provide_principal
from central.access.oidc import DirectorySignIn
from central.access.scope import check_declarations, enforce_scope, no_borough, provide_within
from central.alerts.collector import AlertCollector
from central.core import openapi, providers
from central.core.admission import Admission, AdmissionMiddleware
from central.core.errors import EXCEPTION_HANDLERS, error_response
from central.core.headers import STATIC_PATH, add_security_headers
from central.core.jobs import build_scheduler, stop_scheduler
from central.core.leadership import Leadership
from central.core.metrics import CentralCollector, CentralMetrics, RequestMetricsMiddleware
from central.core.notifications import CHANGES, EVENTS, Listener
from central.core.providers import Injected
from central.core.services import AppServices, build_services
from central.core.store import CentralStore
from central.events.changes import ChangesController
from central.events.log import EventsController, ProjectionWorker
from central.evidence import audit
from central.evidence.clips import ClipController
from central.evidence.custody import CustodyController
from central.evidence.disclosure import DisclosureController
from central.evidence.retention import RetentionController
from central.evidence.shares import ShareController
from central.firmware.deployment_routes import DeploymentController
from central.firmware.profiles import ProfileController
from central.firmware.releases import ReleaseController
from central.registry.assignments import AssignmentController
from central.registry.devices import DeviceController
from central.registry.officers import OfficerController
from central.registry.stations import StationController
from central.rollout.replacements import ModelController
from central.rollout.service import RolloutController
from central.uploads.blobstore import open_blob_store
from central.uploads.receiver import UploadReceiver
from central.uploads.tus import UploadController
from central.web import local_time, long_values
from central.web.case_pages import CasePages, SharedPages
from central.web.dashboard import DashboardController
from central.web.deployment_pages import DeploymentPages
from central.web.evidence_pages import ChainCheck, EvidencePages
from central.web.firmware_pages import FirmwarePages
from central.web.keep_pages import KeepRequestPages, PublicKeepFootage
from central.web.people_pages import PeoplePages
from central.web.public_pages import PublicData, PublicPage
from central.web.rollout_pages import RolloutPages
from fleet import __version__
from fleet.config import CentralSettings
from fleet.metrics import CONTENT_TYPE, exposition
from fleet.protocol import Health


@get(
    "/healthz",
    summary="Liveness: 200 when the database answers",
    exclude_from_auth=True,
    tags=["health"],
    responses=openapi.errors(503),
    scope=no_borough("whether central answers"),
    sync_to_thread=True,
)
def healthz(
    store: Injected[CentralStore], admission: Injected[Admission], leadership: Injected[Leadership]
) -> Response:
    try:
        ok = store.ping()
    except Exception:
        ok = False
    if not ok:
        return error_response(503, "unavailable", "database not reachable")
    return Response(Health(status="ok", version=__version__, load=admission.load(), leading=leadership.leading))


@get(
    "/metrics",
    summary="Prometheus metrics of this replica (docs/metrics.md)",
    description="The text exposition format. Needs the `[metrics]` token, or a force-wide admin.",
    guards=[metrics_scraper],
    tags=["health"],
    media_type=CONTENT_TYPE,
    responses=openapi.errors(401, 403),
    security=[{openapi.BEARER: []}],  # it takes no principal: describe() would not say so
    scope=no_borough("counts and timings, every borough's alike: the scraper's token or a force-wide admin"),
    sync_to_thread=True,  # the collector reads the database
)
def metrics_endpoint(metrics: Injected[CentralMetrics]) -> Response:
    return Response(exposition(metrics.registry), media_type=CONTENT_TYPE)


WEB = Path(__file__).parents[1] / "web"
STATIC_FILES = no_borough("the dashboard's stylesheets")


def _template_helpers(engine: JinjaTemplateEngine) -> None:
    """What every page's template may call: long values shortened the one way, times in London's."""
    engine.engine.globals.update(long_value=long_values.long_value)
    engine.engine.filters["hashes_shortened"] = long_values.hashes_shortened
    engine.engine.filters["local"] = local_time.local


def create_app(settings: CentralSettings) -> Litestar:
    """Build central; resources open in the lifespan, so building has no side effects.

    The lifespan opens what ``providers.settings_of(app)`` names: the tests start one built app again on
    another test's folder and database (``tests/central/apps.py``), as building the routes takes
    most of a second and starting it a fifth. Building reads ``settings.limits`` alone (admission's
    lanes): settings with other limits are another app."""

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        settings = providers.settings_of(app)
        data_dir = Path(settings.data_dir)
        # Whatever was opened is closed again, also when a later step of the start-up fails.
        async with AsyncExitStack() as opened:
            blobs = open_blob_store(settings)
            blobs.check()  # e.g. a missing bucket stops central here, before anything is opened or served
            store = CentralStore.open(settings)
            opened.callback(store.close)
            receiver = UploadReceiver(
                store,
                blobs,
                data_dir / "uploads",
                max_upload_bytes=settings.max_upload_bytes,
                expiry=timedelta(hours=settings.upload_expiry_hours),
                body_idle_timeout_s=settings.limits.body_idle_timeout_s,
                station_boroughs={station: entry.borough for station, entry in settings.stations.items()},
                metrics=metrics,
            )
            opened.callback(receiver.close)
            await receiver.recover()
            services = build_services(settings, store, blobs, metrics)
            services.disclosure.signer()  # a signing key that cannot be read stops central here, saying why
            services.releases.sweep_staging()  # firmware uploads a crash cut short
            with store.writer.write() as db:
                audit.record_config(db, msgspec.to_builtins(settings))
            adopted = services.retention.adopt_configured()
            if adopted.shortened and not adopted.applied:
                logging.getLogger(__name__).warning(
                    "the retention rules in %s shorten %s (%d clips would be deleted): NOT applied; the rules in "
                    "force stay. To apply them: fleet central retention apply --confirm",
                    settings.retention.rules,
                    ", ".join(adopted.shortened),
                    adopted.would_delete,
                )
            services.changes.bind(asyncio.get_running_loop())
            services.changes.publish_policies()
            listener = Listener(store.writer)  # other replicas' commits (PostgreSQL; nothing on SQLite)
            listener.subscribe(CHANGES, services.changes.heard)
            listener.subscribe(EVENTS, lambda _station: services.events.pending.set())
            listener.start()
            opened.callback(listener.stop)
            leadership = Leadership(store.writer, data_dir)
            projection = ProjectionWorker(services.events, leadership)
            leadership.start()
            opened.callback(leadership.stop)
            projection.start()
            opened.callback(projection.stop)
            chain_check = ChainCheck()
            scheduler = build_scheduler(services, receiver, leadership, chain_check)
            collector = CentralCollector(
                store.writer,
                settings,
                leading=lambda: leadership.leading,
                chain=lambda: (c[0], c[1].intact, c[1].records) if (c := chain_check.last) else None,
                jobs=lambda: metrics.jobs,
            )
            metrics.registry.register(collector)
            opened.callback(metrics.registry.unregister, collector)
            alert_collector = AlertCollector(store.writer)
            metrics.registry.register(alert_collector)
            opened.callback(metrics.registry.unregister, alert_collector)
            # The leader's last check of the audit chain: a broken chain is an alert.
            services.alerts.chain_intact = lambda: c[1].intact if (c := chain_check.last) else None
            providers.keep(
                app,
                AppServices.serving(
                    services,
                    receiver=receiver,
                    tokens=TokenRegistry(settings, services.users),
                    admission=admission,
                    scheduler=scheduler,
                    login_csrf_key=login_csrf.signing_key(store.writer),
                    chain_check=chain_check,
                    leadership=leadership,
                    directory=DirectorySignIn(settings.oidc, store.writer, services.users),
                ),
            )
            scheduler.start()
            opened.push_async_callback(stop_scheduler, scheduler)  # the health job runs on a thread: let it finish
            yield

    admission = Admission(settings.limits)
    metrics = CentralMetrics()
    openapi_config = openapi.config()
    app = Litestar(
        route_handlers=[
            healthz,
            metrics_endpoint,
            UploadController,
            ClipController,
            EventsController,
            ChangesController,
            DeviceController,
            OfficerController,
            AssignmentController,
            StationController,
            RolloutController,
            ModelController,
            RetentionController,
            CustodyController,
            DisclosureController,
            ShareController,
            ReleaseController,
            DeploymentController,
            ProfileController,
            DashboardController,
            PeoplePages,
            EvidencePages,
            RolloutPages,
            FirmwarePages,
            DeploymentPages,
            CasePages,
            SharedPages,
            PublicKeepFootage,
            KeepRequestPages,
            PublicPage,
            PublicData,
            create_static_files_router(
                STATIC_PATH, [WEB / "static"], include_in_schema=False, opt={"scope": STATIC_FILES}
            ),
        ],
        dependencies={
            "principal": Provide(provide_principal),
            "within": Provide(provide_within),
            **providers.dependencies(),
        },
        guards=[enforce_scope],
        # Outermost first: the request metrics see every answer, admission's refusals included.
        middleware=[
            DefineMiddleware(RequestMetricsMiddleware, metrics=metrics),
            DefineMiddleware(AdmissionMiddleware, admission=admission),
        ],
        exception_handlers=EXCEPTION_HANDLERS,
        before_send=[add_security_headers],
        lifespan=[lifespan],
        template_config=TemplateConfig(
            directory=WEB / "templates", engine=JinjaTemplateEngine, engine_callback=_template_helpers
        ),
        openapi_config=openapi_config,
        state=State({"settings": settings}),  # read through providers.settings_of
        logging_config=None,  # the process configures logging once (fleet.logs)
        debug=False,
    )
    openapi.describe(app)
    check_declarations(app, skip_prefix=openapi_config.path or "/schema")
    providers.check_handlers(app)
    providers.resolve_in_turn(app)
    return app
