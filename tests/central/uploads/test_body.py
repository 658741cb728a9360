"""A request body as it arrives: the idle deadline times the client's waits, never the caller's work."""

import asyncio

import pytest

from central.uploads.body import RequestBody
from fleet.errors import PayloadTooLarge


async def arriving(*pieces: bytes, then: BaseException | None = None, stall_s: float = 0.0):
    for piece in pieces:
        yield piece
    if stall_s:
        await asyncio.sleep(stall_s)
    if then is not None:
        raise then


async def taken(reader: RequestBody, work_s: float = 0.0) -> list[bytes]:
    got = []
    async for piece in reader.pieces():
        got.append(piece)
        await asyncio.sleep(work_s)  # the caller writing the piece: not the client's time
    return got


def test_a_caller_slower_than_the_deadline_still_gets_every_piece():
    reader = RequestBody(arriving(b"a" * 10, b"", b"b" * 10), 100, 0.05, "u1")
    assert asyncio.run(taken(reader, work_s=0.15)) == [b"a" * 10, b"b" * 10]
    assert not reader.cut_short and reader.seen == 20


def test_a_client_that_goes_silent_is_cut_short_keeping_what_came():
    reader = RequestBody(arriving(b"a" * 10, stall_s=5), 100, 0.1, "u2")
    assert asyncio.run(asyncio.wait_for(taken(reader), 3)) == [b"a" * 10]
    assert reader.cut_short


def test_a_client_that_goes_away_is_cut_short():
    reader = RequestBody(arriving(b"a" * 10, then=ConnectionResetError("gone")), 100, 5, "u3")
    assert asyncio.run(taken(reader)) == [b"a" * 10] and reader.cut_short


def test_more_than_the_room_is_refused():
    reader = RequestBody(arriving(b"a" * 60, b"b" * 60), 100, 5, "u4")
    with pytest.raises(PayloadTooLarge):
        asyncio.run(taken(reader))


def test_a_cancelled_request_is_cancelled_not_cut_short():
    async def scenario():
        reader = RequestBody(arriving(b"a", stall_s=5), 100, 5, "u5")
        task = asyncio.create_task(taken(reader))
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return reader

    assert not asyncio.run(scenario()).cut_short
