"""The station's link to central over TLS, against a real central under uvicorn: central is
verified (a CA bundle, or a pinned certificate) and anything else refused, with one line in
the station's status; with mutual TLS a station's token needs its own certificate."""

from __future__ import annotations

import hashlib
import ssl
from pathlib import Path

import httpx
import pytest

from central.core.httpserver import ServerTls
from fleet.config import StationSettings, settings_from_dict
from station.store import StationStore
from station.sync.link import build_client, plain_http_problem
from tests.central.conftest import make_settings, metadata
from tests.central.serving import serving
from tests.support.pki import Pki

TUS = {"Tus-Resumable": "1.0.0"}


@pytest.fixture
def pki(tmp_path):
    return Pki.make(tmp_path / "pki")


def central_settings(tmp_path, server: dict, client_ca: str | None = None):
    tls = {**server, **({"client_ca": client_ca} if client_ca else {})}
    return make_settings(tmp_path / "central", tls=tls)


def station_settings(tmp_path, port: int, host: str = "127.0.0.1", **tls) -> StationSettings:
    return settings_from_dict(
        {
            "station_id": "camden",
            "borough": "Camden",
            "central_url": f"https://{host}:{port}",
            "token": "camden-test-token",
            "data_dir": str(tmp_path / "station"),
            "dock_dir": str(tmp_path / "dock"),
            **({"tls": tls} if tls else {}),
        },
        StationSettings,
    )


def refused(settings: StationSettings, store: StationStore | None = None) -> str:
    report = store.set_central_tls_problem if store else None
    with build_client(settings, report) as client, pytest.raises(httpx.ConnectError) as caught:
        client.get("/api/v1/changes/")
    return str(caught.value)


def test_upload_events_and_feed_go_over_tls_with_the_stations_certificate(tmp_path, pki):
    settings = central_settings(tmp_path, pki.server(), client_ca=pki.client_ca)
    with serving(settings) as port:
        station = station_settings(tmp_path, port, ca_bundle=pki.ca_bundle, **pki.station("camden"))
        data = b"footage over TLS" * 1000
        with build_client(station) as client:
            created = client.post(
                "/api/v1/uploads/",
                headers={**TUS, "Upload-Length": str(len(data)), "Upload-Metadata": metadata(data)},
            )
            assert created.status_code == 201, created.text
            sent = client.patch(
                created.headers["Location"],
                content=data,
                headers={**TUS, "Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"},
            )
            assert sent.status_code == 204, sent.text
            assert client.head(created.headers["Location"], headers=TUS).headers["Upload-Offset"] == str(len(data))
            batch = {"station_id": "camden", "events": [], "sent_at": "2026-12-05T08:00:00Z"}
            assert client.post("/api/v1/events/", json=batch).status_code == 200
            assert client.get("/api/v1/changes/", params={"since": 0}).status_code == 200
        admin = httpx.get(  # people need no certificate: mutual TLS asks stations only
            f"https://127.0.0.1:{port}/api/v1/clips/",
            headers={"Authorization": "Bearer admin-test-token"},
            verify=ssl.create_default_context(cafile=pki.ca_bundle),
        )
        assert admin.status_code == 200
        [clip] = admin.json()["items"]
        assert clip["sha256"] == hashlib.sha256(data).hexdigest() and clip["state"] == "verified"


def test_with_mutual_tls_a_stations_token_needs_its_own_certificate(tmp_path, pki):
    settings = central_settings(tmp_path, pki.server(), client_ca=pki.client_ca)
    with serving(settings) as port:
        cases = {"none": {}, "another station's": pki.station("barnet")}
        for case, certificate in cases.items():
            station = station_settings(tmp_path, port, ca_bundle=pki.ca_bundle, **certificate)
            with build_client(station) as client:
                answer = client.get("/api/v1/changes/", params={"since": 0})
            assert answer.status_code == 401, case
            assert "needs its client certificate naming camden" in answer.json()["message"], case
        names_barnet = station_settings(tmp_path, port, ca_bundle=pki.ca_bundle, **pki.station("barnet"))
        with build_client(names_barnet) as client:
            assert "certificate names barnet" in client.get("/api/v1/changes/").json()["message"]
        # A certificate naming camden from a CA central does not trust ends the handshake itself.
        forged = pki.station("camden", name="forged", ca=pki.other_ca())
        station = station_settings(tmp_path, port, ca_bundle=pki.ca_bundle, **forged)
        with build_client(station) as client, pytest.raises(httpx.TransportError):
            client.get("/api/v1/changes/", params={"since": 0})


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_a_station_refuses_a_central_it_cannot_trust_saying_why_in_its_status(tmp_path, pki):
    store = StationStore(tmp_path / "station")
    cases = [
        ("another CA", pki.server("other", ca=pki.other_ca()), "127.0.0.1", "not signed by a CA in [tls] ca_bundle"),
        ("expired", pki.server("expired", expired=True), "127.0.0.1", "its certificate has expired"),
        (
            "wrong host",
            pki.server("wrong", "central.example.org"),
            "127.0.0.1",
            "its certificate is not for 127.0.0.1 (central_url's host)",
        ),
    ]
    for case, server, host, why in cases:
        settings = central_settings(tmp_path / case.replace(" ", "-"), server)
        with serving(settings) as port:
            station = station_settings(tmp_path, port, host=host, ca_bundle=pki.ca_bundle)
            message = refused(station, store)
        assert why in message, case
        assert message.startswith(f"refused central at https://{host}:{port}: ") and "\n" not in message
        assert store.central_tls_problem() == message  # the one line `fleet station status` shows
    good = central_settings(tmp_path / "good", pki.server())
    with (
        serving(good) as port,
        build_client(station_settings(tmp_path, port, ca_bundle=pki.ca_bundle), store.set_central_tls_problem) as c,
    ):
        assert c.get("/healthz").status_code == 200
    assert store.central_tls_problem() is None  # central answered: the line goes
    store.close()


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_a_pinned_certificate_is_trusted_alone(tmp_path, pki):
    pinned = pki.server("pinned")
    settings = central_settings(tmp_path / "pinned", pinned)
    with serving(settings) as port:
        # only the leaf, not its CA: the pin is the certificate itself
        leaf = tmp_path / "leaf.pem"
        chain = Path(pinned["certificate"]).read_text()
        leaf.write_text(chain.split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
        with build_client(station_settings(tmp_path, port, pinned_certificate=str(leaf))) as client:
            assert client.get("/healthz").status_code == 200
    sibling = central_settings(tmp_path / "sibling", pki.server("sibling"))  # same CA, another certificate
    with serving(sibling) as port:
        message = refused(station_settings(tmp_path, port, pinned_certificate=str(leaf)))
    assert "not the one pinned in [tls] pinned_certificate" in message


def test_a_renewed_certificate_is_served_on_the_next_connection_and_a_bad_one_never(tmp_path, pki):
    first = pki.server("first")
    settings = central_settings(tmp_path, first)
    assert settings.tls is not None
    server_tls = ServerTls(settings.tls)

    def served_serial(port: int) -> int:
        context = ssl.create_default_context(cafile=pki.ca_bundle)
        with (
            httpx.Client(verify=context) as client,
            client.stream("GET", f"https://127.0.0.1:{port}/healthz") as response,
        ):
            der = response.extensions["network_stream"].get_extra_info("ssl_object").getpeercert(True)
        from cryptography import x509

        return x509.load_der_x509_certificate(der).serial_number

    def serial_of(path: str) -> int:
        from cryptography import x509

        return x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number

    with serving(settings, server_tls) as port:
        assert served_serial(port) == serial_of(first["certificate"])
        renewed = pki.server("renewed")
        for key in ("certificate", "key"):  # written over the configured files, as certbot would
            Path(first[key]).write_bytes(Path(renewed[key]).read_bytes())
        assert server_tls.reload()
        assert served_serial(port) == serial_of(renewed["certificate"])
        other = pki.server("mismatch")
        Path(first["key"]).write_bytes(Path(other["key"]).read_bytes())  # a key that is not the certificate's
        assert not server_tls.reload()
        assert served_serial(port) == serial_of(renewed["certificate"])  # still served, still works


def test_plain_http_to_another_machine_is_called_out():
    assert plain_http_problem("http://127.0.0.1:8000") is None
    assert plain_http_problem("http://localhost:8000") is None
    assert plain_http_problem("https://central.met.police.uk") is None
    assert "cross the network in clear" in (plain_http_problem("http://central.met.police.uk") or "")


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_a_pinned_chain_file_pins_its_leaf_not_the_ca_that_signed_it(tmp_path, pki):
    """Central's certificate file is its chain, the leaf first (``[tls] certificate``): pinned as it
    is, the intermediate in it must not become a trust anchor, or any certificate that CA signs
    for central's host name (a balancer's, a mis-issued one) passes as "the pinned certificate"."""
    intermediate = pki.ca.create_child_ca()
    pinned = pki.server("pinned-chain", ca=intermediate)
    assert Path(pinned["certificate"]).read_text().count("BEGIN CERTIFICATE") == 2  # leaf + intermediate
    with serving(central_settings(tmp_path / "pinned", pinned)) as port:
        station = station_settings(tmp_path, port, pinned_certificate=pinned["certificate"])
        with build_client(station) as client:
            assert client.get("/healthz").status_code == 200  # the pinned leaf itself: trusted
    impostor = pki.server("impostor", ca=intermediate)  # same CA, same host names, another key
    with serving(central_settings(tmp_path / "impostor", impostor)) as port:
        message = refused(station_settings(tmp_path, port, pinned_certificate=pinned["certificate"]))
    assert "not the one pinned in [tls] pinned_certificate" in message


def test_a_certificate_changing_during_a_reload_never_leaves_central_without_a_working_pair(tmp_path, pki, monkeypatch):
    """A reload checks the pair on a fresh context, then loads it into the live one. Read twice,
    the files can change in between (a renewal writing the certificate, then the key): the live
    context must get the very pair that was checked, or none, never a certificate without its key."""
    from fleet import tls as fleet_tls

    first = pki.server("first")
    settings = central_settings(tmp_path, first)
    assert settings.tls is not None
    server_tls = ServerTls(settings.tls)
    renewed, later = pki.server("renewed"), pki.server("later")
    checked = fleet_tls.server_context

    def check_then_race(tls_settings):
        context = checked(tls_settings)
        Path(first["key"]).write_bytes(Path(later["key"]).read_bytes())  # the next write lands now
        return context

    with serving(settings, server_tls) as port:
        for key in ("certificate", "key"):
            Path(first[key]).write_bytes(Path(renewed[key]).read_bytes())
        monkeypatch.setattr(fleet_tls, "server_context", check_then_race)
        server_tls.reload()
        monkeypatch.undo()
        context = ssl.create_default_context(cafile=pki.ca_bundle)
        with httpx.Client(verify=context) as client:  # central still completes handshakes
            assert client.get(f"https://127.0.0.1:{port}/healthz").status_code == 200
