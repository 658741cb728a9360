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
import sys
import zipfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Protocol

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


class _Zip:
    def __init__(self, archive: zipfile.ZipFile) -> None:
        self.archive = archive

    def names(self) -> list[str]:
        return sorted(i.filename for i in self.archive.infolist() if not i.is_dir())

    def pieces(self, name: str) -> Iterator[bytes]:
        with self.archive.open(name) as f:
            while piece := f.read(READ_PIECE):
                yield piece


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
        with zipfile.ZipFile(path) as archive:
            return _verify(_Zip(archive), trusted_keys)
    except FileNotFoundError:
        raise FleetError(f"{path}: no such file or folder") from None
    except (zipfile.BadZipFile, OSError) as exc:
        raise FleetError(f"{path}: not a disclosure package (a folder or a zip): {exc}") from None


def _verify(package: _Package, trusted_keys: list[str] | None) -> Verdict:
    try:
        return _check(package, trusted_keys)
    except _Refused as exc:
        return Verdict(ok=False, problems=[str(exc)])


def _check(package: _Package, trusted_keys: list[str] | None) -> Verdict:
    present = package.names()
    for needed in (INDEX, SIGNATURE):
        if needed not in present:
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
    for twice in sorted({n for n in present if present.count(n) > 1}):
        problems.append(f"{twice} appears twice in the package: which one is read depends on the tool")
    try:
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(index.public_key)).verify(signature, index_bytes)
    except (InvalidSignature, ValueError):
        problems.append(f"the signature in {SIGNATURE} does not match {INDEX}: the index was altered or re-signed")
    trusted = trusted_keys is not None and index.public_key in trusted_keys
    if trusted_keys is not None and not trusted:
        problems.append(
            f"signed by key {key_fingerprint(index.public_key)}, which is not the key you gave: "
            "not signed by central, or by a key it does not publish"
        )

    listed = {f.path: f for f in index.files}
    for name in sorted(listed):
        if not _safe(name) or name in (INDEX, SIGNATURE):
            problems.append(f"{INDEX} lists {name!r}, a name no package may hold")
            listed.pop(name)
    for extra in sorted(set(present) - set(listed) - {INDEX, SIGNATURE}):
        problems.append(f"{extra} is in the package but not in {INDEX}: nothing vouches for it")
    for name, entry in sorted(listed.items()):
        if name not in present:
            problems.append(f"{name} is listed in {INDEX} but missing")
            continue
        digest, size = hashlib.sha256(), 0
        try:
            for piece in package.pieces(name):
                digest.update(piece)
                size += len(piece)
        except _Refused as exc:
            problems.append(str(exc))
            continue
        if size != entry.size or digest.hexdigest() != entry.sha256:
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
    return Verdict(
        ok=not problems,
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


def cmd_verify_bundle(args: argparse.Namespace) -> int:
    keys = None
    if args.public_key:
        keys = [k.strip().lower() for k in args.public_key]
        bad = [k for k in keys if len(k) != 64 or any(c not in "0123456789abcdef" for c in k)]
        if bad:
            raise FleetError(f"--public-key {bad[0]!r}: a public key is 64 hex digits")
    verdict = verify(args.path, keys)
    if args.json:
        sys.stdout.buffer.write(msgspec.json.format(msgspec.json.encode(verdict)) + b"\n")
    elif verdict.ok:
        print(f"intact: case {verdict.case_ref}, {verdict.clips} clip(s), {verdict.files} file(s) as signed")
        if verdict.trusted:
            print(f"signed by central's key {verdict.signed_by}")
        else:
            print(
                f"signed by key {verdict.signed_by}; not checked against central's keys: "
                "give --public-key (GET /api/v1/disclosure/keys) to know it is central's"
            )
    else:
        print(f"NOT INTACT: {os.fspath(args.path)}")
        for problem in verdict.problems:
            print(f"  - {problem}")
    return 0 if verdict.ok else 1
