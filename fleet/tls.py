"""TLS between stations and central: the contexts both sides use, and a refused handshake in words.

Both sides use Python's ``ssl`` (OpenSSL): TLS 1.2 at least, the library's default ciphers,
certificates and host names always checked on the station's side. Central's context is
built once and its certificate reloaded into it (``reload``), so a renewed certificate
takes effect on the next connection without a restart. A pinned certificate is trusted
alone through OpenSSL's partial-chain flag: the leaf itself is the trust anchor.
"""

from __future__ import annotations

import os
import ssl
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import msgspec

if TYPE_CHECKING:
    from fleet.config import ServerTlsSettings, StationTlsSettings


class TlsError(Exception):
    """A certificate, key or CA file that cannot be used, in one line."""


def server_context(tls: ServerTlsSettings) -> ssl.SSLContext:
    """Central's context: its certificate, and with ``client_ca`` a client certificate asked for
    (optional at the handshake: browsers have none; a station's token needs one, ``central.access``)."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load_chain(context, tls.certificate, tls.key)
    if tls.client_ca is not None:
        _load_trust(context, tls.client_ca, "client_ca")
        context.verify_mode = ssl.CERT_OPTIONAL
    return context


def reload(context: ssl.SSLContext, tls: ServerTlsSettings) -> None:
    """Load the certificate and key again into the live context, once a fresh context has
    shown they work together: a mismatched pair never reaches the connections.

    Both files are read once, into a private snapshot that the check and the live context
    both load: read twice, they could change in between (a renewal writing the certificate,
    then the key), and a failed load leaves the live context with a certificate and no key,
    refusing every handshake."""
    shm = "/dev/shm"  # memory, where there is one: the key's copy never reaches a disk
    with tempfile.TemporaryDirectory(prefix="fleet-tls-", dir=shm if os.path.isdir(shm) else None) as folder:
        certificate = _snapshot(tls.certificate, os.path.join(folder, "certificate.pem"))
        key = _snapshot(tls.key, os.path.join(folder, "key.pem"))
        try:
            server_context(msgspec.structs.replace(tls, certificate=certificate, key=key))
        except TlsError as exc:  # named by the configured files, not the snapshot's
            raise TlsError(str(exc).replace(certificate, tls.certificate).replace(key, tls.key)) from None
        _load_chain(context, certificate, key)


def _snapshot(path: str, copy: str) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise TlsError(f"cannot read {exc.filename or path}: {exc.strerror or exc}") from None
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)
    return copy


def client_context(tls: StationTlsSettings | None) -> ssl.SSLContext:
    """The station's context: central verified against ``ca_bundle``, the pinned certificate
    alone, or the system's trust store; with a certificate of its own for mutual TLS."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # host names and certificates checked
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls is not None and tls.ca_bundle is not None:
        _load_trust(context, tls.ca_bundle, "ca_bundle")  # only these CAs, not the system's as well
    elif tls is not None and tls.pinned_certificate is not None:
        _load_pin(context, tls.pinned_certificate)
    else:
        context.load_default_certs()
    if tls is not None and tls.pinned_certificate is not None:
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    if tls is not None and tls.certificate is not None and tls.key is not None:
        _load_chain(context, tls.certificate, tls.key)
    return context


def peer_names(peercert: dict[str, Any] | None) -> frozenset[str]:
    """The names a verified peer certificate carries: its common name(s) and DNS names."""
    if not peercert:
        return frozenset()
    names = {value for rdn in peercert.get("subject", ()) for key, value in rdn if key == "commonName"}
    names.update(value for kind, value in peercert.get("subjectAltName", ()) if kind == "DNS")
    return frozenset(names)


def refusal(exc: BaseException, url: str, tls: StationTlsSettings | None) -> str | None:
    """Why the station refused central's certificate, in one line; None if ``exc`` is no such refusal."""
    failure = next((e for e in _chain(exc) if isinstance(e, ssl.SSLCertVerificationError)), None)
    if failure is None:
        other = next((e for e in _chain(exc) if isinstance(e, ssl.SSLError)), None)
        return None if other is None else f"TLS with central at {url} failed: {other.reason or other}"
    code = failure.verify_code
    if code == 10:  # X509_V_ERR_CERT_HAS_EXPIRED
        why = "its certificate has expired (or this station's clock is wrong)"
    elif code == 9:  # X509_V_ERR_CERT_NOT_YET_VALID
        why = "its certificate is not valid yet (or this station's clock is wrong)"
    elif code in (62, 64):  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH
        why = f"its certificate is not for {urlsplit(url).hostname} (central_url's host)"
    elif tls is not None and tls.pinned_certificate is not None:
        why = f"its certificate is not the one pinned in [tls] pinned_certificate ({tls.pinned_certificate})"
    elif tls is not None and tls.ca_bundle is not None:
        why = f"its certificate is not signed by a CA in [tls] ca_bundle ({tls.ca_bundle})"
    else:
        why = "its certificate is not signed by a CA this machine trusts (set [tls] ca_bundle)"
    return f"refused central at {url}: {why}; nothing is sent until it is mended ({failure.verify_message})"


def _chain(exc: BaseException) -> Iterable[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _load_chain(context: ssl.SSLContext, certificate: str, key: str) -> None:
    try:
        context.load_cert_chain(certificate, key)
    except ssl.SSLError as exc:
        raise TlsError(
            f"certificate {certificate} and key {key} cannot be used together: {exc.reason or exc}"
        ) from None
    except OSError as exc:
        raise TlsError(f"cannot read {exc.filename or certificate}: {exc.strerror or exc}") from None


def _load_pin(context: ssl.SSLContext, path: str) -> None:
    """The pinned certificate alone: the first in the file (central's chain file puts its leaf
    first). Any certificate after it (the chain's CA) is not trusted: trusted, it would let
    every certificate that CA signs for central's name pass as the pinned one."""
    try:
        text = Path(path).read_text("ascii", "replace")
    except OSError as exc:
        raise TlsError(f"cannot read pinned_certificate {path}: {exc.strerror or exc}") from None
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        raise TlsError(f"pinned_certificate {path} holds no usable PEM certificate")
    try:
        context.load_verify_locations(cadata=text[start : stop + len(end)] + "\n")
    except ssl.SSLError as exc:
        raise TlsError(f"pinned_certificate {path} holds no usable PEM certificate: {exc.reason or exc}") from None


def _load_trust(context: ssl.SSLContext, path: str, name: str) -> None:
    try:
        context.load_verify_locations(cafile=path)
    except ssl.SSLError as exc:
        raise TlsError(f"{name} {path} holds no usable PEM certificate: {exc.reason or exc}") from None
    except OSError as exc:
        raise TlsError(f"cannot read {name} {path}: {exc.strerror or exc}") from None
