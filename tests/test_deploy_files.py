"""deploy/'s systemd units and compose file: they parse, are hardened, run real commands of our CLI,
and hand central and the stations every secret their config files name; JSON logs are JSON."""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fleet.cli import build_parser
from fleet.config import CentralSettings, StationSettings, load_settings

ROOT = Path(__file__).parents[1]
SYSTEMD = ROOT / "deploy" / "systemd"
COMPOSE = ROOT / "deploy" / "compose"
UNITS: dict[str, tuple[str, type[CentralSettings] | type[StationSettings]]] = {
    "fleet-central@.service": ("8001", CentralSettings),
    "fleet-station@.service": ("camden", StationSettings),
}


def unit(name: str) -> dict[str, dict[str, list[str]]]:
    """A unit file's sections, each key's values in order (systemd lets a key repeat)."""
    sections: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in (SYSTEMD / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), {})
            continue
        key, sep, value = line.partition("=")
        assert sep and current is not None, f"{name}: {line!r} is no key=value"
        current.setdefault(key.strip(), []).append(value.strip())
    return sections


def credentials_for(folder: Path, names: list[str]) -> None:
    for name in names:
        value = "postgresql://fleet:pw@db.internal/fleet" if name == "database-url" else "7e57" * 16
        (folder / name).write_text(value + "\n")


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_is_hardened(name):
    service = unit(name)["Service"]
    expected = {
        "User": ["fleet"],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "ProtectHome": ["yes"],
        "PrivateTmp": ["yes"],
        "PrivateDevices": ["yes"],
        "CapabilityBoundingSet": [""],
        "RestrictSUIDSGID": ["yes"],
        "UMask": ["0077"],
    }
    for key, value in expected.items():
        assert service.get(key) == value, (name, key)
    writable = " ".join(service["ReadWritePaths"]).split()
    assert writable and all(path.startswith(("/var/lib/fleet/", "/srv/dock/")) for path in writable), writable


@pytest.mark.parametrize("name", UNITS)
def test_each_unit_runs_a_real_command_with_a_config_that_loads_with_the_credentials_it_loads(
    name, tmp_path, monkeypatch
):
    instance, kind = UNITS[name]
    service = unit(name)["Service"]
    argv = shlex.split(service["ExecStart"][0].replace("%i", instance))
    assert argv[0] == "/opt/fleet/bin/fleet"
    args = build_parser().parse_args(argv[1:])  # exits (fails the test) on an unknown command or option
    assert args.log_format == "json"
    credentials = [entry.partition(":")[0] for entry in service["LoadCredential"]]
    credentials_for(tmp_path, credentials)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    # every credential the file names is one the unit loads
    settings: CentralSettings | StationSettings = (
        load_settings(SYSTEMD / "central.toml", CentralSettings)
        if kind is CentralSettings
        else load_settings(SYSTEMD / "station.toml", StationSettings)
    )
    assert settings.log_format == "json"
    assert settings.data_dir in " ".join(service["ReadWritePaths"]).replace("%i", instance)


@pytest.mark.slow  # ~1 s a unit: the whole suite runs it, the quick lane stays under 2 minutes
@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not on this machine")
@pytest.mark.parametrize("name", UNITS)
def test_systemd_analyze_verifies_each_unit(name, tmp_path):
    """systemd's own reading of the unit (its binary pointed at this checkout's ``fleet``)."""
    instance, _ = UNITS[name]
    fleet = Path(sys.executable).with_name("fleet")
    text = (SYSTEMD / name).read_text().replace("/opt/fleet/bin/fleet", str(fleet))
    copy = tmp_path / name.replace("@.", f"@{instance}.")
    copy.write_text(text)
    verified = subprocess.run(["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60)
    complaints = [line for line in verified.stderr.splitlines() if copy.name.split("@")[0] in line]
    assert verified.returncode == 0 and not complaints, verified.stderr


def compose() -> dict:
    return yaml.safe_load((COMPOSE / "compose.yaml").read_text())


def test_the_compose_file_runs_central_replicas_behind_haproxy_with_postgresql_and_minio(tmp_path, monkeypatch):
    document = compose()
    services = document["services"]
    assert {"postgres", "minio", "haproxy", "central-1", "central-2"} <= set(services)
    for name, service in services.items():
        for needed in service.get("depends_on", {}):
            assert needed in services, (name, needed)
        for secret in service.get("secrets", []):
            assert secret in document["secrets"], (name, secret)
    replicas = {name: s for name, s in services.items() if name.startswith("central-")}
    haproxy = (COMPOSE / "haproxy.cfg").read_text()
    for name, service in replicas.items():
        args = build_parser().parse_args(service["command"][1:])
        assert service["command"][0] == "fleet" and args.config == "/etc/fleet/central.toml"
        assert f"server {name} {name}:{args.port} check" in haproxy
        assert service["read_only"] and service["user"] != "0" and "no-new-privileges:true" in service["security_opt"]
        assert service["environment"]["CREDENTIALS_DIRECTORY"] == "/run/secrets"  # where compose mounts secrets
        credentials_for(tmp_path, service["secrets"])
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    settings = load_settings(COMPOSE / "central.toml", CentralSettings)
    assert settings.database.url is not None and settings.blobs.backend == "s3"
    assert settings.blobs.endpoint_url == "http://minio:9000" and settings.log_format == "json"


@pytest.mark.skipif(shutil.which("haproxy") is None, reason="haproxy is not on this machine")
def test_haproxy_accepts_the_compose_files_configuration():
    checked = subprocess.run(["haproxy", "-c", "-f", str(COMPOSE / "haproxy.cfg")], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr


def test_json_logs_are_one_json_object_a_line():
    program = (
        "import logging\n"
        "from fleet.logs import configure_logging\n"
        "configure_logging('info', 'json')\n"
        "log = logging.getLogger('central.uploads')\n"
        "log.info('clip %s verified', 'c-1', extra={'station': 'camden', 'bytes': 12})\n"
        "log.warning('a line\\nwith a break and \"quotes\"')\n"
        "try:\n    1 / 0\nexcept ZeroDivisionError:\n    log.exception('failed')\n"
        "logging.getLogger('uvicorn.error').info('a library line', extra={'odd': object()})\n"
    )
    run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, cwd=ROOT, timeout=60)
    lines = run.stderr.splitlines()
    entries = [json.loads(line) for line in lines]
    assert len(entries) == 4 and run.returncode == 0
    for entry in entries:
        assert {"time", "level", "logger", "message"} <= set(entry) and entry["time"].endswith("Z")
    assert entries[0]["message"] == "clip c-1 verified" and entries[0]["fields"] == {"station": "camden", "bytes": 12}
    assert entries[1]["message"] == 'a line\nwith a break and "quotes"' and entries[1]["level"] == "warning"
    assert "ZeroDivisionError" in entries[2]["exception"]
    assert entries[3]["logger"] == "uvicorn.error" and entries[3]["fields"]["odd"].startswith("<object")


def test_a_log_format_that_is_neither_is_a_config_error(tmp_path):
    from fleet.config import settings_from_dict
    from fleet.errors import ConfigError

    with pytest.raises(ConfigError, match="log_format"):
        settings_from_dict({"data_dir": str(tmp_path), "admin_token": "t", "log_format": "xml"}, CentralSettings)
