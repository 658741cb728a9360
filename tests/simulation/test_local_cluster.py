"""FleetProcess: the processes that `fleet demo` and `fleet simulate` start and stop."""

import os
from pathlib import Path

from simulation.local_cluster import FleetProcess, wait_until


def _nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[16])


def _autogroup_of(pid: int) -> tuple[str, int] | None:
    """None on a kernel without autogroup, or for a process outside any (the file is empty then:
    a process in a cgroup of its own, as CI's may be)."""
    try:
        name, _, nice = Path(f"/proc/{pid}/autogroup").read_text().partition(" nice ")
    except OSError:
        return None
    return (name, int(nice)) if nice.strip() else None


def _station(tmp_path, niceness: int) -> FleetProcess:
    """A station with no central to reach: it runs (offline) until stopped."""
    config = tmp_path / f"station-{niceness}.toml"
    (tmp_path / "dock").mkdir(exist_ok=True)
    config.write_text(
        'station_id = "camden"\nborough = "Camden"\ncentral_url = "http://127.0.0.1:9"\n'
        f'token = "test-token"\ndata_dir = "data-{niceness}"\ndock_dir = "dock"\napi_port = 0\n'
    )
    return FleetProcess(
        "station", ["station", "run", "--config", str(config)], tmp_path / "station.log", niceness=niceness
    )


def test_a_lower_priority_process_is_niced_with_its_own_autogroup(tmp_path):
    ours = os.getpriority(os.PRIO_PROCESS, 0)
    niced, plain = _station(tmp_path, 5), _station(tmp_path, 0)
    niced.start()
    plain.start()
    try:
        wait_until(lambda: niced.alive() and plain.alive(), 30, "both stations")
        assert _nice_of(niced.popen.pid) == ours + 5
        assert _nice_of(plain.popen.pid) == ours
        group, plain_group = _autogroup_of(niced.popen.pid), _autogroup_of(plain.popen.pid)
        if group is not None:
            assert plain_group is not None
            assert group[1] == 5 and plain_group[1] == 0
            assert group[0] != plain_group[0]
            assert _autogroup_of(os.getpid()) not in (group, plain_group)
    finally:
        niced.stop()
        plain.stop()
