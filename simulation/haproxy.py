"""HAProxy in front of several central replicas on this machine, for the demo, ``fleet simulate`` and the tests.

Debian's ``haproxy`` (``make services`` installs it), round-robin with no stickiness: any
replica may answer any request, as in a deployment (docs/deployment.md has the same
configuration for real hosts). A replica that stops answering ``/healthz`` is taken out
within a second; a request whose connection a dead replica refused is sent to another
(``retry-on conn-failure``: nothing of it reached the dead one, so resending is safe).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
from pathlib import Path

import httpx

from fleet.errors import FleetError
from simulation.local_cluster import free_port, wait_until

CONFIG = """\
global
    maxconn 4096
    log stdout format raw local0 warning

defaults
    mode http
    log global
    option httplog
    timeout connect 2s
    timeout client 120s
    timeout server 120s
    timeout http-request 30s
    timeout queue 30s
    timeout check 3s
    retries 3
    option redispatch
    retry-on conn-failure
    option forwardfor

frontend central
    bind 127.0.0.1:{port}
    default_backend replicas

backend replicas
    balance roundrobin
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 500ms fall 2 rise 1
{servers}
"""
"""Long polls hold a request up to 30 s and an upload's body may pause for a while:
the client and server timeouts leave room for both. A health check may take up to 3 s to
answer (without ``timeout check`` HAProxy gave it only ``inter``, 500 ms: on a loaded host
both replicas were taken out at once and every request answered 503 by the balancer); a
replica that is gone refuses the check's connection and is out within a second still."""


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or (path if Path(path := "/usr/sbin/haproxy").exists() else None)
    if not found:
        raise FleetError("HAProxy is not installed: run `make services` (installs Debian's haproxy package)")
    return found


class LocalHAProxy:
    """One HAProxy process balancing ``127.0.0.1:<port>`` over the replicas' ports."""

    def __init__(self, root: Path, backends: list[int], *, port: int | None = None) -> None:
        self.root = Path(root)
        self.backends = backends
        self.port = port or free_port()
        self.config = self.root / "haproxy.cfg"
        self.log = self.root / "haproxy.log"
        self._popen: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def write_config(self) -> Path:
        self.root.mkdir(parents=True, exist_ok=True)
        servers = "\n".join(f"    server replica{i} 127.0.0.1:{p} check" for i, p in enumerate(self.backends, 1))
        self.config.write_text(CONFIG.format(port=self.port, servers=servers))
        return self.config

    def start(self, timeout: float = 30.0) -> LocalHAProxy:
        """Start it and wait until it answers (a 503 while no replica is up yet is an answer)."""
        self.write_config()
        check = subprocess.run([haproxy_binary(), "-c", "-q", "-f", str(self.config)], capture_output=True, text=True)
        if check.returncode != 0:
            raise FleetError(f"haproxy refused its configuration: {check.stderr.strip() or check.stdout.strip()}")
        with open(self.log, "ab") as log:
            self._popen = subprocess.Popen(
                [haproxy_binary(), "-db", "-f", str(self.config)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        wait_until(self._answers, timeout, f"haproxy on port {self.port}", check=self._check)
        return self

    def _answers(self) -> bool:
        try:
            httpx.get(f"{self.url}/healthz", timeout=2.0)
        except httpx.TransportError:
            return False
        return True

    def _check(self) -> None:
        if self._popen is not None and self._popen.poll() is not None:
            raise FleetError(f"haproxy exited (status {self._popen.returncode}); see {self.log}")

    def alive(self) -> bool:
        return self._popen is not None and self._popen.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self._popen is not None and self._popen.poll() is None:
            self._popen.send_signal(sig)
            try:
                self._popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._popen.kill()
                self._popen.wait()

    def restart(self) -> None:
        """Stopped and started again on the same port (the fault suite's balancer restart)."""
        self.stop()
        self.start()

    def __enter__(self) -> LocalHAProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
