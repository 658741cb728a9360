"""A throwaway PostgreSQL server on loopback, for the tests, the demo, ``fleet simulate`` and the benchmarks.

It runs Debian's ``postgresql`` binaries (``make`` installs the package when it is missing)
on a free port, with its data in a folder of its own. PostgreSQL refuses to run as root,
and CI runs as root: then ``initdb`` and the server run as the ``postgres`` user the Debian
package creates, and the data folder is given to that user; when ``root`` lies where that user
cannot reach (under a 0700 folder of root's, as pytest's are), the data lives in
``/var/tmp/fleet-postgres/`` and ``root/pgdata`` links to it. Connections from loopback are
trusted (the server listens on 127.0.0.1 only and lives as long as its caller): these are
test values, never a deployment (docs/deployment.md says how central's database is run).
"""

from __future__ import annotations

import glob
import hashlib
import os
import pwd
import shutil
import subprocess
from pathlib import Path

from fleet.errors import FleetError
from simulation.local_cluster import free_port, wait_until

USER = "fleet"
"""The superuser the throwaway cluster is made with (trusted on loopback: a test value)."""


def binaries() -> Path:
    """The newest installed PostgreSQL's ``bin`` folder (Debian keeps them out of ``PATH``)."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"), key=lambda p: int(Path(p).parts[4]))
    if not found:
        raise FleetError("PostgreSQL is not installed: run `make postgres` (installs Debian's postgresql package)")
    return Path(found[-1]).parent


class LocalPostgres:
    """One PostgreSQL server: ``start`` makes the cluster when its folder is empty, ``stop`` ends it.

    ``durable=False`` turns off fsync: the tests' server, which loses what was committed only
    to a power cut. Commits stay synchronous (each one's WAL handed to the OS before it is
    acknowledged, no fsync): with them off a crash of PostgreSQL itself (``stop("immediate")``)
    took back the last acknowledged commits, and central with them acknowledgements it had
    given. The benchmarks keep fsync on. ``settings``: more of ``postgresql.conf`` (the
    benchmarks size the server as docs/deployment.md recommends)."""

    def __init__(
        self, root: Path, *, port: int | None = None, durable: bool = True, settings: dict[str, str] | None = None
    ) -> None:
        self.root = Path(root)
        self.data = self.root / "pgdata"
        self.port = port or free_port()
        self.durable = durable
        self.settings = settings or {}
        self.bin = binaries()
        self._as_postgres = os.geteuid() == 0

    @property
    def log(self) -> Path:
        """The server's log (in its data folder: the one place its user can always write)."""
        return self.data.resolve() / "server.log"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{USER}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str | Path, check: bool = True) -> subprocess.CompletedProcess[str]:
        command = [str(a) for a in args]
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        if check and done.returncode != 0:
            raise FleetError(f"{Path(command[0 if not self._as_postgres else 4]).name} failed: {done.stderr.strip()}")
        return done

    def _own(self, path: Path) -> None:
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(path, user.pw_uid, user.pw_gid)

    def _reachable(self, path: Path) -> bool:
        """Whether the server's user can enter ``path`` (root's own folders are often 0700)."""
        return not self._as_postgres or self._run("test", "-x", path, check=False).returncode == 0

    def start(self) -> LocalPostgres:
        self.root.mkdir(parents=True, exist_ok=True)
        self._own(self.root)
        if not self.data.exists() and not self._reachable(self.root):
            elsewhere = (
                Path("/var/tmp/fleet-postgres") / hashlib.sha256(str(self.root.resolve()).encode()).hexdigest()[:16]
            )
            elsewhere.mkdir(parents=True, exist_ok=True)
            self._own(elsewhere)
            self.data.symlink_to(elsewhere, target_is_directory=True)
        if not (self.data / "PG_VERSION").exists():
            self._run(
                self.bin / "initdb",
                "-D",
                self.data.resolve(),
                "-U",
                USER,
                "--auth=trust",
                "--encoding=UTF8",
                "--locale=C.UTF-8",
            )
            settings = {
                "listen_addresses": "'127.0.0.1'",
                "unix_socket_directories": f"'{self.data.resolve()}'",
                "max_connections": "200",
                "shared_buffers": "'256MB'",
                "fsync": "on" if self.durable else "off",
                "synchronous_commit": "on",
                "full_page_writes": "on" if self.durable else "off",
                "max_wal_size": "'2GB'",
                "log_min_messages": "warning",
                **self.settings,
            }
            with open(self.data / "postgresql.conf", "a", encoding="utf-8") as conf:
                conf.writelines(f"{key} = {value}\n" for key, value in settings.items())
        self._run(
            self.bin / "pg_ctl", "-D", self.data.resolve(), "-l", self.log, "-o", f"-p {self.port}", "-w", "start"
        )
        wait_until(self.ready, 30, f"PostgreSQL on port {self.port}")
        return self

    def ready(self) -> bool:
        return self._run(self.bin / "pg_isready", "-h", "127.0.0.1", "-p", str(self.port), check=False).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """``fast``: roll back and stop; ``immediate``: as if the machine died (recovery at the next start)."""
        if (self.data / "postmaster.pid").exists():
            self._run(self.bin / "pg_ctl", "-D", self.data.resolve(), "-m", mode, "-w", "stop", check=False)

    def remove(self) -> None:
        self.stop("immediate")
        if self.data.is_symlink():
            shutil.rmtree(self.data.resolve(), ignore_errors=True)
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> LocalPostgres:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.remove()
