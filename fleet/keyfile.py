"""A 32-byte key read from where a config says: a file only its owner may read, an environment
variable, or a systemd credential. Never from a database the key protects.

Station keys (``station.keys``) and central's disclosure signing key
(``central.evidence.signing``) are read here, so both refuse a key file open to others in the
same words.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fleet.cipher import parse_key
from fleet.config import KeySource, credential_path
from fleet.errors import ConfigError


def read_key(source: KeySource, where: str) -> bytes:
    """The key ``source`` names; ConfigError saying why when it cannot be had."""
    if source.file is not None:
        return _read_key_file(Path(source.file), where)
    if source.env is not None:
        value = os.environ.get(source.env)
        if not value:
            raise ConfigError(f"{where}: env names ${source.env}, which is not set")
        return parse_key(value, f"{where}: ${source.env}")
    assert source.credential is not None
    return _read_key_file(credential_path(source.credential, where), where, private=False)


def _read_key_file(path: Path, where: str, *, private: bool = True) -> bytes:
    """The key in ``path``. ``private``: refused unless only its owner, this process's user, may read it
    (systemd's credentials folder is itself private to the unit)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(f"{where}: key file {path} not found") from None
    except OSError as exc:
        raise ConfigError(f"{where}: key file {path} cannot be read: {exc.strerror}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ConfigError(f"{where}: key file {path} is not a regular file")
        if private and info.st_mode & 0o077:
            raise ConfigError(
                f"{where}: key file {path} is open to group or others (mode {stat.S_IMODE(info.st_mode):04o}); "
                f"refused: `chmod 600 {path}`, and think of the key as seen"
            )
        if private and info.st_uid != os.geteuid():
            raise ConfigError(f"{where}: key file {path} belongs to uid {info.st_uid}, not this process's user")
        text = os.read(fd, 4096)
    finally:
        os.close(fd)
    return parse_key(text, f"{where}: key file {path}")


def write_key_file(path: str | os.PathLike[str], key: bytes) -> None:
    """``key`` in a new file readable by its owner only, as 64 hex digits (refuses to replace a file)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, key.hex().encode() + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
