"""The sync worker: drains the clip queue to central, evidential clips first.

It runs as an apscheduler job and is also woken the moment ingest queues new work. Each
clip's attempts, last error and next-attempt time are persisted, so a restart keeps the
backoff schedule. Permanent refusals are reported, never retried on their own.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from fleet.clock import utc_now
from fleet.errors import PermanentTransferError
from fleet.retry import RetryPolicy, as_transfer_error
from station.store import QueuedClip, StationStore
from station.uploader import TusUploader

log = logging.getLogger(__name__)

REFUSED_ONCE = "refused once, trying again: "
"""A refusal (4xx) is final only when it comes twice in the same words: a byte flipped on the
way can turn a good request into a bad one (fault seed 67 turned ``Upload-Metadata`` into a
header central did not know, and the clip was failed for good)."""


@dataclass
class SyncReport:
    verified: list[str] = field(default_factory=list)
    waiting: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    central_unreachable: bool = False


class SyncWorker:
    """Uploads due clips with up to ``concurrency`` transfers at once."""

    def __init__(self, store: StationStore, uploader: TusUploader, policy: RetryPolicy, *,
                 concurrency: int = 2) -> None:
        self.store = store
        self.uploader = uploader
        self.policy = policy
        self.concurrency = concurrency
        self.stopping = threading.Event()
        self._woken = threading.Event()

    def wake(self) -> None:
        """New work arrived: a pass already running picks it up before it ends."""
        self._woken.set()

    def run_once(self) -> SyncReport:
        """Upload every clip that is due, until none is left or central stops answering."""
        report = SyncReport()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="upload") as pool:
            running: dict[Future, QueuedClip] = {}
            while not self.stopping.is_set():
                self._woken.clear()
                if not report.central_unreachable:
                    free = self.concurrency - len(running)
                    for clip in self.store.claim_due(free) if free else []:
                        running[pool.submit(self._upload, clip, report)] = clip
                if not running:
                    if self._woken.is_set() and not report.central_unreachable:
                        continue
                    break
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    running.pop(future)
                    future.result()
        return report

    def _upload(self, clip: QueuedClip, report: SyncReport) -> None:
        if self.stopping.is_set():
            self.store.release([clip.clip_id])
            return
        try:
            self.uploader.upload(clip)
        except Exception as exc:  # every failure is recorded against the clip, none escapes
            error = as_transfer_error(exc)
            if isinstance(error, PermanentTransferError) and clip.last_error == f"{REFUSED_ONCE}{error}":
                # Refused twice in the same words: the request itself is refused, not a damaged copy.
                log.error("clip %s refused by central, not retried: %s", clip.clip_id, error)
                self.store.mark_failed(clip.clip_id, str(error))
                report.failed.append(clip.clip_id)
                return
            delay = self.policy.backoff_delay(clip.attempts + 1, error)
            reason = f"{REFUSED_ONCE}{error}" if isinstance(error, PermanentTransferError) else str(error)
            self.store.mark_waiting(clip.clip_id, reason, utc_now() + timedelta(seconds=delay))
            report.waiting.append(clip.clip_id)
            if error.status is None:
                report.central_unreachable = True  # no answer at all: stop claiming more this pass
            log.warning("clip %s will be retried in %.1fs: %s", clip.clip_id, delay, error)
        else:
            self.store.mark_verified(clip.clip_id)
            report.verified.append(clip.clip_id)
            log.info("clip %s verified at central", clip.clip_id)


def purge_local_copies(store: StationStore, grace: timedelta) -> int:
    """Delete local copies of clips central verified more than ``grace`` ago; return how many."""
    removed = 0
    for clip_id, relative in store.purgeable(grace):
        # Unlink first: a crash before the row update only means unlinking again next time.
        Path(store.local_path(relative)).unlink(missing_ok=True)
        store.mark_local_deleted(clip_id)
        removed += 1
    return removed
