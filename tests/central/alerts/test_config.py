"""``[alerts]`` is checked when the file loads: one clear line for each mistake."""

import os

import pytest

from fleet.config import CentralSettings, settings_from_dict
from fleet.errors import ConfigError
from tests.central.alerts.conftest import SECRET

pytestmark = pytest.mark.sqlite_only  # no database

BASE = {"data_dir": "d", "admin_token": "t", "stations": {"camden": {"borough": "Camden", "token": "s"}}}
SMTP = {"host": "relay.invalid", "from_address": "fleet@central.invalid"}


def load(alerts: dict, base=None) -> CentralSettings:
    return settings_from_dict({**BASE, "alerts": alerts}, CentralSettings, base=base)


@pytest.mark.parametrize(
    ("alerts", "message"),
    [
        ({"destinations": {"x": {"boroughs": ["Camden"]}}}, "give webhook_url or email_to"),
        (
            {
                "smtp": SMTP,
                "destinations": {
                    "x": {"webhook_url": "https://h.invalid", "secret": SECRET, "email_to": ["a@b.invalid"]}
                },
            },
            "give webhook_url or email_to",
        ),
        ({"destinations": {"x": {"webhook_url": "https://h.invalid"}}}, "secret (or secret_env) is required"),
        ({"destinations": {"x": {"webhook_url": "https://h.invalid", "secret": "short"}}}, "fewer than 32 characters"),
        ({"destinations": {"x": {"email_to": ["a@b.invalid"]}}}, "email_to needs [alerts.smtp]"),
        ({"smtp": SMTP, "destinations": {"x": {"email_to": ["not an address"]}}}, "email_to"),
        (
            {"smtp": SMTP, "destinations": {"x": {"email_to": ["a@b.invalid"], "boroughs": ["Camdem"]}}},
            "'Camdem' is no station's borough",
        ),
        ({"smtp": SMTP, "destinations": {"x": {"email_to": ["a@b.invalid"], "kinds": ["lsot"]}}}, "kinds"),
        (
            {"smtp": SMTP, "destinations": {"x": {"email_to": ["a@b.invalid"], "kinds": []}}},
            "an empty list would send nothing",
        ),
        (
            {"smtp": SMTP, "destinations": {"x": {"email_to": ["a@b.invalid"], "secret": SECRET}}},
            "only go with webhook_url",
        ),
        ({"smtp": {**SMTP, "username": "u"}}, "give username with password"),
        ({"smtp": {**SMTP, "security": "ssl"}}, "security"),
        (
            {"destinations": {"Bad Name": {"webhook_url": "https://h.invalid", "secret": SECRET}}},
            "$.alerts.destinations",
        ),
        ({"digest_minutes": 0.1}, "digest_minutes"),
    ],
)
def test_a_mistake_is_one_clear_line(alerts, message):
    with pytest.raises(ConfigError) as caught:
        load(alerts)
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_secrets_from_a_variable_or_a_private_file(tmp_path, monkeypatch):
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    secret_file = tmp_path / "smtp-password"
    secret_file.write_text("relay-password\n")
    os.chmod(secret_file, 0o600)
    settings = load(
        {
            "smtp": {**SMTP, "username": "fleet", "password_file": "smtp-password"},
            "destinations": {"ops": {"webhook_url": "https://h.invalid", "secret_env": "HOOK_SECRET"}},
        },
        base=tmp_path,
    )
    assert settings.alerts.destinations["ops"].secret == SECRET
    assert settings.alerts.smtp.password == "relay-password"
    os.chmod(secret_file, 0o644)
    with pytest.raises(ConfigError, match="open to group or others"):
        load({"smtp": {**SMTP, "username": "fleet", "password_file": "smtp-password"}}, base=tmp_path)
