"""The digest job and delivery on a real database (both), to a real webhook receiver and a real
SMTP server: one message per destination, no flood, resolved once, retried until delivered."""

from datetime import timedelta

from central.alerts import outbox
from central.alerts.collector import AlertCollector
from central.alerts.message import Digest
from tests.central.alerts.conftest import SECRET, T0, alert_services, heard
from tests.central.alerts.receivers import Mailbox, WebhookReceiver, free_port


def hook(url: str, **extra) -> dict:
    return {"webhook_url": url, "secret": SECRET, **extra}


def items(digest: Digest) -> list[tuple]:
    return [(i.kind, i.borough, i.count, i.change) for i in digest.items]


def test_many_alerts_fold_into_one_message_per_destination_then_nothing_until_they_change(tmp_path, receiver):
    destinations = {
        "force": hook(receiver.url),
        "camden": hook(receiver.url, boroughs=["Camden"], kinds=["station_silent"]),
        "barnet-lost": hook(receiver.url, boroughs=["Barnet"], kinds=["lost"]),
    }
    with alert_services(tmp_path / "central", destinations) as services:
        alerts = services.alerts
        alerts.chain_intact = lambda: False
        heard(services, "camden", T0)  # kentish (Camden) and barnet never heard from: silent
        assert alerts.digest(T0) == 2  # barnet-lost has nothing to say
        assert alerts.deliver(T0).sent == 2
        by_destination = {d.destination: d for d in receiver.taken}
        assert items(by_destination["force"]) == [
            ("audit_chain", None, 1, "new"),
            ("station_silent", "Barnet", 1, "new"),
            ("station_silent", "Camden", 1, "new"),
        ]
        assert items(by_destination["camden"]) == [("station_silent", "Camden", 1, "new")]
        link = by_destination["camden"].items[0].link
        assert link == "http://127.0.0.1:8000/stations"

        for minutes in (15, 30, 45):  # repeated runs: no flood
            assert alerts.digest(T0 + timedelta(minutes=minutes)) == 0
        assert alerts.deliver(T0 + timedelta(minutes=45)).sent == 0
        assert len(receiver.taken) == 2

        # Camden's first station falls silent too (worse); the chain is found intact (resolved).
        later = T0 + timedelta(hours=4)
        alerts.chain_intact = lambda: True
        assert alerts.digest(later) == 2
        alerts.deliver(later)
        latest = {d.destination: items(d) for d in receiver.taken[-2:]}
        assert latest == {
            "force": [("audit_chain", None, 0, "resolved"), ("station_silent", "Camden", 2, "worse")],
            "camden": [("station_silent", "Camden", 2, "worse")],
        }
        # Resolved is said once.
        assert alerts.digest(later + timedelta(minutes=15)) == 0

        # A day after: one reminder each of what is still active.
        assert alerts.digest(later + timedelta(hours=24)) == 2
        alerts.deliver(later + timedelta(hours=24))
        assert {i.change for d in receiver.taken[-2:] for i in d.items} == {"reminder"}
        assert receiver.refused == receiver.duplicates == 0


def test_the_signature_is_verifiable_and_a_tampered_body_or_an_old_timestamp_fails(tmp_path, receiver):
    from central.alerts import webhook

    body = b'{"schema":"fleet.alerts.digest/1"}'
    signature = webhook.sign(SECRET, 1_800_000_000, body)
    assert webhook.verify(SECRET, body, "1800000000", signature, now=1_800_000_010)
    assert not webhook.verify(SECRET, body.replace(b"1", b"2"), "1800000000", signature, now=1_800_000_010)
    assert not webhook.verify(
        "another-secret-of-forty-characters......", body, "1800000000", signature, now=1_800_000_010
    )
    assert not webhook.verify(SECRET, body, "1800000000", signature, now=1_800_000_000 + 301)  # a replay, later
    assert not webhook.verify(SECRET, body, "1800000001", signature, now=1_800_000_010)  # the time is signed too


def test_a_receiver_down_is_retried_with_backoff_and_then_gets_everything(tmp_path):
    port = free_port()
    receiver = WebhookReceiver(SECRET, port=port)
    with alert_services(tmp_path / "central", {"ops": hook(receiver.url)}) as services:
        alerts = services.alerts
        assert alerts.digest(T0) == 1  # three stations never heard from
        report = alerts.deliver(T0)  # nobody listening
        assert (report.sent, report.retrying, report.gave_up) == (0, 1, 0)
        heard(services, "barnet", T0)
        assert alerts.digest(T0 + timedelta(minutes=15)) == 1  # Barnet resolved: a second message, queued behind
        with services.store.writer.read() as db:
            assert outbox.counts(db) == [("ops", "pending", 2)]
            first = outbox.recent(db)[-1]
        assert first.attempts == 1 and "unreachable" in (first.last_error or "")
        assert first.next_attempt_at is not None and first.next_attempt_at > T0
        receiver.start()
        try:
            assert alerts.deliver(T0 + timedelta(hours=1)).sent == 1  # one at a time: in order
            assert alerts.deliver(T0 + timedelta(hours=1)).sent == 1
        finally:
            receiver.stop()
        assert [items(d) for d in receiver.taken] == [
            [("station_silent", "Barnet", 1, "new"), ("station_silent", "Camden", 2, "new")],
            [("station_silent", "Barnet", 0, "resolved")],
        ]
        assert services.metrics.alert_deliveries.labels("ops", "retry")._value.get() == 1
        assert services.metrics.alert_deliveries.labels("ops", "sent")._value.get() == 2


def test_a_crash_between_sending_and_marking_sends_the_same_message_again(tmp_path, receiver, monkeypatch):
    with alert_services(tmp_path / "central", {"ops": hook(receiver.url)}) as services:
        services.alerts.digest(T0)

        def crash(*_args):
            raise SystemExit("killed between send and mark")

        monkeypatch.setattr(outbox, "sent", crash)
        try:
            services.alerts.deliver(T0)
        except SystemExit:
            pass
        monkeypatch.undo()
        assert services.alerts.deliver(T0).sent == 1
    assert len(receiver.taken) == 1 and receiver.duplicates == 1  # the receiver drops it by its id


def test_given_up_after_the_bound_or_at_once_when_refused_and_shown(tmp_path):
    down = WebhookReceiver(SECRET, statuses=[503] * 4).start()
    strict = WebhookReceiver(SECRET).start()
    try:
        destinations = {
            "flaky": hook(down.url),
            "wrong": {"webhook_url": strict.url, "secret": "not-the-receiver's-secret-of-40-characters"},
        }
        with alert_services(tmp_path / "central", destinations, max_attempts=2) as services:
            alerts = services.alerts
            alerts.digest(T0)
            report = alerts.deliver(T0)  # flaky: 503 twice (the quick retries), later; wrong: 401, given up at once
            assert (report.retrying, report.gave_up) == (1, 1)
            assert alerts.deliver(T0 + timedelta(days=1)).gave_up == 1  # flaky: its second attempt, the bound
            assert down.requests == 4 and strict.refused == 1
            listing = alerts.listing()
            assert listing.outbox == [("flaky", "failed", 1), ("wrong", "failed", 1)]
            errors = {m.destination: m.last_error or "" for m in listing.recent}
            assert "503" in errors["flaky"] and "401" in errors["wrong"]
            samples = {
                (s.labels["destination"], s.labels["state"]): s.value
                for family in AlertCollector(services.store.writer).collect()
                for s in family.samples
                if family.name == "fleet_central_alert_messages"
            }
            assert samples == {("flaky", "failed"): 1, ("wrong", "failed"): 1}
            assert services.metrics.alert_deliveries.labels("wrong", "gave_up")._value.get() == 1
            # What a message given up told comes again with the daily reminder, not at every digest.
            assert services.alerts.digest(T0 + timedelta(hours=23)) == 0
            assert services.alerts.digest(T0 + timedelta(hours=24)) == 2
    finally:
        down.stop()
        strict.stop()


def test_mail_through_a_real_smtp_server(tmp_path, mailbox: Mailbox):
    smtp = {"host": "127.0.0.1", "port": mailbox.port, "from_address": "fleet@central.invalid", "security": "none"}
    destinations = {"camden-mail": {"email_to": ["duty@camden.invalid", "ops@met.invalid"], "boroughs": ["Camden"]}}
    with alert_services(
        tmp_path / "central", destinations, smtp=smtp, dashboard_url="https://bwv.invalid/"
    ) as services:
        services.alerts.digest(T0)
        assert services.alerts.deliver(T0).sent == 1
        with services.store.writer.read() as db:
            message_id = outbox.recent(db)[0].message_id
    (mail,) = mailbox.mails
    assert mailbox.envelopes == [("fleet@central.invalid", ["duty@camden.invalid", "ops@met.invalid"])]
    assert mail["Subject"] == "[BWV fleet] alerts: 1 new (Camden)"
    assert mail["X-Fleet-Alert-Id"] == message_id and message_id in mail["Message-ID"]
    text = mail.get_payload(decode=True).decode()
    assert "NEW           Camden: Stations not heard from for hours: 2" in text
    assert "https://bwv.invalid/stations" in text
