"""``fleet central alerts list|test`` on a config file, in process (the commands' own code paths)."""

import json

from fleet.cli import main
from tests.central.alerts.conftest import SECRET, T0, alert_services
from tests.central.alerts.receivers import WebhookReceiver, free_port
from tests.central.conftest import config_file


def config(tmp_path, url: str) -> str:
    return config_file(
        tmp_path,
        f'[alerts.destinations.ops]\nwebhook_url = "{url}"\nsecret = "{SECRET}"\n'
        '[stations.barnet]\nborough = "Barnet"\ntoken = "barnet-test-token"\n',
    )


def test_test_sends_a_signed_test_message_and_says_when_it_cannot(tmp_path, receiver, capsys):
    assert main(["central", "alerts", "test", "ops", "--json", "--config", config(tmp_path, receiver.url)]) == 0
    answer = json.loads(capsys.readouterr().out)
    (digest,) = receiver.taken
    assert answer == {"destination": "ops", "delivered": True, "message_id": digest.message_id} and digest.test

    down = config(tmp_path, WebhookReceiver(SECRET, port=free_port()).url)
    assert main(["central", "alerts", "test", "ops", "--config", down]) == 1
    assert "ops: NOT delivered: webhook unreachable" in capsys.readouterr().err
    assert main(["central", "alerts", "test", "nobody", "--config", down]) == 2
    assert "no alert destination 'nobody' (known: ops)" in capsys.readouterr().err


def test_list_shows_what_is_active_and_how_messages_went(tmp_path, capsys):
    path = config(tmp_path, WebhookReceiver(SECRET, port=free_port()).url)
    with alert_services(tmp_path / "central", {"ops": {"webhook_url": "http://127.0.0.1:9/x", "secret": SECRET}}) as s:
        s.alerts.digest(T0)
        s.alerts.deliver(T0)
    assert main(["central", "alerts", "list", "--json", "--config", path]) == 0
    listing = json.loads(capsys.readouterr().out)
    assert [(a["kind"], a["borough"], a["count"]) for a in listing["active"]] == [("station_silent", "Barnet", 1)]
    assert listing["outbox"] == [["ops", "pending", 1]]
    assert main(["central", "alerts", "list", "--config", path]) == 0
    out = capsys.readouterr().out
    assert "Barnet               Stations not heard from for hours: 1, since 2026-12-01 09:00" in out
    assert "ops: 1 message(s) pending" in out and "1 attempt(s): webhook unreachable" in out
