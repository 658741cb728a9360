"""One HTTP ``Range`` of bytes, as the download routes read it (a clip's content, a release's artifact).

Only one ``bytes=start-end`` (or ``bytes=start-``, ``bytes=-suffix``) range is served; anything
else, or a range outside the file, is 416 with ``Content-Range: bytes */<size>``.
"""

from __future__ import annotations

import re

from fleet.errors import RangeNotSatisfiable

RANGE = re.compile(r"bytes=([0-9]{0,19})-([0-9]{0,19})")
"""ASCII digits only, and few enough for a 64-bit size: int() of thousands of digits raises."""


def parse_range(header: str | None, size: int, what: str = "clip") -> tuple[int, int] | None:
    """One ``bytes=a-b`` range as (start, end-exclusive), None for the whole file."""
    if not header:
        return None
    match = RANGE.fullmatch(header.strip())
    if not match or match.groups() == ("", ""):
        raise RangeNotSatisfiable(
            f"unsupported Range {header[:60]!r}: use one 'bytes=start-end'",
            headers={"Content-Range": f"bytes */{size}"},
        )
    first, last = match.groups()
    if first == "":
        start, end = max(0, size - int(last)), size
    else:
        start = int(first)
        end = min(size, int(last) + 1) if last else size
    if start >= size or start >= end:
        raise RangeNotSatisfiable(
            f"Range {header[:60]!r} is outside the {size}-byte {what}", headers={"Content-Range": f"bytes */{size}"}
        )
    return start, end
