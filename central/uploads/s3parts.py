"""An upload's bytes kept in the S3 bucket as they arrive (``[blobs] stage_uploads``): the requests.

As tusd's S3 store does it: an upload is a multipart upload on its clip's key, begun when the
upload is created. Its bytes go up as parts of the upload's part size (S3 wants at least 5 MiB
but for the last); the bytes after the last whole part are an object of their own, the *tail*
(``<prefix>uploading/<upload_id>/<random>``), replaced by a longer one as the upload grows and
folded into the next part. The upload's row names what counts (its parts' MD5s, its tail):
``central.uploads.staged`` counts bytes only once they are here.

Completing never replaces a stored clip: ``CompleteMultipartUpload`` is conditional
(``If-None-Match: *``) and the object it made is checked as ``S3BlobStore.put`` checks its
own (size, the ETag S3 derives from the parts' MD5s, the clip's SHA-256 kept as metadata).
Transient failures of a part or a tail are retried here (``StoreRetry``, tenacity) before a
PATCH gives up with 503: the bytes are in memory, cheaper to send again than the station's.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import tenacity
from botocore.exceptions import BotoCoreError, ClientError
from tenacity.wait import wait_base, wait_random_exponential

from central.uploads.blobstore import check_key
from central.uploads.blobstore_s3 import MAX_PARTS, S3BlobStore, _b64, _reason, _status
from fleet.errors import BlobStoreUnavailable

log = logging.getLogger(__name__)

TAILS = "uploading/"
"""Tail objects live under ``<prefix>uploading/``: a clip's key (a UUID) never has a slash."""


class UploadGone(Exception):
    """The multipart upload is no longer there: completed (by a replica that died before recording
    it), or aborted."""


class AlreadyStored(Exception):
    """The clip's key already holds an object: completing would have replaced it."""


class NotAsSent(Exception):
    """S3 refused the parts named, or the object completed from them is not what was sent."""


@dataclass(frozen=True)
class StoreRetry:
    """How a part or a tail is retried when the store fails; tests pass no wait."""

    attempts: int = 3
    wait: wait_base = field(default_factory=lambda: wait_random_exponential(multiplier=0.2, max=2.0))

    def retrying(self) -> tenacity.Retrying:
        return tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=self.wait,
            retry=tenacity.retry_if_exception_type(BlobStoreUnavailable),
            reraise=True,
        )


@dataclass(frozen=True)
class Stored:
    """What the bucket holds under a clip's key."""

    size: int
    etag: str
    sha256: str | None


def multipart_etag(md5s: list[str]) -> str:
    """The ETag S3 gives an object completed from parts with these MD5s."""
    joined = b"".join(bytes.fromhex(m) for m in md5s)
    return f'"{hashlib.md5(joined, usedforsecurity=False).hexdigest()}-{len(md5s)}"'


class S3Parts:
    """The requests of staged uploads, through the blob store's client (its bucket and prefix)."""

    def __init__(self, store: S3BlobStore, retry: StoreRetry | None = None) -> None:
        self.store = store
        self.client = store.client
        self.bucket = store.bucket
        self.prefix = store.prefix
        self.concurrency = store.settings.upload_concurrency
        self.retry = retry or StoreRetry()

    def part_bytes(self, length: int) -> int:
        """The part size of an upload of ``length`` bytes: the setting's, larger where S3's
        10,000 parts would not hold the clip."""
        return max(self.store.settings.part_bytes, -(-length // MAX_PARTS))

    def _key(self, clip_id: str) -> str:
        return self.prefix + check_key(clip_id)

    # -- an upload's life ----------------------------------------------------------------------

    def begin(self, clip_id: str, sha256: str) -> str:
        """A new multipart upload for the clip; its id."""
        return self._request("create_multipart_upload", Key=self._key(clip_id), Metadata={"sha256": sha256})["UploadId"]

    def send_part(self, clip_id: str, multipart_id: str, number: int, data: bytes) -> str:
        """Store part ``number``; its MD5 (hex), checked against the ETag S3 gives it."""
        md5 = hashlib.md5(data, usedforsecurity=False)
        for attempt in self.retry.retrying():
            with attempt:
                try:
                    etag = self._request(
                        "upload_part",
                        Key=self._key(clip_id),
                        UploadId=multipart_id,
                        PartNumber=number,
                        Body=data,
                        ContentMD5=_b64(md5.digest()),
                    )["ETag"]
                except BlobStoreUnavailable:
                    # Not every server says NoSuchUpload for a part of an upload that is gone (moto
                    # answers 500): ask, and do not retry what cannot succeed.
                    self._request("list_parts", Key=self._key(clip_id), UploadId=multipart_id, MaxParts=1)
                    raise
                if etag.strip('"') != md5.hexdigest():
                    raise BlobStoreUnavailable(
                        f"blob store: part {number} of clip {clip_id} was stored with ETag {etag}, "
                        "not the MD5 of the bytes sent"
                    )
        return md5.hexdigest()

    def put_tail(self, upload_id: str, data: bytes) -> str:
        """Store the bytes after the last whole part as a new object; its key."""
        key = f"{self.prefix}{TAILS}{check_key(upload_id)}/{uuid.uuid4().hex}"
        md5 = hashlib.md5(data, usedforsecurity=False)
        for attempt in self.retry.retrying():
            with attempt:
                etag = self._request("put_object", Key=key, Body=data, ContentMD5=_b64(md5.digest()))["ETag"]
                if etag.strip('"') != md5.hexdigest():
                    raise BlobStoreUnavailable(f"blob store: tail {key} was stored with ETag {etag}, not as sent")
        return key

    def tail(self, key: str) -> bytes:
        """A tail's bytes (FileNotFoundError: it was replaced or removed meanwhile)."""
        for attempt in self.retry.retrying():
            with attempt:
                body = self._request("get_object", Key=key)["Body"]
                try:
                    return body.read()
                except BotoCoreError as exc:
                    raise BlobStoreUnavailable(f"blob store: reading tail {key} failed: {exc}") from exc
                finally:
                    body.close()
        raise AssertionError("unreachable: tenacity re-raises")  # pragma: no cover

    def drop_tails(self, upload_id: str, keep: str | None = None) -> None:
        """Delete the upload's tail objects but ``keep`` (best effort: the expiry job sweeps what stays)."""
        try:
            keys = [k for k, _ in self._listed(f"{self.prefix}{TAILS}{check_key(upload_id)}/") if k != keep]
            if keys:
                self._request("delete_objects", Delete={"Objects": [{"Key": k} for k in keys], "Quiet": True})
        except BlobStoreUnavailable as exc:
            log.warning("upload %s: could not delete its tail objects (%s); the expiry job will", upload_id, exc)

    def complete(self, clip_id: str, multipart_id: str, md5s: list[str], length: int, sha256: str) -> None:
        """Make the clip's object of these parts, unless the key holds one already (AlreadyStored),
        and check it; an object that does not check out is deleted (NotAsSent)."""
        if not md5s:  # S3 completes nothing without a part: an empty clip is one empty part
            md5s = [self.send_part(clip_id, multipart_id, 1, b"")]
        parts = [{"PartNumber": number, "ETag": f'"{md5}"'} for number, md5 in enumerate(md5s, start=1)]
        self._request(
            "complete_multipart_upload",
            Key=self._key(clip_id),
            UploadId=multipart_id,
            MultipartUpload={"Parts": parts},
            IfNoneMatch="*",
        )
        expected = Stored(length, multipart_etag(md5s), sha256)
        stored = self.stored(clip_id)
        if stored != expected:
            if stored is not None:
                self.delete(clip_id)
            raise NotAsSent(f"clip {clip_id} was completed as {stored}, expected {expected}; it was not kept")

    def abort(self, clip_id: str, multipart_id: str) -> None:
        """Abort the multipart upload (UploadGone: it was completed or aborted already)."""
        self._request("abort_multipart_upload", Key=self._key(clip_id), UploadId=multipart_id)

    def stored(self, clip_id: str) -> Stored | None:
        try:
            head = self._request("head_object", Key=self._key(clip_id))
        except FileNotFoundError:
            return None
        return Stored(head["ContentLength"], head["ETag"], head.get("Metadata", {}).get("sha256"))

    def sha256(self, clip_id: str) -> str:
        """The SHA-256 of the object under the clip's key: one read of it."""
        digest = hashlib.sha256()
        for piece in self.store.read(clip_id):
            digest.update(piece)
        return digest.hexdigest()

    def delete(self, clip_id: str) -> None:
        self._request("delete_object", Key=self._key(clip_id))

    # -- the expiry job's sweep ------------------------------------------------------------------

    def multipart_uploads(self, before: datetime) -> Iterator[tuple[str, str]]:
        """(clip key, multipart id) of the multipart uploads under our prefix begun before ``before``."""
        paginator = self.client.get_paginator("list_multipart_uploads")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=self.prefix):
                for upload in page.get("Uploads", []):
                    key = upload["Key"][len(self.prefix) :]
                    if "/" not in key and upload["Initiated"] < before:
                        yield key, upload["UploadId"]
        except (BotoCoreError, ClientError) as exc:
            raise BlobStoreUnavailable(f"blob store: listing multipart uploads failed: {_reason(exc)}") from exc

    def tails(self, before: datetime) -> Iterator[tuple[str, str]]:
        """(key, upload id) of the tail objects last written before ``before``."""
        for key, modified in self._listed(self.prefix + TAILS):
            if modified < before:
                yield key, key[len(self.prefix + TAILS) :].split("/", 1)[0]

    def delete_keys(self, keys: list[str]) -> None:
        for at in range(0, len(keys), 1000):
            batch = [{"Key": k} for k in keys[at : at + 1000]]
            self._request("delete_objects", Delete={"Objects": batch, "Quiet": True})

    def _listed(self, prefix: str) -> Iterator[tuple[str, datetime]]:
        try:
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"], item["LastModified"]
        except (BotoCoreError, ClientError) as exc:
            raise BlobStoreUnavailable(f"blob store: listing {prefix} failed: {_reason(exc)}") from exc

    # -- one request -----------------------------------------------------------------------------

    def _request(self, operation: str, **params: Any) -> Any:
        """One S3 request; its failures as this module's exceptions, or FileNotFoundError for a
        missing object, or BlobStoreUnavailable (a 503 with Retry-After for the station)."""
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except ClientError as exc:
            code = exc.response.get("Error", {}).get("Code")
            status = _status(exc)
            if code == "NoSuchUpload":
                raise UploadGone(f"multipart upload {params.get('UploadId')} is gone") from None
            if code == "PreconditionFailed" or status == 412:
                raise AlreadyStored(f"{params.get('Key')} holds an object already") from None
            if code in ("InvalidPart", "InvalidPartOrder", "EntityTooSmall"):
                raise NotAsSent(f"{operation} {params.get('Key')}: {_reason(exc)}") from None
            if code in ("NoSuchKey", "404") or (status == 404 and operation in ("head_object", "get_object")):
                raise FileNotFoundError(f"no object {params.get('Key')} in bucket {self.bucket}") from None
            raise BlobStoreUnavailable(
                f"blob store: {operation} {params.get('Key', '')} failed: {_reason(exc)}"
            ) from exc
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(f"blob store: {operation} {params.get('Key', '')} failed: {exc}") from exc
