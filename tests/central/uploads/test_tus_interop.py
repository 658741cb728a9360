"""A tus client nobody here wrote (tuspy) uploads to central under a real uvicorn server."""

import hashlib
import os
import uuid

import pytest
from tusclient import client as tus_client

from tests.e2e.harness import ADMIN_TOKEN, Cluster
from tests.station.conftest import RECORDED

pytestmark = pytest.mark.slow


@pytest.fixture
def central(tmp_path):
    cluster = Cluster(tmp_path / "cluster")
    cluster.start_central()
    yield cluster
    cluster.stop_all()


@pytest.mark.parametrize("chunk_size, checksum", [(None, False), (256 * 1024, True)])
def test_tuspy_upload_is_verified(central, tmp_path, chunk_size, checksum):
    data = os.urandom(1_000_000 + 17)
    path = tmp_path / "clip.mp4"
    path.write_bytes(data)
    clip_id = str(uuid.uuid4())
    client = tus_client.TusClient(f"{central.url}/api/v1/uploads/", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    options = {"chunk_size": chunk_size} if chunk_size else {}
    with open(path, "rb") as stream:  # tuspy leaves a file it opened itself unclosed
        uploader = client.uploader(
            file_stream=stream,
            upload_checksum=checksum,
            metadata={
                "clip_id": clip_id,
                "sha256": hashlib.sha256(data).hexdigest(),
                "device_serial": "BWV-000777",
                "recorded_at": RECORDED.isoformat(),
                "filename": "clip.mp4",
            },
            **options,
        )
        uploader.upload()
    clip = central.clip(clip_id)
    assert clip["state"] == "verified" and clip["sha256"] == hashlib.sha256(data).hexdigest()
    assert clip["size"] == len(data)


def test_simultaneous_duplicate_creations_get_one_upload(central):
    """Two stations' retries racing (or one station's retry racing its own slow request)."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from tests.central.conftest import metadata

    data = os.urandom(1000)
    header = metadata(data, clip_id=str(uuid.uuid4()))

    def create(_):
        return httpx.post(
            f"{central.url}/api/v1/uploads/",
            headers={
                "Authorization": f"Bearer {ADMIN_TOKEN}",
                "Tus-Resumable": "1.0.0",
                "Upload-Length": str(len(data)),
                "Upload-Metadata": header,
            },
        )

    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(create, range(16)))
    assert sorted(r.status_code for r in responses) == [200] * 15 + [201]
    assert len({r.headers["Location"] for r in responses}) == 1
    assert len(list((central.central_data() / "uploads").glob("*.part"))) == 1


def test_tuspy_zero_byte_upload_is_verified(central, tmp_path):
    path = tmp_path / "empty.mp4"
    path.write_bytes(b"")
    clip_id = str(uuid.uuid4())
    client = tus_client.TusClient(f"{central.url}/api/v1/uploads/", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    with open(path, "rb") as stream:
        client.uploader(
            file_stream=stream,
            metadata={
                "clip_id": clip_id,
                "sha256": hashlib.sha256(b"").hexdigest(),
                "device_serial": "BWV-000777",
                "recorded_at": RECORDED.isoformat(),
                "filename": "empty.mp4",
            },
        ).upload()
    clip = central.clip(clip_id)
    assert clip["state"] == "verified" and clip["size"] == 0
