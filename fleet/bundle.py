"""A disclosure package: a case's clips for a prosecutor, and the check that nothing in it changed.

The package (a folder, or the zip central streams) holds::

    index.json         what is in it: the case, who prepared it, for whom, every file's SHA-256
    index.sig          Ed25519 signature of index.json's exact bytes (hex), by central's key
    manifest.csv       one line per clip: id, SHA-256, size, recorded, camera, officer, categories
    clips/<id>.mp4     the camera's bytes, as verified at upload (their SHA-256 is the clip's)
    custody/<id>.csv   each clip's chain of custody, the export itself included
    README.txt         how to check it

``fleet verify-bundle PATH`` checks it offline: the signature, every file's size and SHA-256,
that each clip's file hashes to the clip's recorded SHA-256, and that nothing is there the
index does not list. A signature proves only that whoever holds the key signed it: give
``--public-key`` one of the keys central publishes (``GET /api/v1/disclosure/keys``, or the
fingerprint printed beside the package), or the check says whose key signed and stops short
of trusting it.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import stat
import struct
import sys
import zipfile
from collections import Counter
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, BinaryIO, NamedTuple, Protocol

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from msgspec import Meta, Struct

from fleet.errors import FleetError

FORMAT = "fleet-disclosure/1"
INDEX, SIGNATURE = "index.json", "index.sig"
READ_PIECE = 1 << 20
Hex64 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$(?!\n)")]


class BundleFile(Struct, kw_only=True, forbid_unknown_fields=True):
    path: str
    sha256: Hex64
    size: Annotated[int, Meta(ge=0)]


class BundleClip(Struct, kw_only=True, forbid_unknown_fields=True):
    clip_id: str
    sha256: Hex64
    size: int
    recorded_at: datetime
    device_serial: str | None
    officer_id: str | None
    categories: list[str]
    file: str
    custody: str


class AbsentClip(Struct, kw_only=True, forbid_unknown_fields=True):
    clip_id: str
    reason: str


class BundleIndex(Struct, kw_only=True, forbid_unknown_fields=True):
    """index.json. Unknown fields are refused: a verifier must never pass what it did not check."""

    format: str
    case_ref: str
    prepared_at: datetime
    prepared_by: str
    prepared_for: str
    reason: str
    public_key: Hex64
    """The signing key's public half (hex of its 32 raw bytes); trust it only if central publishes it."""
    clips: list[BundleClip]
    absent: list[AbsentClip]
    """Clips of the case not in the package, and why (not yet uploaded, deleted before the case held them)."""
    files: list[BundleFile]


def key_fingerprint(public_key_hex: str) -> str:
    """A short, readable name for a public key: the first 16 hex digits of its SHA-256, in groups."""
    digest = hashlib.sha256(bytes.fromhex(public_key_hex)).hexdigest()[:16]
    return ":".join(digest[i : i + 4] for i in range(0, 16, 4))


def encode_index(index: BundleIndex) -> bytes:
    return msgspec.json.format(msgspec.json.encode(index), indent=2) + b"\n"


# -- reading a package ------------------------------------------------------------------------


class _Package(Protocol):
    def names(self) -> list[str]: ...
    def pieces(self, name: str) -> Iterator[bytes]: ...


class _Folder:
    def __init__(self, root: Path) -> None:
        self.root = root

    def names(self) -> list[str]:
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() or p.is_symlink() or not p.is_dir()
        )

    def pieces(self, name: str) -> Iterator[bytes]:
        path = self.root / name
        if path.is_symlink() or not path.is_file():
            raise _Refused(f"{name} is not a plain file")
        with open(path, "rb") as f:
            while piece := f.read(READ_PIECE):
                yield piece


ALLOWED_EXTRA_FIELDS = {0x0001, 0x5455, 0x7875}
"""Zip64 sizes, extended timestamps, Unix owners: nothing that changes a name or where bytes go.
(Others do: Info-ZIP's Unicode path field renames an entry for ``unzip`` and not for Python.)"""
STORED_FLAGS = 0x0808
"""A data descriptor follows the bytes (as central streams them), names in UTF-8: nothing else."""
LOCAL_HEADER = struct.Struct("<4s5H3L2H")
CENTRAL_RECORD = struct.Struct("<28x3H12x")
"""A directory record's fixed part, read for its name, extra field and comment lengths."""


MAX_DIRECTORY = 16 << 20
"""The largest zip directory read (about 70,000 clips' entries): zipfile holds every record of it in
memory, and a hostile directory of tiny records would take gigabytes."""
END_RECORD, END_RECORD_64, LOCATOR_64 = struct.Struct("<4s4H2LH"), struct.Struct("<4sQ2H2L4Q"), struct.Struct("<4sLQL")


class _End(NamedTuple):
    """The zip's end records as zipfile finds them."""

    at: int
    """Where the directory must end: the zip64 end record, else the end record."""
    entries: int
    directory_size: int
    after: int
    """Bytes after the end record, or said to be there: a comment, or anything put there."""


def _end_record(f: BinaryIO) -> _End | None:
    """The end record as zipfile finds it (the last 22 bytes, else the last record in a trailing
    comment), with the zip64 record before it; None where zipfile will find none."""
    end = f.seek(0, os.SEEK_END)
    tail_at = max(end - END_RECORD.size - (1 << 16), 0)
    f.seek(tail_at)
    tail = f.read()
    at = len(tail) - END_RECORD.size
    if tail[at : at + 4] != b"PK\x05\x06" or tail[-2:] != b"\0\0":
        at = tail.rfind(b"PK\x05\x06")
    if at < 0 or len(tail) - at < END_RECORD.size:
        return None
    fields = END_RECORD.unpack_from(tail, at)
    entries = fields[4] if fields[3] == fields[4] else -1
    found = _End(tail_at + at, entries, fields[5], len(tail) - at - END_RECORD.size + fields[7])
    before = b""
    if found.at >= LOCATOR_64.size + END_RECORD_64.size:
        f.seek(found.at - LOCATOR_64.size - END_RECORD_64.size)
        before = f.read(END_RECORD_64.size + LOCATOR_64.size)
    if before[END_RECORD_64.size :][:4] == b"PK\x06\x07" and before[:4] == b"PK\x06\x06":
        zip64 = END_RECORD_64.unpack(before[: END_RECORD_64.size])
        found = _End(found.at - len(before), zip64[7], zip64[8], found.after)
    return found


class _Zip:
    """A zip package, its layout checked before any entry is read. An entry is then read as the
    stored bytes where its local header says they start, never through zipfile's reader: its CRC
    check, decryption and decompression would turn a changed or hostile entry into an exception
    (or a bomb) instead of a problem named."""

    def __init__(self, archive: zipfile.ZipFile, file: BinaryIO, end: _End) -> None:
        self.archive = archive
        self.file = file
        self.end = end
        self.spans: dict[int, tuple[int, int]] = {}
        """Each entry's bytes (start, length), by the offset of its local header."""
        self.unread: dict[int, str] = {}
        """Why an entry cannot be read, by the offset of its local header."""
        self.problems = self._layout()

    def _layout(self) -> list[str]:
        """How the file's bytes differ from one plain run of entries: anything another unzip tool
        could read differently from this one (bytes before, between or after the entries, an
        entry's local header unlike its central record, fields that rename, links, folders)."""
        problems: list[str] = []
        infos = sorted(self.archive.infolist(), key=lambda i: i.header_offset)
        f = self.file
        at: int | None = 0
        for info in infos:
            where = f"zip entry {info.filename!r}"
            if at is not None and info.header_offset != at:
                problems.append(
                    f"{where}: bytes at {at} that no entry accounts for (something was put in the zip)"
                    if info.header_offset > at
                    else f"{where}: it overlaps the entry before it"
                )
            f.seek(info.header_offset)
            header = f.read(LOCAL_HEADER.size)
            if len(header) < LOCAL_HEADER.size or header[:4] != b"PK\x03\x04":
                problems.append(f"{where}: no entry where the zip's directory says one starts")
                self.unread[info.header_offset], at = problems[-1], None
                continue
            _, _, flags, method, _, _, crc, compressed, size, name_len, extra_len = LOCAL_HEADER.unpack(header)
            name, extra = f.read(name_len), f.read(extra_len)
            local_name = name.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            start = info.header_offset + LOCAL_HEADER.size + name_len + extra_len
            self.spans[info.header_offset] = (start, info.compress_size)
            at = start + info.compress_size
            if flags & 0x08:  # the data descriptor: [signature] CRC, sizes (8 bytes each with zip64)
                if crc or (compressed, size) not in ((0, 0), (0xFFFFFFFF, 0xFFFFFFFF)) or any(_zip64_sizes(extra)):
                    problems.append(f"{where}: sizes in its local header as well as after its bytes")
                f.seek(at)
                descriptor = f.read(4 + LOCAL_HEADER.size)  # enough for any form of it
                skip = 4 if descriptor[:4] == b"PK\x07\x08" else 0
                form = "<L2Q" if 0x0001 in _extra_ids(extra) else "<3L"
                if len(descriptor) >= skip + struct.calcsize(form):
                    crc, compressed, size = struct.unpack_from(form, descriptor, skip)
                at += skip + struct.calcsize(form)
            elif compressed == size == 0xFFFFFFFF and len(sizes := _zip64_sizes(extra)) == 2:
                size, compressed = sizes
            if (
                local_name != info.orig_filename
                or flags != info.flag_bits
                or method != info.compress_type
                or (crc, compressed, size) != (info.CRC, info.compress_size, info.file_size)
            ):
                problems.append(f"{where}: its local header differs from the zip's directory")
            if flags & ~STORED_FLAGS or method != zipfile.ZIP_STORED or info.file_size != info.compress_size:
                problems.append(f"{where}: compressed or flagged as no package is")
            unknown = _extra_ids(extra) | _extra_ids(info.extra)
            if not (_extra_exact(extra) and _extra_exact(info.extra)):
                problems.append(f"{where}: an extra field runs past its end")
            elif unknown - ALLOWED_EXTRA_FIELDS:
                problems.append(f"{where}: extra fields {sorted(unknown - ALLOWED_EXTRA_FIELDS)} (one may rename it)")
            mode = info.external_attr >> 16
            if info.is_dir() or (info.create_system == 3 and stat.S_IFMT(mode) not in (0, stat.S_IFREG)):
                problems.append(f"{where}: not a plain file (a folder or a link)")
        infos = self.archive.infolist()
        moved = at is not None and self.archive.start_dir != at
        if moved or self._directory_end(infos) != self.end.at or self.end.after:
            problems.append("the zip has bytes after its last entry or a comment: something was put in it")
        elif self.end.entries != len(infos):
            problems.append(f"the zip's end record counts {self.end.entries} entries, not the {len(infos)} it has")
        return problems

    def _directory_end(self, infos: list[zipfile.ZipInfo]) -> int:
        """Where the directory's records end by the lengths they give (zipfile stops reading at
        the size the end record gives, and would not see a last name that runs past it)."""
        at = self.archive.start_dir
        for info in infos:
            self.file.seek(at)
            record = self.file.read(CENTRAL_RECORD.size)
            if len(record) < CENTRAL_RECORD.size:
                return -1
            lengths = CENTRAL_RECORD.unpack(record)
            if lengths != (len(_raw_name(info)), len(info.extra), len(info.comment)):
                return -1
            at += CENTRAL_RECORD.size + sum(lengths)
        return at

    def names(self) -> list[str]:
        return sorted(i.filename for i in self.archive.infolist() if not i.is_dir())

    def pieces(self, name: str) -> Iterator[bytes]:
        offset = self.archive.getinfo(name).header_offset  # of the entry zipfile would read
        if offset not in self.spans:
            raise _Refused(self.unread[offset])
        start, left = self.spans[offset]
        self.file.seek(start)
        while left > 0 and (piece := self.file.read(min(READ_PIECE, left))):
            left -= len(piece)
            yield piece


def _extra_exact(extra: bytes) -> bool:
    at = 0
    while at + 4 <= len(extra):
        at += 4 + struct.unpack_from("<H", extra, at + 2)[0]
    return at == len(extra)


def _raw_name(info: zipfile.ZipInfo) -> bytes:
    return info.orig_filename.encode("utf-8" if info.flag_bits & 0x800 else "cp437")


def _zip64_sizes(extra: bytes) -> tuple[int, ...]:
    """The sizes in a local header's zip64 field (uncompressed, then compressed)."""
    at = 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<2H", extra, at)
        if kind == 0x0001 and size >= 16 and at + 20 <= len(extra):
            return struct.unpack_from("<2Q", extra, at + 4)
        at += 4 + size
    return ()


def _extra_ids(extra: bytes) -> set[int]:
    ids, at = set(), 0
    while at + 4 <= len(extra):
        kind, size = struct.unpack_from("<2H", extra, at)
        ids.add(kind)
        at += 4 + size
    return ids


class _Refused(Exception):
    """A package that does not check out, with the reason."""


def _read_all(package: _Package, name: str, limit: int) -> bytes:
    data = b""
    for piece in package.pieces(name):
        data += piece
        if len(data) > limit:
            raise _Refused(f"{name} is larger than any this format writes")
    return data


def _safe(name: str) -> bool:
    path = PurePosixPath(name)
    return bool(name) and not path.is_absolute() and ".." not in path.parts and "\\" not in name


class Verdict(Struct, kw_only=True):
    ok: bool
    """Intact and signed by a key the caller gave: the only answer that vouches for the footage."""
    intact: bool
    """Every file as the index lists it, and the index as its signature says (whoever signed it)."""
    problems: list[str]
    case_ref: str | None = None
    clips: int = 0
    files: int = 0
    signed_by: str | None = None
    """The fingerprint of the key that signed the index (whether or not it was trusted)."""
    trusted: bool = False
    """The signing key was one the caller gave (``--public-key``)."""


def verify(path: str | Path, trusted_keys: list[str] | None = None) -> Verdict:
    """Check the package at ``path`` (a folder or a .zip): every problem found, not only the first."""
    path = Path(path)
    if path.is_dir():
        return _verify(_Folder(path), trusted_keys)
    try:
        with open(path, "rb") as f:
            end = _end_record(f)
            if end is None:
                raise zipfile.BadZipFile("no zip end record")
            if end.directory_size > MAX_DIRECTORY:
                return Verdict(
                    ok=False,
                    intact=False,
                    problems=[f"the zip's directory is larger than any this format writes ({MAX_DIRECTORY} bytes)"],
                )
            try:
                archive = zipfile.ZipFile(f)
            except (ValueError, NotImplementedError) as exc:  # a name not UTF-8 as flagged, an unknown version
                raise zipfile.BadZipFile(exc) from None
            with archive:
                package = _Zip(archive, f, end)
                verdict = _verify(package, trusted_keys)
    except FileNotFoundError:
        raise FleetError(f"{path}: no such file or folder") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise FleetError(f"{path}: not a disclosure package (a folder or a zip): {exc}") from None
    if package.problems:  # an entry the layout found unreadable is named there, not twice
        verdict.problems = package.problems + [p for p in verdict.problems if p not in package.problems]
        verdict.ok = verdict.intact = False
    return verdict


def _verify(package: _Package, trusted_keys: list[str] | None) -> Verdict:
    try:
        return _check(package, trusted_keys)
    except _Refused as exc:
        return Verdict(ok=False, intact=False, problems=[str(exc)])


def _check(package: _Package, trusted_keys: list[str] | None) -> Verdict:
    present = package.names()
    names = set(present)
    for needed in (INDEX, SIGNATURE):
        if needed not in names:
            raise _Refused(f"{needed} is missing: this is not a whole disclosure package")
    index_bytes = _read_all(package, INDEX, 64 << 20)
    try:
        signature = bytes.fromhex(_read_all(package, SIGNATURE, 1024).decode("ascii").strip())
        index = msgspec.json.decode(index_bytes, type=BundleIndex)
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Refused(f"{INDEX} or {SIGNATURE} cannot be read: {exc}") from None
    if index.format != FORMAT:
        raise _Refused(f"{INDEX} is format {index.format!r}; this verifier reads {FORMAT}")
    problems: list[str] = []
    for twice in sorted(name for name, n in Counter(present).items() if n > 1):
        problems.append(f"{twice} appears twice in the package: which one is read depends on the tool")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(index.public_key)).verify(signature, index_bytes)
    except (InvalidSignature, ValueError):
        problems.append(f"the signature in {SIGNATURE} does not match {INDEX}: the index was altered or re-signed")
    trusted = trusted_keys is not None and index.public_key in trusted_keys

    listed = {f.path: f for f in index.files}
    for name in sorted(listed):
        if not _safe(name) or name in (INDEX, SIGNATURE):
            problems.append(f"{INDEX} lists {name!r}, a name no package may hold")
            listed.pop(name)
    for extra in sorted(names - set(listed) - {INDEX, SIGNATURE}):
        problems.append(f"{extra} is in the package but not in {INDEX}: nothing vouches for it")
    for name, entry in sorted(listed.items()):
        if name not in names:
            problems.append(f"{name} is listed in {INDEX} but missing")
            continue
        digest, size = hashlib.sha256(), 0
        try:
            for piece in package.pieces(name):
                digest.update(piece)
                size += len(piece)
                if size > entry.size:  # whatever follows, it has changed: read no more of it
                    break
        except _Refused as exc:
            problems.append(str(exc))
            continue
        if size > entry.size:
            problems.append(f"{name} has changed: larger than the {entry.size} bytes the index says")
        elif size != entry.size or digest.hexdigest() != entry.sha256:
            problems.append(
                f"{name} has changed: {size} bytes with SHA-256 {digest.hexdigest()}, "
                f"the index says {entry.size} bytes with SHA-256 {entry.sha256}"
            )
    for clip in index.clips:
        named = listed.get(clip.file)
        if named is None or named.sha256 != clip.sha256 or named.size != clip.size:
            problems.append(f"clip {clip.clip_id}: its file {clip.file} is not the clip's recorded bytes")
        if clip.custody not in listed:
            problems.append(f"clip {clip.clip_id}: its chain of custody {clip.custody} is not in the package")
    intact = not problems
    if trusted_keys is not None and not trusted:  # intact, perhaps, but not what central signed
        problems.append(
            f"signed by key {key_fingerprint(index.public_key)}, which is not a key you gave: "
            "not signed by central, or by a key it does not publish"
        )
    return Verdict(
        ok=intact and trusted,
        intact=intact,
        problems=problems,
        case_ref=index.case_ref,
        clips=len(index.clips),
        files=len(index.files),
        signed_by=key_fingerprint(index.public_key),
        trusted=trusted,
    )


# -- the command ------------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    check = commands.add_parser(
        "verify-bundle",
        help="check a disclosure package offline: signature, every file's SHA-256, nothing added",
        description=__doc__.split("\n\n")[0] if __doc__ else None,
    )
    check.add_argument("path", metavar="PATH", help="the package: its folder, or the .zip central gave")
    check.add_argument(
        "--public-key",
        action="append",
        metavar="HEX",
        help="a key central publishes (64 hex digits; GET /api/v1/disclosure/keys); repeat for several",
    )
    check.add_argument("--json", action="store_true", help="print the verdict as JSON")
    check.set_defaults(handler=cmd_verify_bundle)


EXIT_UNTRUSTED = 3
"""Intact as signed, but by a key nobody vouched for (no ``--public-key``): not a pass."""


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    keys = None
    if args.public_key:
        keys = [k.strip().lower() for k in args.public_key]
        bad = [k for k in keys if len(k) != 64 or any(c not in "0123456789abcdef" for c in k)]
        if bad:
            raise FleetError(f"--public-key {bad[0]!r}: a public key is 64 hex digits")
    verdict = verify(args.path, keys)
    case = _shown(verdict.case_ref or "")
    if args.json:
        text = _shown(msgspec.json.format(msgspec.json.encode(verdict)).decode(), keep="\n")
        sys.stdout.buffer.write(text.encode() + b"\n")
    elif verdict.ok:
        print(f"intact: case {case}, {verdict.clips} clip(s), {verdict.files} file(s) as signed")
        print(f"signed by a key you gave (fingerprint {verdict.signed_by})")
    elif verdict.intact and keys is None:
        print(f"intact as signed: case {case}, {verdict.clips} clip(s), {verdict.files} file(s)")
        print(
            f"NOT CHECKED: signed by key {verdict.signed_by}, which anyone could have made. Get central's keys "
            "from the force (GET /api/v1/disclosure/keys), never from the package, and give one as --public-key"
        )
    else:
        print(f"NOT INTACT: {_shown(os.fspath(args.path))}")
        for problem in verdict.problems:
            print(f"  - {_shown(problem)}")
    if verdict.ok:
        return 0
    return EXIT_UNTRUSTED if verdict.intact and keys is None else 1


def _shown(text: str, keep: str = "") -> str:
    """``text`` with every character a terminal might act on (escapes, bidi overrides) written as
    a JSON-style escape: names in a package are the forger's, and could rewrite the lines above."""
    return "".join(c if c.isprintable() or c in keep else _escape(c) for c in text)


def _escape(c: str) -> str:
    if ord(c) <= 0xFFFF:
        return f"\\u{ord(c):04x}"
    high, low = divmod(ord(c) - 0x10000, 0x400)
    return f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04x}"
