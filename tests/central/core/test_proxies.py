"""Behind a load balancer every connection comes from it: the client is whom a trusted balancer says."""

import re

import httpx
import pytest

from central.core.store import CentralStore
from central.evidence import audit
from fleet.errors import ConfigError
from tests.central.conftest import make_settings
from tests.central.serving import serving


@pytest.mark.parametrize(("trusted", "place"), [(["127.0.0.1"], "browser:203.0.113.9"), ([], "browser:127.0.0.1")])
def test_the_client_address_is_read_from_x_forwarded_for_only_from_a_trusted_balancer(tmp_path, trusted, place):
    settings = make_settings(tmp_path / "central", trusted_proxies=trusted, dashboard={"secure_cookies": False})
    with serving(settings) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}") as browser:
        page = browser.get("/login").text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        browser.post(
            "/login",
            data={"name": "nobody", "password": "not the password", "next": "/", "csrf_token": token},
            headers={"X-Forwarded-For": "203.0.113.9"},
        )
    store = CentralStore.open(settings)
    try:
        with store.writer.read() as db:
            assert [(r.action, r.place) for r in audit.records_for(db, "user", "nobody")] == [("login-failed", place)]
    finally:
        store.close()


@pytest.mark.parametrize("entry", ["*", "balancer.internal", "10.0.0.300", "0.0.0.0/0", "::/0"])
def test_trusted_proxies_are_addresses_or_networks_never_everyone(tmp_path, entry):
    with pytest.raises(ConfigError, match="trusted_proxies"):
        make_settings(tmp_path / "central", trusted_proxies=[entry])
