"""Throwaway certificate authorities for the TLS tests (trustme): central's server certificates
and the stations' client certificates, written as PEM files. Test values, not secrets."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import trustme

HOSTS = ("127.0.0.1", "localhost")


@dataclass
class Pki:
    folder: Path
    ca: trustme.CA
    """Signs central's certificates; stations trust it (``ca_bundle``)."""
    stations_ca: trustme.CA
    """Signs the stations' client certificates; central trusts it (``client_ca``)."""

    @classmethod
    def make(cls, folder: Path) -> Pki:
        folder.mkdir(parents=True, exist_ok=True)
        pki = cls(folder, trustme.CA(), trustme.CA())
        pki.ca.cert_pem.write_to_path(folder / "ca.pem")
        pki.stations_ca.cert_pem.write_to_path(folder / "stations-ca.pem")
        return pki

    @property
    def ca_bundle(self) -> str:
        return str(self.folder / "ca.pem")

    @property
    def client_ca(self) -> str:
        return str(self.folder / "stations-ca.pem")

    def server(self, name: str = "central", *hosts: str, ca: trustme.CA | None = None, expired: bool = False) -> dict:
        """A server certificate for ``hosts`` (default: loopback) as central's ``[tls]`` table."""
        now = datetime.now(UTC)
        cert = (ca or self.ca).issue_cert(
            *(hosts or HOSTS),
            not_before=now - timedelta(days=30) if expired else None,
            not_after=now - timedelta(days=1) if expired else None,
        )
        return self._write(name, cert)

    def station(self, station_id: str, name: str | None = None, ca: trustme.CA | None = None) -> dict:
        """A client certificate naming ``station_id`` as a station's ``certificate`` and ``key``."""
        cert = (ca or self.stations_ca).issue_cert(station_id, common_name=station_id)
        return self._write(name or f"station-{station_id}", cert)

    def _write(self, name: str, cert: trustme.LeafCert) -> dict:
        chain, key = self.folder / f"{name}.pem", self.folder / f"{name}.key"
        chain.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
        cert.private_key_pem.write_to_path(key)
        key.chmod(0o600)
        return {"certificate": str(chain), "key": str(key)}

    def other_ca(self) -> trustme.CA:
        return trustme.CA()
