"""TLS with real processes: the demo's stations upload, send events and follow the feed to a
central serving HTTPS with mutual TLS, and `fleet central serve` takes a renewed certificate
on SIGHUP without a restart."""

from __future__ import annotations

import re
import signal
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
from cryptography import x509

from simulation.local_cluster import free_port
from tests.e2e.harness import Process, wait_until
from tests.support.pki import Pki


def test_the_demo_over_mutual_tls_verifies_every_docked_clip(tmp_path):
    result = subprocess.run(
        [
            *(sys.executable, "-m", "fleet.cli", "demo", "--tls", "--dir", str(tmp_path / "demo")),
            *("--port", "0", "--duration", "6", "--interval", "1", "--max-clip-mib", "1", "--seed", "2"),
            *("--drain-timeout", "60"),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = " ".join(result.stdout.split())
    match = re.search(r"(\d+) clips \(.*\) docked at 3 stations; (\d+) verified at central", text)
    assert match and int(match[1]) == int(match[2]) > 0, text[-2000:]
    assert "https://127.0.0.1:" in text
    central = (tmp_path / "demo" / "central" / "central.toml").read_text()
    assert "[tls]" in central and "client_ca" in central  # the stations' tokens needed their certificates
    for station in ("camden", "barnet", "lewisham"):
        log = (tmp_path / "demo" / "logs" / f"{station}.log").read_text()
        assert "refused central" not in log and "needs its client certificate" not in log


def served_serial(port: int, ca: str) -> int:
    with (
        httpx.Client(verify=ssl.create_default_context(cafile=ca)) as client,
        client.stream("GET", f"https://127.0.0.1:{port}/healthz") as response,
    ):
        der = response.extensions["network_stream"].get_extra_info("ssl_object").getpeercert(True)
    return x509.load_der_x509_certificate(der).serial_number


def serial_of(path: str) -> int:
    return x509.load_pem_x509_certificate(Path(path).read_bytes()).serial_number


def test_sighup_loads_a_renewed_certificate_into_the_running_central(tmp_path):
    pki = Pki.make(tmp_path / "pki")
    files = pki.server()
    port = free_port()
    config = tmp_path / "central.toml"
    config.write_text(
        f'port = {port}\ndata_dir = "data"\nadmin_token = "admin-test-token"\n'
        f'[tls]\ncertificate = "{files["certificate"]}"\nkey = "{files["key"]}"\n'
    )
    central = Process("central", ["central", "serve", "--config", str(config)], tmp_path / "central.log")
    central.start()
    try:
        wait_until(lambda: _answers(port, pki.ca_bundle), 60, "central over https", check=central.check)
        assert served_serial(port, pki.ca_bundle) == serial_of(files["certificate"])
        renewed = pki.server("renewed")
        for key in ("certificate", "key"):
            Path(files[key]).write_bytes(Path(renewed[key]).read_bytes())
        central.popen.send_signal(signal.SIGHUP)  # as `systemctl reload` would
        wait_until(
            lambda: served_serial(port, pki.ca_bundle) == serial_of(renewed["certificate"]),
            30,
            "the renewed certificate served",
            check=central.check,
        )
        assert central.alive()
    finally:
        central.kill(signal.SIGTERM)


def _answers(port: int, ca: str) -> bool:
    try:
        return httpx.get(f"https://127.0.0.1:{port}/healthz", verify=ssl.create_default_context(cafile=ca)).is_success
    except httpx.TransportError:
        return False
