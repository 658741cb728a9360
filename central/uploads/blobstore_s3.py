"""Clips as objects in an S3-compatible bucket (``[blobs] backend = "s3"``), through boto3.

``put`` checks what the bucket stored before it returns (so before central answers
"verified"): the object's size, its ETag and the clip's SHA-256 kept as its metadata.

Why the ETag, not S3's SHA-256 checksums: the ETag is computed by the server from the bytes
it stored, by AWS and every S3-compatible server alike, and the MD5 of each part costs
nothing extra in the pass that reads the file. S3's ``ChecksumSHA256`` of a multipart
object is a checksum of the parts' checksums, not the clip's SHA-256 either, and some
servers (moto among them) store the checksum the client sends without recomputing it, so
comparing it would compare our own value with itself. Each request also carries
``Content-MD5``, so AWS refuses a part damaged in transit before storing it.
The cost: with SSE-KMS or SSE-C encryption the ETag is not an MD5 and every put fails
(loudly, never silently); use SSE-S3 or no server-side encryption (docs/storage.md).

Nothing half-written is ever visible: a clip below ``multipart_threshold_bytes`` is one
PUT (atomic in S3), a bigger one a multipart upload that S3 shows only once completed;
any failure aborts it, and a crash leaves an invisible unfinished upload that start-up
aborts. An object that does not check out is deleted before ``put`` raises.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import logging
import threading
import uuid
from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from central.uploads.blobstore import PUT_ATTEMPTS, READ_PIECE, check_key, same_bytes
from fleet.config import BlobSettings
from fleet.errors import BlobStoreUnavailable, ConfigError
from fleet.hashing import file_sha256

log = logging.getLogger(__name__)

MAX_PARTS = 10_000
"""S3's limit on the parts of one object: the part size grows for clips that would need more."""
COPY_MAX_BYTES = 5 * 1024**3
"""The largest object S3 copies in one request (CopyObject); larger ones are copied part by part."""
DELETE_BATCH = 1000
"""Keys per ``DeleteObjects`` request, S3's maximum."""


class S3BlobStore:
    """Objects ``<prefix><clip_id>`` in one bucket; one PUT or a multipart upload, every put checked."""

    def __init__(self, settings: BlobSettings) -> None:
        self.settings = settings
        self.stages_uploads = settings.stage_uploads is not False
        """Uploads in progress are kept in the bucket (``central.uploads.staged``), not in .part files."""
        self.bucket = settings.bucket
        self.prefix = settings.prefix
        options: dict[str, Any] = {}
        if settings.endpoint_url:
            options["s3"] = {"addressing_style": "path"}  # what S3-compatible servers expect
        config = Config(
            retries={"mode": "standard", "max_attempts": 3},
            connect_timeout=10,
            read_timeout=60,
            max_pool_connections=max(10, 2 * settings.upload_concurrency),
            # Content-MD5 guards each request; flexible checksums are not understood by every
            # S3-compatible server, and would cost another pass over the bytes.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            **options,
        )
        with _session_lock:  # a boto3 session is not thread-safe; its clients are
            self.client = _session().client(
                "s3",
                endpoint_url=settings.endpoint_url,
                region_name=settings.region,
                config=config,
                aws_access_key_id=settings.access_key_id,
                aws_secret_access_key=settings.secret_access_key,
            )

    # -- start-up ----------------------------------------------------------------------------

    def check(self) -> None:
        where = f"[blobs] bucket {self.bucket!r}" + (
            f" at {self.settings.endpoint_url}" if self.settings.endpoint_url else ""
        )
        try:
            self.client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            status = _status(exc)
            if status == 404 and self.settings.create_bucket:
                self._create_bucket(where)
            elif status == 404:
                raise ConfigError(f"{where} does not exist: create it, or set create_bucket = true") from None
            elif status in (401, 403):
                raise ConfigError(f"{where}: access denied: check the credentials and the bucket's policy") from None
            else:
                raise ConfigError(f"{where}: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise ConfigError(f"{where} cannot be used: {exc}") from None
        self._check_conditional_writes(where)
        if not self.stages_uploads:
            self._abort_unfinished()
        # Staged, the bucket's multipart uploads are uploads in progress, other replicas' too: the
        # upload-expiry job aborts those no upload names (central.uploads.staged, ``sweep``).

    def _check_conditional_writes(self, where: str) -> None:
        """A blob is never replaced only because a write lands where the key holds nothing
        (If-None-Match: *): a store that ignores the header replaces blobs silently, one that
        refuses it fails every upload. Either is refused here, with a probe no blob key can name."""
        probe = {"Bucket": self.bucket, "Key": f"{self.prefix}.conditional-write-check-{uuid.uuid4().hex}"}
        honoured = False
        try:
            self.client.put_object(**probe, Body=b"", IfNoneMatch="*")
            try:
                self.client.put_object(**probe, Body=b"", IfNoneMatch="*")
            except ClientError as exc:
                if _status(exc) != 412:
                    raise
                honoured = True
        except ClientError as exc:
            raise ConfigError(
                f"{where} refuses a conditional write (If-None-Match: *), which storing a clip needs: "
                f"{_reason(exc)}; use a store that supports it (AWS S3, recent MinIO or Ceph)"
            ) from None
        except BotoCoreError as exc:
            raise ConfigError(f"{where} cannot be used: {exc}") from None
        finally:
            try:
                self.client.delete_object(**probe)
            except (BotoCoreError, ClientError) as exc:
                log.warning("could not remove the conditional-write probe %s (%s)", probe["Key"], _reason(exc))
        if not honoured:
            raise ConfigError(
                f"{where} ignores a conditional write (If-None-Match: *): a second copy of a clip would "
                "replace the first; use a store that supports it (AWS S3, recent MinIO or Ceph)"
            )

    def _create_bucket(self, where: str) -> None:
        params: dict[str, Any] = {}
        if self.settings.region and self.settings.region != "us-east-1":
            params["CreateBucketConfiguration"] = {"LocationConstraint": self.settings.region}
        try:
            self.client.create_bucket(Bucket=self.bucket, **params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketAlreadyOwnedByYou":
                raise ConfigError(f"{where} does not exist and cannot be created: {_reason(exc)}") from None
        except BotoCoreError as exc:
            raise ConfigError(f"{where} does not exist and cannot be created: {exc}") from None
        log.info("created bucket %s for the blob store", self.bucket)

    def _abort_unfinished(self) -> None:
        """Multipart uploads a crash left under our prefix: invisible, but billed until aborted.

        Central is the only writer and has not started serving, so none of them is in progress
        (a previous process still finishing one fails to complete it, and its station retries)."""
        aborted = 0
        try:
            for page in self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            ):
                for upload in page.get("Uploads", []):
                    self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                    )
                    aborted += 1
        except (BotoCoreError, ClientError) as exc:
            log.warning(
                "could not list or abort unfinished multipart uploads in %s (%s); a bucket lifecycle rule "
                "(AbortIncompleteMultipartUpload) cleans them up too",
                self.bucket,
                _reason(exc),
            )
        if aborted:
            log.info("aborted %d unfinished multipart uploads left by an earlier run", aborted)

    # -- writing -----------------------------------------------------------------------------

    def put(self, source: Path, key: str, sha256: str | None = None) -> None:
        check_key(key)
        size = source.stat().st_size
        sha256 = sha256 or file_sha256(source)  # every object says its SHA-256: a second put compares it
        metadata = {"sha256": sha256}
        for attempt in range(PUT_ATTEMPTS):
            with open(source, "rb") as f:
                try:
                    if size < self.settings.multipart_threshold_bytes:
                        etag = self._put_whole(f, key, sha256, metadata)
                    else:
                        etag = self._put_parts(f, key, size, sha256, metadata)
                except FileExistsError:  # the key holds an object, which is never replaced
                    etag = None
            if etag is not None:
                self._check_stored(key, size, etag, metadata)
                break
            try:
                self._same_as_stored(key, size, sha256)
                break
            except FileNotFoundError:
                if attempt + 1 == PUT_ATTEMPTS:
                    raise
                # deleted since it was met (the firmware sweep): the key is free again
        try:
            source.unlink()  # a crash before this: recovery stores the file again (same key, same bytes)
        except OSError as exc:
            log.warning("clip %s is stored but its received file %s could not be removed: %s", key, source, exc)

    def _put_whole(self, f: BinaryIO, key: str, sha256: str | None, metadata: dict[str, str]) -> str:
        data = f.read()  # below the multipart threshold, so bounded
        md5 = hashlib.md5(data, usedforsecurity=False)
        _same_sha256(key, hashlib.sha256(data).hexdigest(), sha256)
        self._call("put_object", key, Body=data, ContentMD5=_b64(md5.digest()), Metadata=metadata, IfNoneMatch="*")
        return f'"{md5.hexdigest()}"'

    def _put_parts(self, f: BinaryIO, key: str, size: int, sha256: str | None, metadata: dict[str, str]) -> str:
        """A multipart upload, aborted on any failure; returns the ETag S3 must then report."""
        part_bytes = max(self.settings.part_bytes, -(-size // MAX_PARTS))
        upload_id = self._call("create_multipart_upload", key, Metadata=metadata)["UploadId"]
        try:
            parts, md5s = self._send_parts(f, key, upload_id, part_bytes, sha256)
            self._call(
                "complete_multipart_upload", key, UploadId=upload_id, MultipartUpload={"Parts": parts}, IfNoneMatch="*"
            )
        except BaseException:
            self._abort(key, upload_id)
            raise
        return f'"{hashlib.md5(b"".join(md5s), usedforsecurity=False).hexdigest()}-{len(md5s)}"'

    def _send_parts(
        self, f: BinaryIO, key: str, upload_id: str, part_bytes: int, sha256: str | None
    ) -> tuple[list[dict[str, Any]], list[bytes]]:
        """Read the file once (SHA-256 and each part's MD5 on the way); up to ``upload_concurrency``
        parts in flight, so memory stays at that many parts whatever the clip's size."""
        whole = hashlib.sha256()
        md5s: list[bytes] = []
        parts: list[dict[str, Any]] = []
        in_flight: deque[Future] = deque()
        concurrency = self.settings.upload_concurrency
        with ThreadPoolExecutor(concurrency, thread_name_prefix="s3-part") as pool:
            try:
                while True:
                    if len(in_flight) >= concurrency:
                        parts.append(in_flight.popleft().result())
                    piece = f.read(part_bytes)
                    if not piece:
                        break
                    whole.update(piece)
                    md5s.append(hashlib.md5(piece, usedforsecurity=False).digest())
                    in_flight.append(pool.submit(self._send_part, key, upload_id, len(md5s), piece, md5s[-1]))
                while in_flight:
                    parts.append(in_flight.popleft().result())
            finally:
                for future in in_flight:  # after a failure: send no more; leaving the pool waits for the rest
                    future.cancel()
        _same_sha256(key, whole.hexdigest(), sha256)
        return parts, md5s

    def _send_part(self, key: str, upload_id: str, number: int, piece: bytes, md5: bytes) -> dict[str, Any]:
        etag = self._call("upload_part", key, UploadId=upload_id, PartNumber=number, Body=piece, ContentMD5=_b64(md5))[
            "ETag"
        ]
        if etag.strip('"') != md5.hex():
            raise BlobStoreUnavailable(
                f"blob store: part {number} of clip {key} was stored with ETag {etag}, not the MD5 of the bytes sent"
            )
        return {"PartNumber": number, "ETag": etag}

    def _abort(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=self.prefix + key, UploadId=upload_id)
        except (BotoCoreError, ClientError) as exc:  # invisible anyway; start-up aborts it
            log.warning("could not abort the multipart upload of clip %s (%s)", key, _reason(exc))

    def _same_as_stored(self, key: str, size: int, sha256: str | None) -> None:
        """The key held an object already (a retry of this clip, or another replica's copy of it):
        fine if it is these bytes (its size and SHA-256), else BlobTaken; it is kept either way."""
        head = self._call("head_object", key)
        stored = head.get("Metadata", {}).get("sha256") if head["ContentLength"] == size else None
        same_bytes(key, stored, sha256)
        self._refresh(key, size, {"sha256": stored})

    def _refresh(self, key: str, size: int, metadata: dict[str, Any]) -> None:
        """Stored again, so stored now (the firmware sweep spares a fresh blob): copied onto itself.
        S3 copies at most 5 GiB in one request (a clip may be 64): a larger object part by part,
        the same bytes over themselves."""
        source = {"Bucket": self.bucket, "Key": self.prefix + key}
        if size <= COPY_MAX_BYTES:
            self._call("copy_object", key, CopySource=source, MetadataDirective="REPLACE", Metadata=metadata)
            return
        part_bytes = max(self.settings.part_bytes, -(-size // MAX_PARTS))
        upload_id = self._call("create_multipart_upload", key, Metadata=metadata)["UploadId"]
        try:
            parts = []
            for number, start in enumerate(range(0, size, part_bytes), 1):
                copied = self._call(
                    "upload_part_copy",
                    key,
                    UploadId=upload_id,
                    PartNumber=number,
                    CopySource=source,
                    CopySourceRange=f"bytes={start}-{min(start + part_bytes, size) - 1}",
                )
                parts.append({"PartNumber": number, "ETag": copied["CopyPartResult"]["ETag"]})
            self._call("complete_multipart_upload", key, UploadId=upload_id, MultipartUpload={"Parts": parts})
        except BaseException:
            self._abort(key, upload_id)
            raise

    def _check_stored(self, key: str, size: int, etag: str, metadata: dict[str, str]) -> None:
        """What the bucket now shows under the key is what was sent, or it is deleted and we raise."""
        try:
            head = self._call("head_object", key)
            stored = (head["ContentLength"], head["ETag"], head.get("Metadata", {}).get("sha256"))
        except FileNotFoundError:
            stored = None
        expected = (size, etag, metadata.get("sha256"))
        if stored != expected:
            try:
                self._call("delete_object", key)
            except BlobStoreUnavailable as exc:
                log.error("clip %s: could not delete the object that did not check out: %s", key, exc)
            raise BlobStoreUnavailable(
                f"blob store: clip {key} was stored as (size, ETag, sha256) {stored}, "
                f"expected {expected}; it was not kept"
            )

    # -- reading and deleting ----------------------------------------------------------------

    def exists(self, key: str) -> bool:
        try:
            self._call("head_object", key)
        except FileNotFoundError:
            return False
        return True

    def size(self, key: str) -> int:
        return self._call("head_object", key)["ContentLength"]

    def read(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        if end is not None and end <= start:
            return
        ranged = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if start or end is not None else {}
        response = self._call("get_object", key, **ranged)
        if response is None:
            return  # a range starting past the end: no bytes, as from a file
        body = response["Body"]
        try:
            yield from body.iter_chunks(READ_PIECE)
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(f"blob store: reading clip {key} failed: {exc}") from exc
        finally:
            body.close()

    def delete(self, key: str) -> None:
        self._call("delete_object", key)

    def keys(self, prefix: str) -> Iterator[tuple[str, float]]:
        params: dict[str, Any] = {"Prefix": self.prefix + check_key(prefix)}
        while True:
            page = self._call("list_objects_v2", **params)
            for item in page.get("Contents", []):
                yield item["Key"][len(self.prefix) :], item["LastModified"].timestamp()
            if not page.get("IsTruncated"):
                return
            params["ContinuationToken"] = page["NextContinuationToken"]

    def stored_at(self, key: str) -> float:
        return self._call("head_object", key)["LastModified"].timestamp()

    def delete_many(self, keys: list[str]) -> None:
        for at in range(0, len(keys), DELETE_BATCH):
            batch = [{"Key": self.prefix + check_key(key)} for key in keys[at : at + DELETE_BATCH]]
            errors = self._call("delete_objects", Delete={"Objects": batch, "Quiet": True}).get("Errors", [])
            errors = [e for e in errors if e.get("Code") != "NoSuchKey"]
            if errors:  # the purge list is kept, so the next sweep tries these again
                first = errors[0]
                raise BlobStoreUnavailable(
                    f"blob store: {len(errors)} of {len(batch)} deletions failed, e.g. "
                    f"{first.get('Key')}: {first.get('Code')} {first.get('Message')}"
                )

    # -- one request -------------------------------------------------------------------------

    def _call(self, operation: str, key: str | None = None, **params: Any) -> Any:
        """One S3 request: a missing object is FileNotFoundError (as from the filesystem store),
        any other failure BlobStoreUnavailable (a 503 with Retry-After for the client)."""
        if key is not None:
            params["Key"] = self.prefix + check_key(key)
        try:
            return getattr(self.client, operation)(Bucket=self.bucket, **params)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                return None
            if (
                _status(exc) == 404
                and key is not None
                and operation
                in (
                    "head_object",
                    "get_object",
                    "copy_object",
                    "upload_part_copy",
                )
            ):
                raise FileNotFoundError(f"no blob {key} in bucket {self.bucket}") from None
            if _status(exc) == 412 and operation in ("put_object", "complete_multipart_upload"):
                raise FileExistsError(f"blob {key} is in bucket {self.bucket} already") from None
            raise BlobStoreUnavailable(f"blob store: {operation} {key or ''} failed: {_reason(exc)}") from exc
        except BotoCoreError as exc:
            raise BlobStoreUnavailable(f"blob store: {operation} {key or ''} failed: {exc}") from exc


_session_lock = threading.Lock()


@functools.cache
def _session() -> boto3.session.Session:
    """One boto3 session per process: each new one would load S3's service model again (~0.3 s)."""
    return boto3.session.Session()


def _same_sha256(key: str, read: str, expected: str | None) -> None:
    """The file read for the upload is still the one the receiver verified (checked before it is visible)."""
    if expected is not None and read != expected:
        raise BlobStoreUnavailable(
            f"blob store: the received file of clip {key} now hashes to {read}, not the "
            f"verified {expected}; nothing was stored"
        )


def _status(exc: ClientError) -> int | None:
    return exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _reason(exc: Exception) -> str:
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        return f"{error.get('Code', '?')}: {error.get('Message', '')}".rstrip(": ")
    return str(exc)


def _b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()
