"""Whether a folder's filesystem takes direct I/O (tests of the direct paths skip where it does not)."""

import os
from pathlib import Path

from fleet.directio import BLOCK, PartWriter


def direct_io_works(folder: Path) -> bool:
    (folder / "direct-probe").touch()
    probe = PartWriter(BLOCK).open_direct(folder / "direct-probe")
    if probe is not None:
        os.close(probe)
    return probe is not None
