"""The desk's access code (``api_token``): the one check of it, and wrong guesses locked out.

Beyond loopback the desk answers anyone on the station's network, and its code checks cameras
out. Both ways in (the API's bearer header and the page's sign-in form) ask ``AccessCode``:
compared in constant time (as SHA-256 digests, so not even its length shows), and each client
address's wrong codes counted. Only a code given is a guess: a request with none (an image tag
on any page the sergeant's browser opens, a scraper without the code) counts for nothing, else
any web page could lock the desk's own browser out. From its
``FREE``-th wrong code in a row an address is locked for ``BASE_LOCK_S``, doubled at every
further one, at most ``MAX_LOCK_S``; while locked, every attempt is refused unchecked (429
with ``Retry-After``). A count is forgotten ``FORGET_AFTER_S`` after its last wrong code, and
the right code clears it. An attempt is counted before it is compared and given back when it
was right, so attempts sent all at once are held to the count as if sent one by one.

The counts live in this process's memory (a desk has one process; a restart, which an
attacker on the network cannot cause, forgets them). Central's dashboard keeps its own in
its database (``central.access.login_throttle``): several replicas share them there.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable

from litestar.connection import ASGIConnection

from fleet.errors import TooManyRequests

FREE = 5
"""Wrong codes in a row from one address before it is locked."""
BASE_LOCK_S = 30.0
MAX_LOCK_S = 15 * 60.0
FORGET_AFTER_S = 60 * 60.0
MOST = 4096
"""Addresses counted at once; the one counted least recently goes first."""


def _sha256(code: str) -> bytes:
    """A code as compared: without the spaces around it, as typed or as set (the config strips it to count it)."""
    return hashlib.sha256(code.strip().encode()).digest()


class AccessCode:
    def __init__(self, code: str, clock: Callable[[], float] = time.monotonic) -> None:
        self._sha256 = _sha256(code)
        self.clock = clock
        self._counts: OrderedDict[str, tuple[int, float, float]] = OrderedDict()
        """{address: (wrong codes in a row, when the last was counted, locked until)}."""
        self._lock = threading.Lock()

    @classmethod
    def hashed(cls, sha256_hex: str, clock: Callable[[], float] = time.monotonic) -> AccessCode:
        """A code known by its SHA-256 (hex) only, as ``fleet.config.token_sha256`` gives it."""
        access = cls("", clock)
        access._sha256 = bytes.fromhex(sha256_hex)
        return access

    def check(self, given: str, address: str) -> bool:
        """Whether ``given`` is the code; refused (TooManyRequests) while ``address`` is locked out.
        Nothing given is no guess: False, uncounted."""
        if not given.strip():
            return False
        self._admit(address)
        if hmac.compare_digest(_sha256(given), self._sha256):
            with self._lock:
                self._counts.pop(address, None)
            return True
        return False

    def _admit(self, address: str) -> None:
        """Refuse while locked; else count this attempt as wrong (given back by ``check`` if right)."""
        now = self.clock()
        with self._lock:
            wrong, last, locked_until = self._counts.pop(address, (0, now, 0.0))
            if now - last > FORGET_AFTER_S:
                wrong, locked_until = 0, 0.0
            if locked_until > now:
                self._counts[address] = (wrong, last, locked_until)
                wait = math.ceil(locked_until - now)
                raise TooManyRequests(
                    f"too many wrong access codes from this address: try again in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
            wrong += 1
            if wrong >= FREE:
                locked_until = now + min(MAX_LOCK_S, BASE_LOCK_S * 2 ** (wrong - FREE))
            self._counts[address] = (wrong, now, locked_until)
            while len(self._counts) > MOST:
                self._counts.popitem(last=False)


def bearer_code(connection: ASGIConnection) -> str:
    """The code in an ``Authorization: Bearer <code>`` header (the scheme in any case, RFC 9110
    11.1); "" for none or another scheme (a browser's Basic credentials are no guess)."""
    scheme, _, code = (connection.headers.get("authorization") or "").strip().partition(" ")
    return code if scheme.lower() == "bearer" else ""


def client_address(connection: ASGIConnection) -> str:
    """Whom a desk request came from, as counted: the connection's own address (the desk is reached
    directly, never through a proxy), an IPv4 one however the socket spells it, and every loopback
    address as one: any of 127.0.0.0/8 reaches a desk on 127.0.0.1 unprivileged, so each counted
    apart gave a local user five guesses from each of 16 million addresses."""
    if connection.client is None:
        return "unknown"
    try:
        address = ipaddress.ip_address(connection.client.host)
    except ValueError:  # not an address (a test client's name)
        return connection.client.host
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return "loopback" if address.is_loopback else str(address)
