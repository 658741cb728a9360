"""``fleet central firmware …`` and ``fleet central profile …``, through the command line's main (in process)."""

from __future__ import annotations

import json
import os

import pytest

from central.core.services import open_services
from central.registry.devices import DeviceRegistration
from fleet.cli import main
from fleet.config import CentralSettings, load_settings
from fleet.firmware import public_key_hex
from tests.central.firmware.conftest import MODEL, sign
from tests.support.databases import BACKEND


@pytest.fixture
def config(tmp_path, vendor):
    url = BACKEND.url_for(tmp_path / "data")
    path = tmp_path / "central.toml"
    path.write_text(
        'data_dir = "data"\nadmin_token = "t"\n'
        + (f'[database]\nurl = "{url}"\n' if url else "")
        + f'[firmware]\nrelease_keys = ["{public_key_hex(vendor.public_key())}"]\n'
    )
    return str(path)


def fleet(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_firmware_add_list_withdraw(capsys, tmp_path, config, vendor):
    data = os.urandom(3000)
    (tmp_path / "fw.bin").write_bytes(data)
    (tmp_path / "fw.sig").write_text(sign(vendor, data, version="1.4.3") + "\n")
    base = ("central", "firmware")
    code, out, err = fleet(
        capsys,
        *base,
        "add",
        str(tmp_path / "fw.bin"),
        "--model",
        MODEL,
        "--version",
        "1.4.3",
        "--signature-file",
        str(tmp_path / "fw.sig"),
        "--config",
        config,
    )
    assert code == 0, err
    assert out.startswith(f"release 1: {MODEL} 1.4.3, 3000 bytes")
    code, _, err = fleet(
        capsys,
        *base,
        "add",
        str(tmp_path / "fw.bin"),
        "--model",
        MODEL,
        "--version",
        "1.4.4",
        "--signature",
        sign(vendor, data, version="1.4.3"),
        "--config",
        config,
    )
    assert code == 2 and err.startswith("fleet: error: the signature does not verify") and "Traceback" not in err
    code, out, _ = fleet(capsys, *base, "list", "--json", "--config", config)
    assert code == 0 and [(r["id"], r["version"]) for r in json.loads(out)] == [(1, "1.4.3")]
    assert fleet(capsys, *base, "withdraw", "1", "--reason", "recalled", "--config", config)[0] == 0
    code, _, err = fleet(capsys, *base, "withdraw", "1", "--reason", "recalled", "--config", config)
    assert code == 2 and "withdrawn already" in err
    code, out, _ = fleet(capsys, *base, "list", "--current", "--config", config)
    assert out.strip() == "0 release(s)"


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_profile_set_show_explain(capsys, config):
    with open_services(load_settings(config, CentralSettings)) as services:
        services.devices.register([DeviceRegistration(serial="BWV-1", model=MODEL, borough="Camden")], "t")
    base = ("central", "profile")
    assert fleet(capsys, *base, "set", "default", "--pre-record-s", "45", "--audio", "off", "--config", config)[0] == 0
    code, out, _ = fleet(capsys, *base, "set", "borough:Camden", "--mount", "head", "--config", config)
    assert code == 0 and out.strip() == "borough:Camden: mount = head"
    code, out, _ = fleet(capsys, *base, "set", "default", "--unset", "audio", "--config", config)
    assert out.strip() == "default: pre_record_s = 45"
    code, _, err = fleet(capsys, *base, "set", "default", "--pre-record-s", "500", "--config", config)
    assert code == 2 and "pre_record_s" in err and "<= 120" in err
    code, _, err = fleet(capsys, *base, "set", "role:sniper", "--mount", "head", "--config", config)
    assert code == 2 and "not an officer role" in err
    assert fleet(capsys, *base, "set", "default", "--config", config)[0] == 2  # nothing to change
    code, out, _ = fleet(capsys, *base, "show", "--json", "--config", config)
    assert [p["scope"] for p in json.loads(out)] == ["default", "borough:Camden"]
    code, out, _ = fleet(capsys, *base, "explain", "BWV-1", "--config", config)
    assert code == 0
    assert "  pre_record_s = 45 from: force default" in out and "  mount = head from: borough Camden" in out
    code, out, _ = fleet(capsys, *base, "explain", "BWV-1", "--json", "--config", config)
    assert json.loads(out)["settings"]["mount"] == "head"
    code, _, err = fleet(capsys, *base, "explain", "BWV-404", "--config", config)
    assert code == 2 and "no camera BWV-404" in err
    code, out, _ = fleet(capsys, *base, "history", "BWV-1", "--limit", "2", "--config", config)
    assert code == 0 and out.startswith("BWV-1: no settings confirmed by the camera yet"), out
    assert " pending: profile default set (by " in out and "from: borough Camden, force default, built-in" in out
    assert "(older: --cursor " in out
    code, out, _ = fleet(capsys, *base, "history", "BWV-1", "--json", "--config", config)
    page = json.loads(out)
    assert [v["cause"] for v in page["items"]][-1] == "registered" and page["items"][0]["status"] == "pending"
    code, _, err = fleet(capsys, *base, "history", "BWV-1", "--limit", "0", "--config", config)
    assert code == 2 and "limit is 1 to 200" in err
    code, _, err = fleet(capsys, *base, "history", "BWV-1", "--cursor", "%%%", "--config", config)
    assert code == 2 and "cursor" in err


# -- attack23: findings (failing tests; production code unchanged) ---------------------------------


@pytest.mark.sqlite_only  # PostgreSQL's out-of-range error already ends as `fleet: error:`
def test_finding4_withdraw_with_an_id_past_64_bits_is_a_clear_error(capsys, config):
    try:
        code, _, err = fleet(capsys, "central", "firmware", "withdraw", str(2**64), "--reason", "x", "--config", config)
    except Exception as exc:  # what main let escape is what the user's terminal shows as a traceback
        pytest.fail(f"a traceback: {type(exc).__name__}: {exc}")
    assert code == 2 and err.startswith("fleet: error:") and "Traceback" not in err


def test_firmware_sweep(capsys, config):
    code, out, err = fleet(capsys, "central", "firmware", "sweep", "--dry-run", "--config", config)
    assert code == 0, err
    assert out.startswith("would delete 0 artifact(s) no release names (0 bytes); kept 0 younger than 24 h")
    code, out, err = fleet(capsys, "central", "firmware", "sweep", "--grace-hours", "0", "--config", config)
    assert code == 2 and "--grace-hours: between 1 and 8760" in err
    code, out, err = fleet(capsys, "central", "firmware", "sweep", "--json", "--config", config)
    assert code == 0 and json.loads(out) == {"deleted": [], "deleted_bytes": 0, "young": 0, "named": 0}


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_deploy_create_list_show_pause_resume_abort_rollback(capsys, tmp_path, config, vendor):
    with open_services(load_settings(config, CentralSettings)) as services:
        services.devices.register([DeviceRegistration(serial=f"BWV-{n}", model=MODEL) for n in range(10)], "t")
    for version in ("1.4.2", "1.5.0"):
        data = os.urandom(1000)
        (tmp_path / "fw.bin").write_bytes(data)
        code, _, err = fleet(
            capsys, "central", "firmware", "add", str(tmp_path / "fw.bin"), "--model", MODEL, "--version", version,
            "--signature", sign(vendor, data, version=version), "--config", config,
        )  # fmt: skip
        assert code == 0, err
    base = ("central", "deploy")
    code, out, err = fleet(
        capsys, *base, "create", "--release", "2", "--phase", "20", "--phase", "100", "--max-failure-pct", "10",
        "--soak-hours", "24", "--reason", "new clock", "--json", "--config", config,
    )  # fmt: skip
    assert code == 0, err
    created = json.loads(out)
    assert created["id"] == 1 and [p["figures"]["cameras"] for p in created["phases"]] == [2, 8]
    assert created["phases"][0]["max_failure_pct"] == 10 and created["created_by"].startswith("cli:")
    assert [p["soak_hours"] for p in created["phases"]] == [24, 24]
    code, out, err = fleet(capsys, *base, "create", "--release", "2", "--reason", "again", "--config", config)
    assert code != 0 and "deployment 1 of model Axon Body 2 is running" in err and "Traceback" not in err
    code, out, _ = fleet(capsys, *base, "list", "--config", config)
    assert code == 0 and "Axon Body 2 1.5.0" in out and "running" in out and out.endswith("1 deployment(s)\n")
    code, out, _ = fleet(capsys, *base, "show", "1", "--config", config)
    assert code == 0 and "phase 1 (20 %, max 10 % failures, soak 24 h): open" in out
    for decision, state in (("pause", "paused"), ("resume", "running"), ("pause", "paused")):
        code, out, err = fleet(capsys, *base, decision, "1", "--reason", "checking", "--json", "--config", config)
        assert code == 0 and json.loads(out)["state"] == state, err
    code, _, err = fleet(capsys, *base, "rollback", "1", "--reason", "x", "--config", config)
    assert code != 0 and "updated no camera" in err
    code, out, err = fleet(capsys, *base, "abort", "1", "--reason", "wrong build", "--config", config)
    assert code == 0 and "aborted" in out and "cancelled" in out, err
    code, out, _ = fleet(capsys, *base, "list", "--state", "aborted", "--json", "--config", config)
    assert [d["id"] for d in json.loads(out)] == [1]
    for bad in (
        ("show", "x"),
        ("show", "99"),
        ("pause", "1", "--reason", " "),
        ("create", "--profiles", "--phase", "q"),
        ("create", "--profiles", "--soak-hours", "-1"),
    ):
        code, _, err = fleet(
            capsys, *base, *bad, *(("--reason", "r") if bad[0] == "create" else ()), "--config", config
        )
        assert code != 0 and err.startswith("fleet: error:") and "Traceback" not in err, err
