import base64
import uuid
from datetime import UTC, datetime
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fleet.errors import BadRequest
from fleet.protocol import UploadMetadata, decode_upload_metadata, encode_upload_metadata

SURROGATES: tuple[Literal["Cs"]] = ("Cs",)  # not encodable as UTF-8
tags = st.lists(st.from_regex(r"[a-z0-9_]{1,20}", fullmatch=True), max_size=5)
metadata = st.builds(
    UploadMetadata,
    clip_id=st.uuids(version=4),
    sha256=st.from_regex(r"[0-9a-f]{64}", fullmatch=True),
    device_serial=st.from_regex(r"BWV-[0-9]{6}", fullmatch=True),
    recorded_at=st.datetimes(timezones=st.just(UTC)),
    filename=st.text(st.characters(exclude_categories=SURROGATES), min_size=1, max_size=60),
    evidential=st.booleans(),
    tags=tags,
    duration_s=st.floats(min_value=0, max_value=1e5, allow_nan=False),
)


@given(metadata)
def test_upload_metadata_round_trips(meta):
    assert decode_upload_metadata(encode_upload_metadata(meta)) == meta


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


GOOD = {
    "clip_id": str(uuid.uuid4()),
    "sha256": "a" * 64,
    "device_serial": "BWV-000001",
    "recorded_at": "2026-11-20T14:00:00Z",
    "filename": "a.mp4",
}


def header(values: dict[str, str]) -> str:
    return ",".join(f"{k} {b64(v)}" for k, v in values.items())


@pytest.mark.parametrize(
    "values, message",
    [
        ({**GOOD, "sha256": "xyz"}, "sha256"),
        ({k: v for k, v in GOOD.items() if k != "clip_id"}, "clip_id"),
        ({**GOOD, "recorded_at": "2026-11-20T14:00:00"}, "recorded_at"),
        ({**GOOD, "evidential": "yes"}, "evidential"),
        ({**GOOD, "duration_s": "long"}, "duration_s"),
        ({**GOOD, "clip_id": "not-a-uuid"}, "clip_id"),
    ],
)
def test_bad_metadata_is_refused_with_the_field_named(values, message):
    with pytest.raises(BadRequest, match=message):
        decode_upload_metadata(header(values))


@pytest.mark.parametrize("raw", ["clip_id !!!", "clip_id a b", "k1 " + b64("x") + ",k1 " + b64("y"), "k \xff"])
def test_malformed_metadata_header(raw):
    with pytest.raises(BadRequest):
        decode_upload_metadata(raw)


def test_recorded_at_keeps_its_instant():
    meta = decode_upload_metadata(header({**GOOD, "recorded_at": "2026-11-20T15:00:00+01:00"}))
    assert meta.recorded_at == datetime(2026, 11, 20, 14, tzinfo=UTC)
