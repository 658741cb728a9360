"""Clips at rest on a station: AES-256-GCM in segments, a fresh data key per clip (docs/at-rest.md).

A sealed file is a header, then the clip's bytes in fixed-size plaintext segments, each sealed
on its own, so that a reader can start at any offset by opening only the segment holding it::

    header   "BWVSEG" | version (1) | 0 | segment_bytes (u32 BE) | nonce prefix (8 random bytes)
    segment  AES-256-GCM(data key, nonce = prefix | index (u32 BE)) → ciphertext | 16-byte tag
    aad      header | index (u64 BE) | final (0 or 1) | clip_id (UTF-8)

Every clip has at least one segment (an empty clip has one empty final segment) and the file's
length follows from the clip's size, so a truncated or extended file, reordered segments, a
segment from another clip or an edited header never authenticate. The data key is wrapped
(AES key wrap, RFC 3394) by the station key and kept in the station's database beside the
clip's row, never in the file: destroying that row's wrapped key destroys the clip.
"""

from __future__ import annotations

import hashlib
import os
import struct
from collections import deque
from collections.abc import Generator, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import closing

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from fleet.errors import ConfigError, DamagedCopyError

KEY_BYTES = 32
SEGMENT_BYTES = 1 << 20
"""Plaintext per segment: a resumed upload decrypts at most this much it does not send."""
TAG_BYTES = 16
MAGIC = b"BWVSEG"
VERSION = 1
_HEADER = struct.Struct(">6sBBI8s")
HEADER_BYTES = _HEADER.size
MAX_SEGMENT_BYTES = 64 << 20
"""A header claiming more is damaged (this bounds what a reader allocates)."""
SEGMENTS_AHEAD = 3
"""Segments a reader of a range keeps read and authenticated ahead of its caller."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=256)


def key_id(key: bytes) -> str:
    """A short name for a station key, recorded with each wrapped data key (reveals nothing of it)."""
    return hashlib.sha256(b"fleet station key id\0" + key).hexdigest()[:16]


def parse_key(text: str | bytes, where: str) -> bytes:
    """A 32-byte key (a station key, a signing key) as 64 hex digits (`openssl rand -hex 32`), space ignored."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    try:
        key = bytes.fromhex(raw.strip())
    except ValueError:
        key = b""
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{where}: a key is 64 hex digits (32 random bytes, `openssl rand -hex 32`)")
    return key


class Keyring:
    """The station key that wraps new data keys, and the keys still accepted for unwrapping
    (a rotation's previous key until every row is re-wrapped)."""

    def __init__(self, current: bytes, previous: Iterable[bytes] = ()) -> None:
        self._keys = {key_id(k): k for k in previous}
        self.current_id = key_id(current)
        self._keys[self.current_id] = current

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(self._keys)

    def wrap(self, data_key: bytes) -> tuple[str, bytes]:
        """(key id, wrapped data key) under the current key."""
        return self.current_id, aes_key_wrap(self._keys[self.current_id], data_key)

    def unwrap(self, wrapped_by: str, wrapped: bytes, clip_id: str) -> bytes:
        key = self._keys.get(wrapped_by)
        if key is None:
            raise ConfigError(
                f"clip {clip_id} is sealed under station key {wrapped_by}, which this station was not given "
                "(an unfinished rotation needs the old key under [station_key] previous)"
            )
        try:
            return aes_key_unwrap(key, wrapped)
        except InvalidUnwrap:
            raise DamagedCopyError(
                clip_id, "its wrapped data key does not unwrap (the database row was altered)"
            ) from None


def segment_count(size: int, segment_bytes: int = SEGMENT_BYTES) -> int:
    return max(1, -(-size // segment_bytes))


def sealed_size(size: int, segment_bytes: int = SEGMENT_BYTES) -> int:
    """Length of the sealed file of a clip of ``size`` bytes."""
    return HEADER_BYTES + size + TAG_BYTES * segment_count(size, segment_bytes)


def _nonce(prefix: bytes, index: int) -> bytes:
    return prefix + index.to_bytes(4, "big")


def _aad(header: bytes, index: int, final: bool, clip_id: bytes) -> bytes:
    return header + index.to_bytes(8, "big") + (b"\1" if final else b"\0") + clip_id


class Sealer:
    """Seals one clip of a known size, block by block in order (blocks of whole segments but the last)."""

    def __init__(self, data_key: bytes, clip_id: str, size: int, segment_bytes: int = SEGMENT_BYTES) -> None:
        if segment_count(size, segment_bytes) >= 1 << 32:
            raise ValueError("clip too large for this segment size")
        self._aead = AESGCM(data_key)
        self._clip_id = clip_id.encode()
        self._prefix = os.urandom(8)
        self.segment_bytes = segment_bytes
        self.header = _HEADER.pack(MAGIC, VERSION, 0, segment_bytes, self._prefix)
        self._last = segment_count(size, segment_bytes) - 1
        self._index = 0

    def sealed_length(self, plain: int) -> int:
        """Bytes that sealing a block of ``plain`` bytes makes."""
        return plain + TAG_BYTES * segment_count(plain, self.segment_bytes)

    def seal(self, block: bytes | memoryview, out: memoryview) -> memoryview:
        """The sealed segments of the next ``block``, written into ``out`` (``sealed_length(len(block))``
        bytes at least: the writer's staging buffer, so they are not copied again); the part filled.

        An empty block is sealed only as an empty clip's one segment."""
        view = memoryview(block)
        at = 0
        for n in range(segment_count(len(view), self.segment_bytes)):
            piece = view[n * self.segment_bytes : (n + 1) * self.segment_bytes]
            index = self._index
            if index > self._last:
                raise ValueError("more bytes than the clip's size")
            nonce, aad = _nonce(self._prefix, index), _aad(self.header, index, index == self._last, self._clip_id)
            self._aead.encrypt_into(nonce, piece, aad, out[at : at + len(piece) + TAG_BYTES])
            at += len(piece) + TAG_BYTES
            self._index += 1
        return out[:at]


class SealedReader:
    """Reads a sealed clip's original bytes from any offset, one segment in memory at a time.

    Each segment is authenticated before any of its bytes is returned: whatever was read
    before a ``DamagedCopyError`` is genuine."""

    def __init__(self, path: str | os.PathLike[str], data_key: bytes, clip_id: str, size: int) -> None:
        self.path = path
        self.clip_id = clip_id
        self.size = size
        self._aead = AESGCM(data_key)
        self._aad_id = clip_id.encode()
        self._fd = os.open(path, os.O_RDONLY)
        try:
            self.header = os.pread(self._fd, HEADER_BYTES, 0)
            if len(self.header) < HEADER_BYTES:
                raise DamagedCopyError(clip_id, "the sealed file is shorter than its header")
            magic, version, _, segment_bytes, self._prefix = _HEADER.unpack(self.header)
            if magic != MAGIC or version != VERSION or not 0 < segment_bytes <= MAX_SEGMENT_BYTES:
                raise DamagedCopyError(clip_id, "the sealed file's header is not one this station writes")
            self.segment_bytes = segment_bytes
            actual, expected = os.fstat(self._fd).st_size, sealed_size(size, segment_bytes)
            if actual != expected:
                raise DamagedCopyError(
                    clip_id, f"the sealed file is {actual} bytes, {expected} expected (truncated or extended)"
                )
        except BaseException:
            os.close(self._fd)
            raise
        self._last = segment_count(size, segment_bytes) - 1

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> SealedReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def segment(self, index: int) -> bytes:
        """The plaintext of segment ``index``, authenticated."""
        plain = self.segment_bytes if index < self._last else self.size - self._last * self.segment_bytes
        at = HEADER_BYTES + index * (self.segment_bytes + TAG_BYTES)
        sealed = os.pread(self._fd, plain + TAG_BYTES, at)
        if len(sealed) != plain + TAG_BYTES:
            raise DamagedCopyError(self.clip_id, f"segment {index} is cut short")
        try:
            return self._aead.decrypt(
                _nonce(self._prefix, index), sealed, _aad(self.header, index, index == self._last, self._aad_id)
            )
        except InvalidTag:
            raise DamagedCopyError(
                self.clip_id, f"segment {index} failed authentication (altered, corrupted or out of place)"
            ) from None

    def read_range(self, at: int, length: int, piece_size: int) -> Generator[bytes]:
        """Bytes ``at``..``at+length`` of the original clip, in pieces of at most ``piece_size``.

        Over more than one segment, the next ones are read and authenticated on a helper thread
        while the caller uses this one (an upload sends it: the disk, AES and the socket then
        work at once, not in turn). A segment is handed out only once authenticated, in order:
        a damaged one still ends the range before any of its bytes."""
        if at < 0 or length < 0 or at + length > self.size:
            raise ValueError(f"range {at}+{length} outside a clip of {self.size} bytes")
        if not length:
            return
        end = at + length
        first, last = at // self.segment_bytes, (end - 1) // self.segment_bytes
        with closing(self._segments(first, last)) as segments:
            for index, plain in zip(range(first, last + 1), segments, strict=True):
                start = index * self.segment_bytes
                if at == start and end - start >= len(plain) and piece_size >= len(plain):
                    yield plain  # the whole segment in one piece: no copy
                    at += len(plain)
                    continue
                data = memoryview(plain)[at - start : min(end - start, self.segment_bytes)]
                for n in range(0, len(data), piece_size):
                    yield bytes(data[n : n + piece_size])
                at += len(data)

    def _segments(self, first: int, last: int) -> Generator[bytes]:
        """Segments ``first``..``last`` in order, up to ``SEGMENTS_AHEAD`` read ahead on a helper thread."""
        if first == last:
            yield self.segment(first)
            return
        os.posix_fadvise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)  # a larger kernel read-ahead too
        with ThreadPoolExecutor(1, thread_name_prefix="segments-ahead") as ahead:
            pending: deque[Future[bytes]] = deque()
            following = first
            try:
                while pending or following <= last:
                    while following <= last and len(pending) < SEGMENTS_AHEAD:
                        pending.append(ahead.submit(self.segment, following))
                        following += 1
                    yield pending.popleft().result()
            finally:  # the caller stopped early (or a segment failed): no more reads of this file
                for future in pending:
                    future.cancel()
