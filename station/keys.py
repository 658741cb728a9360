"""The station key: read from where the config says (never the database it protects), and rotated.

A key file must be readable by the station's user only: one that group or others could read
is refused, saying so, rather than used. ``rotate`` re-wraps every clip's data key under the
current key, without touching the footage (docs/at-rest.md, "Rotating the station key").
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from dataclasses import dataclass

from fleet.cipher import Keyring, key_id, new_data_key
from fleet.config import StationKeySettings
from fleet.errors import ConfigError
from fleet.keyfile import read_key, write_key_file
from station.store import StationStore

log = logging.getLogger(__name__)

ROTATE_BATCH = 500
"""Rows re-wrapped per transaction: a crash loses at most this batch's work, never a key."""


def load_keyring(settings: StationKeySettings, where: str = "[station_key]") -> Keyring:
    """The current key and any previous ones; ConfigError with the reason when one cannot be had."""
    if settings.file is None and settings.env is None and settings.credential is None:
        raise ConfigError(
            f"no station key: {where} gives none (file, env or credential); clips are stored only "
            "encrypted, so a station does not start without its key (docs/at-rest.md)"
        )
    current = read_key(settings, where)
    previous = [read_key(p, f"{where} previous[{n}]") for n, p in enumerate(settings.previous)]
    return Keyring(current, previous)


def write_new_key(path: str | os.PathLike[str]) -> str:
    """A fresh random key in a new file readable by its owner only; returns its key id.

    For the demo and tests (and an operator who prefers it to ``openssl rand -hex 32``)."""
    key = new_data_key()
    write_key_file(path, key)
    return key_id(key)


def check_keys_cover(store: StationStore, keyring: Keyring) -> None:
    """Every sealed clip's data key is wrapped by a key this station holds, or it does not start."""
    missing = store.queue.wrapping_key_ids() - keyring.ids
    if missing:
        raise ConfigError(
            f"clips are sealed under station key(s) {', '.join(sorted(missing))}, not given to this station "
            f"(it holds {', '.join(sorted(keyring.ids))}): during a rotation list the old key under "
            "[station_key] previous until `fleet station rotate-key` has finished"
        )


@dataclass
class Rotation:
    rewrapped: int
    remaining: dict[str, int]
    """Clips still wrapped under another key, by key id (a station that ingested meanwhile under
    an old configuration): the old key is still needed for them."""


def rotate(
    store: StationStore, keyring: Keyring, *, batch: int = ROTATE_BATCH, step: Callable[[str], None] | None = None
) -> Rotation:
    """Re-wrap every data key not under the current key, batch by batch, each batch in one transaction.

    Each row carries the id of the key that wrapped it, and a row's key and id change together,
    so a crash at any moment leaves rows each readable by the key they name; run it again to
    finish. The footage is never rewritten. ``step`` is called at each step (tests crash there)."""
    check_keys_cover(store, keyring)
    done = 0
    while rows := store.queue.wrapped_elsewhere(keyring.current_id, batch):
        if step:
            step("read")
        rewrapped = []
        for clip_id, wrapped_by, wrapped in rows:
            data_key = keyring.unwrap(wrapped_by, wrapped, clip_id)
            new_id, new_wrapped = keyring.wrap(data_key)
            if keyring.unwrap(new_id, new_wrapped, clip_id) != data_key:  # never write a key that cannot be read
                raise RuntimeError(f"re-wrapping clip {clip_id}'s data key did not round-trip")
            rewrapped.append((clip_id, wrapped_by, new_id, new_wrapped))
        if step:
            step("wrapped")
        changed = store.queue.rewrap(rewrapped)
        done += changed
        if step:
            step("committed")
        if not changed:
            break  # every row of the batch changed under it (a purge): the counts below say what is left
    remaining = store.queue.wrapping_key_counts()
    remaining.pop(keyring.current_id, None)
    return Rotation(done, remaining)
