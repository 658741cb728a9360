"""A local S3-compatible server for tests: moto's server mode, in a thread, on a free port.

One server per test process (``endpoint()`` starts it the first time); tests keep apart by
using a bucket of their own (``s3_settings()`` names a fresh one each call).
"""

from __future__ import annotations

import atexit
import functools
import logging
import uuid

from fleet.config import BlobSettings

ACCESS_KEY, SECRET_KEY = "testing", "testing"  # moto accepts anything; not secrets
REGION = "eu-west-2"
MiB = 1 << 20


@functools.cache
def endpoint() -> str:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()  # returns once it listens
    atexit.register(server.stop)
    host, port = server.get_host_and_port()
    return f"http://{host}:{port}"


def s3_settings(**overrides) -> dict:
    """``[blobs]`` for a fresh bucket on the local server (created at start-up), as config would give it."""
    return {
        "backend": "s3",
        "endpoint_url": endpoint(),
        "bucket": f"test-{uuid.uuid4().hex[:20]}",
        "create_bucket": True,
        "region": REGION,
        "access_key_id": ACCESS_KEY,
        "secret_access_key": SECRET_KEY,
        "multipart_threshold_bytes": 5 * MiB,
        "part_bytes": 5 * MiB,
        **overrides,
    }


def blob_settings(**overrides) -> BlobSettings:
    import msgspec

    return msgspec.convert(s3_settings(**overrides), BlobSettings)
