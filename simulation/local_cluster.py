"""Running the system on this machine: real ``fleet`` processes, their ports, configs and health.

The demo and ``fleet simulate`` start central and stations exactly as an operator would
(``fleet … --config FILE``), each in its own process group with its own log file, talk to
them only through their public interfaces (config files, HTTP, the dock inbox) and stop
them with SIGTERM, then SIGKILL for one that does not stop.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from signal import SIGTERM
from typing import Any

import httpx

from fleet.errors import FleetError


def stop_on_sigterm() -> None:
    """SIGTERM (``kill``, a CI timeout) stops a run as Ctrl-C does, so its ``finally`` stops the
    processes it started; Python's default would exit at once and leave them running."""

    def interrupt(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


CLEAN_EXITS = (0, -signal.SIGTERM)
"""uvicorn and the station exit with -15 after a clean SIGTERM shutdown: that is normal."""


def free_port(preferred: int = 0) -> int:
    """``preferred`` if it is free on 127.0.0.1, else any free port."""
    for port in dict.fromkeys((preferred, 0)):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds: TIME_WAIT is no obstacle
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise FleetError("no free port on 127.0.0.1")


def wait_until(
    predicate: Callable[[], Any],
    timeout: float,
    message: str,
    *,
    interval: float = 0.1,
    check: Callable[[], None] | None = None,
) -> Any:
    """Poll ``predicate`` until it returns something truthy; FleetError naming ``message`` at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if check:
            check()
        if time.monotonic() > deadline:
            raise FleetError(f"timed out after {timeout:.0f}s waiting for {message}")
        time.sleep(interval)


def healthy(url: str, verify: ssl.SSLContext | bool = True) -> bool:
    """Central answers ``/healthz`` with 200."""
    try:
        return httpx.get(f"{url}/healthz", timeout=2.0, verify=verify).status_code == 200
    except httpx.TransportError:
        return False


def lower_priority(pid: int, niceness: int) -> None:
    """``niceness`` for a process that leads its own session, and for that session's autogroup.

    Linux (with autogroup, its default) shares CPU between sessions first, so the nice value of
    a process alone in its session (``start_new_session``) changes nothing by itself. Set from
    the parent: a ``preexec_fn`` may deadlock a parent that runs threads."""
    os.setpriority(os.PRIO_PROCESS, pid, os.getpriority(os.PRIO_PROCESS, pid) + niceness)
    try:
        with open(f"/proc/{pid}/autogroup", "w") as f:
            f.write(str(niceness))
    except OSError:
        pass  # no autogroup on this kernel: the nice value is enough


@dataclass
class FleetProcess:
    """One ``fleet …`` command in its own process group, its output appended to ``log``."""

    name: str
    args: list[str]
    log: Path
    popen: subprocess.Popen | None = None
    niceness: int = 0
    """Added to the process's nice value: a lower CPU priority than the processes left at 0."""

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.popen = subprocess.Popen(
                [sys.executable, "-m", "fleet.cli", *self.args],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        if self.niceness:
            lower_priority(self.popen.pid, self.niceness)

    def _running(self) -> subprocess.Popen | None:
        """The process while it runs: None before ``start()`` and once it has exited."""
        if self.popen is not None and self.popen.poll() is None:
            return self.popen
        return None

    def alive(self) -> bool:
        return self._running() is not None

    @property
    def returncode(self) -> int | None:
        """How it exited (negative: the signal that ended it); None while it runs or before it starts."""
        return self.popen.returncode if self.popen is not None else None

    def signal(self, sig: int = SIGTERM) -> None:
        if (popen := self._running()) is not None:
            os.killpg(popen.pid, sig)

    def stop(self, sig: int = SIGTERM, timeout: float = 20.0) -> bool:
        """Send ``sig`` and wait; SIGKILL after ``timeout``. True when it stopped by itself."""
        popen = self._running()
        if popen is None:
            return True
        self.signal(sig)
        try:
            popen.wait(timeout=timeout)
            return True
        except subprocess.TimeoutExpired:
            os.killpg(popen.pid, signal.SIGKILL)
            popen.wait()
            return False

    def check(self) -> None:
        """FleetError if the process has exited other than cleanly."""
        if self.popen is not None and self.popen.poll() is not None and self.popen.returncode not in CLEAN_EXITS:
            raise FleetError(f"{self.name} exited unexpectedly (status {self.popen.returncode}); see {self.log}")

    def cpu_seconds(self) -> float:
        """CPU time (user + system) the process has used so far; 0 before it starts and once it is gone."""
        if self.popen is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.popen.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_central(
    config: Path,
    log: Path,
    url: str,
    timeout: float = 30.0,
    *,
    port: int | None = None,
    name: str = "central",
    verify: ssl.SSLContext | bool = True,
) -> FleetProcess:
    """``fleet central serve`` until ``/healthz`` answers (``port``: a replica's, not the config's)."""
    args = ["central", "serve", "--config", str(config)] + (["--port", str(port)] if port is not None else [])
    central = FleetProcess(name, args, log)
    central.start()

    def exited() -> None:
        if not central.alive():
            raise FleetError(f"{name} exited at start-up (status {central.returncode}); see {log}")

    try:
        wait_until(lambda: healthy(url, verify), timeout, f"{name} on {url}", check=exited)
    except BaseException:
        central.stop()  # never left running behind a failed start
        raise
    return central


def all_clips(client: httpx.Client, **filters: Any) -> list[dict]:
    """Every clip central lists (``GET /api/v1/clips``, 1,000 a page, following the cursor)."""
    items, cursor = [], None
    while True:
        params = {"limit": 1000, **filters} | ({"cursor": cursor} if cursor else {})
        page = client.get("/api/v1/clips", params=params).raise_for_status().json()
        items += page["items"]
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_toml(path: Path, values: Mapping[str, Any], comment: str = "") -> Path:
    """Write a config file: plain keys first, then each nested mapping as a ``[table]``."""
    lines = [f"# {comment}"] if comment else []

    def emit(table: Mapping[str, Any], name: str) -> None:
        plain = {k: v for k, v in table.items() if not isinstance(v, Mapping)}
        if name and (plain or not table):
            lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {toml_value(v)}" for k, v in plain.items())
        for key, sub in table.items():
            if isinstance(sub, Mapping):
                emit(sub, f"{name}.{key}" if name else key)

    emit(values, "")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path
