"""Central's alerts, together: the elected job's two steps (digest, deliver) and the commands' views.

``run`` is the job (every ``[alerts] digest_minutes``, by the leading replica): count what needs a
person, write one message per destination that has news (``central.alerts.digest``) in the same
transaction as the notices it records, then send what is due. ``deliver`` also runs on its own,
every ``DELIVER_EVERY``, for the retries. Two replicas that both believe they lead write no second
message: the digests' writes are serialised, and the second finds the destinations told.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

import httpx
import msgspec

from central.access.scope import OwnerLookup
from central.alerts import conditions, delivery, mail, message, outbox, state, webhook
from central.alerts.conditions import FORCE, Kind
from central.alerts.delivery import Report, Sender
from central.alerts.digest import Key, news
from central.alerts.message import AlertItem, Digest
from central.alerts.outbox import Delivery, Pending
from central.core.database import Database
from central.core.metrics import CentralMetrics
from central.registry.devices import DeviceService
from central.registry.stations import StationService
from fleet.clock import utc_now
from fleet.config import AlertDestination, CentralSettings
from fleet.errors import NotFound
from fleet.retry import RetryPolicy

DELIVER_EVERY = timedelta(seconds=30)
"""How often due retries are looked for between digests."""
KEEP_DONE = timedelta(days=90)
"""Messages sent or given up are kept this long (``fleet central alerts list`` shows the latest)."""


class Active(msgspec.Struct, kw_only=True):
    """An alert active now, as ``fleet central alerts list`` shows it."""

    kind: str
    borough: str | None
    label: str
    count: int
    active_since: datetime | None
    """Since the digest job first counted it (None: not yet)."""
    link: str


class Listing(msgspec.Struct, kw_only=True):
    """``fleet central alerts list``: what is active now and how the latest messages went."""

    active: list[Active]
    outbox: list[tuple[str, str, int]]
    """(destination, state, messages) of those not sent: pending or failed."""
    recent: list[Delivery]


class AlertService:
    def __init__(
        self,
        writer: Database,
        settings: CentralSettings,
        owners: OwnerLookup,
        devices: DeviceService,
        stations: StationService,
        metrics: CentralMetrics,
        *,
        policy: RetryPolicy | None = None,
    ) -> None:
        self.writer = writer
        self.settings = settings
        self.config = settings.alerts
        self.owners = owners
        self.devices = devices
        self.stations = stations
        self.metrics = metrics
        self.policy = policy or RetryPolicy(initial_s=self.config.retry_initial_s, max_s=self.config.retry_max_s)
        self.chain_intact: Callable[[], bool | None] = lambda: None
        """This process's last check of the audit chain (set by a serving central): None, not known here."""
        metrics.known_destinations(self.config.destinations)

    @property
    def dashboard(self) -> str:
        if self.config.dashboard_url is not None:
            return self.config.dashboard_url.rstrip("/")
        return f"{'https' if self.settings.tls else 'http'}://{self.settings.host}:{self.settings.port}"

    def observe(self, now: datetime) -> dict[Key, int]:
        return conditions.observe(
            self.writer,
            self.owners,
            self.devices,
            self.stations.all(now),
            now,
            silent_after=timedelta(hours=self.config.station_silent_hours),
            chain_intact=self.chain_intact,
        )

    def run(self) -> Report:
        """The elected job: a digest, then what is due."""
        now = utc_now()
        self.digest(now)
        return self.deliver(now)

    def digest(self, now: datetime | None = None) -> int:
        """Count, and write one message per destination with news; how many were written."""
        now = now or utc_now()
        found = self.observe(now)
        written = 0
        with self.writer.write() as db:
            state.record(db, found, now)
            since = {(a.kind, a.borough or FORCE): a.active_since for a in state.alerts(db, active_only=True)}
            for name, destination in self.config.destinations.items():
                items = news(destination, found, state.told(db, name), now, timedelta(hours=self.config.remind_hours))
                if not items:
                    continue
                digest = self._digest(
                    name,
                    now,
                    [
                        AlertItem(
                            kind=n.kind,
                            borough=n.borough or None,
                            label=conditions.BY_KEY[n.kind].label,
                            count=n.number,
                            previous=n.previous,
                            change=n.change,
                            active_since=since.get((n.kind, n.borough)),
                            link=self.dashboard + conditions.link(n.kind, n.borough),
                        )
                        for n in items
                    ],
                )
                outbox.enqueue(db, digest, destination.channel)
                state.tell(db, name, items, now)
                written += 1
            outbox.prune(db, now - KEEP_DONE)
        return written

    def deliver(self, now: datetime | None = None) -> Report:
        """Send each destination's next message that is due (retries included)."""
        with httpx.Client(timeout=self.config.timeout_s, follow_redirects=False) as client:
            senders = {name: self._sender(client, d) for name, d in self.config.destinations.items()}
            return delivery.deliver_due(
                self.writer,
                senders,
                self.policy,
                self.metrics,
                max_attempts=self.config.max_attempts,
                now=now or utc_now(),
            )

    def send_test(self, name: str) -> Digest:
        """A test message to one destination, now, not through the outbox (the retry policy's quick
        retries only); the TransferError of the last attempt when it cannot be delivered."""
        destination = self.config.destinations.get(name)
        if destination is None:
            known = ", ".join(sorted(self.config.destinations)) or "none in [alerts]"
            raise NotFound(f"no alert destination {name!r} (known: {known})")
        kind: Kind = conditions.BY_KEY["station_silent"]
        digest = self._digest(
            name,
            utc_now(),
            [
                AlertItem(
                    kind=kind.key,
                    borough=None,
                    label="Test: no alert, this destination works",
                    count=0,
                    previous=0,
                    change="new",
                    active_since=None,
                    link=self.dashboard + "/",
                )
            ],
            test=True,
        )
        pending = Pending(
            id=0,
            message_id=digest.message_id,
            destination=name,
            channel=destination.channel,
            body=message.encode(digest),
            attempts=0,
        )
        with httpx.Client(timeout=self.config.timeout_s, follow_redirects=False) as client:
            delivery.attempt(self._sender(client, destination), pending, self.policy)
        return digest

    def listing(self, limit: int = 20) -> Listing:
        """Counted now; what this process cannot judge (the audit chain, checked by the leader) as last recorded."""
        found = self.observe(utc_now())
        with self.writer.read() as db:
            stored = {(a.kind, a.borough or FORCE): a for a in state.alerts(db)}
            queued, recent = outbox.counts(db), outbox.recent(db, limit)
        for key, alert in stored.items():
            if key[1] == FORCE:  # the audit chain: what the leader found at its last check
                found.setdefault(key, alert.count)
        active = [
            Active(
                kind=kind,
                borough=borough or None,
                label=conditions.BY_KEY[kind].label,
                count=count,
                active_since=stored[kind, borough].active_since if (kind, borough) in stored else None,
                link=self.dashboard + conditions.link(kind, borough),
            )
            for (kind, borough), count in sorted(found.items())
            if count > 0
        ]
        return Listing(active=active, outbox=queued, recent=recent)

    def _digest(self, name: str, now: datetime, items: list[AlertItem], *, test: bool = False) -> Digest:
        return Digest(
            message_id=str(uuid.uuid4()),
            destination=name,
            created_at=now,
            dashboard=self.dashboard,
            items=items,
            test=test,
        )

    def _sender(self, client: httpx.Client, destination: AlertDestination) -> Sender:
        if destination.webhook_url is not None:
            url, secret = destination.webhook_url, destination.secret or ""
            return lambda m: webhook.post(client, url, secret, m.message_id, m.body)
        smtp = self.config.smtp
        assert smtp is not None  # the config's check: mailboxes need a relay
        return lambda m: mail.send(smtp, destination.email_to, message.decode(m.body))
