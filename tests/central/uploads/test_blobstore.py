"""The blob-store contract, held by every backend: the filesystem one and S3 (on a local moto server)."""

import errno
import hashlib
import os

import pytest

from central.uploads import blobstore
from central.uploads.blobstore import READ_PIECE, BlobTaken, FilesystemBlobStore
from fleet.errors import ConfigError
from fleet.hashing import file_sha256
from tests.support.s3server import blob_settings


@pytest.fixture(params=["filesystem", "s3"])
def blobs(request, tmp_path):
    if request.param == "filesystem":
        return FilesystemBlobStore(tmp_path / "blobs")
    from central.uploads.blobstore_s3 import S3BlobStore

    store = S3BlobStore(blob_settings())
    store.check()  # creates its fresh bucket
    return store


@pytest.fixture
def source(tmp_path):
    def write(data: bytes):
        path = tmp_path / f"{hashlib.sha256(data).hexdigest()[:12]}.part"
        path.write_bytes(data)
        return path

    return write


def test_put_takes_the_file_and_reads_back_whole_and_in_ranges(blobs, source):
    data = os.urandom(2 * READ_PIECE + 123)
    path = source(data)
    blobs.put(path, "clip-a", hashlib.sha256(data).hexdigest())
    assert not path.exists()  # ownership taken
    assert blobs.exists("clip-a") and blobs.size("clip-a") == len(data)
    pieces = list(blobs.read("clip-a"))
    assert b"".join(pieces) == data and max(len(p) for p in pieces) <= READ_PIECE  # bounded memory
    assert b"".join(blobs.read("clip-a", 100, 200)) == data[100:200]
    assert b"".join(blobs.read("clip-a", len(data) - 10)) == data[-10:]
    assert b"".join(blobs.read("clip-a", 5, 5)) == b""
    assert b"".join(blobs.read("clip-a", len(data) + 5, len(data) + 10)) == b""  # past the end: nothing


def test_an_empty_clip_is_a_blob_too(blobs, source):
    blobs.put(source(b""), "empty")
    assert blobs.exists("empty") and blobs.size("empty") == 0 and b"".join(blobs.read("empty")) == b""


def test_a_missing_blob_does_not_exist_and_cannot_be_read(blobs):
    assert not blobs.exists("nothing")
    with pytest.raises(FileNotFoundError):
        blobs.size("nothing")
    with pytest.raises(FileNotFoundError):
        b"".join(blobs.read("nothing"))


def test_delete_and_delete_many_ignore_missing_keys(blobs, source):
    for key in ("k1", "k2", "k3"):
        blobs.put(source(key.encode()), key)
    blobs.delete("k1")
    blobs.delete("k1")
    blobs.delete_many(["k2", "never-there", "k3"])
    assert [blobs.exists(k) for k in ("k1", "k2", "k3")] == [False, False, False]


@pytest.mark.parametrize("declared", [True, False], ids=["sha256 given", "sha256 not given"])
def test_a_blob_is_never_replaced_and_put_again_is_fine_for_the_same_bytes(blobs, source, declared):
    """Two replicas storing one clip id at once: the first stored stands, a retry of it is fine."""

    def put(data: bytes) -> None:
        blobs.put(source(data), "again", hashlib.sha256(data).hexdigest() if declared else None)

    put(b"first")
    again = source(b"first")
    blobs.put(again, "again", hashlib.sha256(b"first").hexdigest() if declared else None)  # a retry
    assert not again.exists()  # taken, as by any put that succeeds
    with pytest.raises(BlobTaken):
        put(b"second")
    with pytest.raises(BlobTaken):
        put(b"first, longer")
    assert b"".join(blobs.read("again")) == b"first"


def test_a_blob_taken_at_once_by_another_writer_is_kept(blobs, source, monkeypatch):
    """The key is free when the put begins and taken before it lands (another replica): the
    bytes there first stay."""
    if isinstance(blobs, FilesystemBlobStore):
        real_link = os.link

        def link(src, dst, *args, **kwargs):
            with open(dst, "wb") as f:  # the other replica's blob lands first
                f.write(b"theirs")
            return real_link(src, dst, *args, **kwargs)

        monkeypatch.setattr("central.uploads.blobstore.os.link", link)
    else:
        real_call = blobs._call

        def call(operation, key=None, **params):
            if operation == "put_object" and key == "raced":
                real_call("put_object", key, Body=b"theirs", Metadata={"sha256": hashlib.sha256(b"theirs").hexdigest()})
            return real_call(operation, key, **params)

        monkeypatch.setattr(blobs, "_call", call)
    with pytest.raises(BlobTaken):
        blobs.put(source(b"ours"), "raced", hashlib.sha256(b"ours").hexdigest())
    assert b"".join(blobs.read("raced")) == b"theirs"


@pytest.mark.parametrize("when", ["compared", "refreshed"])
def test_a_blob_deleted_while_a_put_of_the_same_bytes_compares_it_is_stored_again(blobs, source, monkeypatch, when):
    """A put of bytes the store holds meets the blob, and the firmware sweep deletes it before the
    put has compared it, or refreshed its time: the put stores the bytes again, as if the key had
    been free, never fails on the blob it no longer finds."""
    data = b"an orphaned artifact"
    sha = hashlib.sha256(data).hexdigest()
    blobs.put(source(data), "orphan", sha)
    swept: list[str] = []
    if isinstance(blobs, FilesystemBlobStore):
        module = "central.uploads.blobstore"
        name, real = ("file_sha256", file_sha256) if when == "compared" else ("os.utime", os.utime)

        def sweep_first(path, *args, **kwargs):
            if not swept and str(path).endswith("/orphan"):
                blobs.delete("orphan")
                swept.append("orphan")
            return real(path, *args, **kwargs)

        monkeypatch.setattr(f"{module}.{name}", sweep_first)
    else:
        real_call = blobs._call
        operation = "head_object" if when == "compared" else "copy_object"

        def call(op, key=None, **params):
            if op == operation and not swept:
                blobs.delete("orphan")
                swept.append("orphan")
            return real_call(op, key, **params)

        monkeypatch.setattr(blobs, "_call", call)
    again = source(data)
    blobs.put(again, "orphan", sha)
    assert swept and not again.exists()
    assert b"".join(blobs.read("orphan")) == data


def test_a_filesystem_without_hard_links_is_refused_at_start_up_and_the_check_leaves_nothing(tmp_path, monkeypatch):
    """A blob is linked into place (a rename would replace one): on a filesystem that cannot link
    (FAT, some network shares) every upload failed with a 500, so central does not start there."""
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    blobs.check()
    assert os.listdir(blobs.root) == []

    def no_links(*args, **kwargs):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr("central.uploads.blobstore.os.link", no_links)
    with pytest.raises(ConfigError, match="cannot hard-link"):
        blobs.check()
    assert os.listdir(blobs.root) == []


@pytest.mark.parametrize("key", ["", "../escape", "a/b", ".hidden"])
def test_keys_that_could_leave_the_store_are_refused(blobs, source, key):
    with pytest.raises(ValueError):
        blobs.put(source(b"x"), key)
    with pytest.raises(ValueError):
        blobs.exists(key)
    with pytest.raises(ValueError):
        blobs.delete_many(["fine", key])


def test_a_put_of_another_size_is_refused_without_reading_the_blob(tmp_path, source, monkeypatch):
    """Other sizes are other bytes: a clip of up to 64 GiB is not read back to say so."""
    blobs = FilesystemBlobStore(tmp_path / "blobs")
    blobs.put(source(b"stored first"), "sized")
    read: list[str] = []
    real = blobstore.file_sha256

    def hashed(path) -> str:
        read.append(str(path))
        return real(path)

    monkeypatch.setattr(blobstore, "file_sha256", hashed)
    with pytest.raises(BlobTaken):
        blobs.put(source(b"longer bytes than those"), "sized", hashlib.sha256(b"longer bytes than those").hexdigest())
    assert not any(path.endswith("/sized") for path in read)
