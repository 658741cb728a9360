"""``fleet central model …`` through the command line's main (in process)."""

from __future__ import annotations

import json

import pytest

from central.core.services import open_services
from central.registry.devices import DeviceRegistration
from fleet.cli import main
from fleet.config import CentralSettings, load_settings
from tests.support.databases import BACKEND


@pytest.fixture
def config(tmp_path):
    url = BACKEND.url_for(tmp_path / "data")
    path = tmp_path / "central.toml"
    path.write_text(
        'data_dir = "data"\nadmin_token = "t"\n'
        + (f'[database]\nurl = "{url}"\n' if url else "")
        + '[stations.camden]\nborough = "Camden"\ntoken = "camden-test-token"\n'
        + '[fleet]\nassignment_modes = { Camden = "pool" }\n'
    )
    with open_services(load_settings(str(path), CentralSettings)) as services:
        services.devices.register(
            [
                DeviceRegistration(serial="OLD-1", model="Old", borough="Camden", home_station="camden"),
                DeviceRegistration(serial="OLD-2", model="Old"),
                DeviceRegistration(serial="NEW-1", model="New"),
            ],
            "test",
        )
    return str(path)


def fleet(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_model_withdraw_status_replace_list(capsys, config):
    code, out, err = fleet(capsys, "central", "model", "withdraw", "Old", "--reason", "unfit", "--config", config)
    assert code == 0, err
    assert out.splitlines()[:2] == ["model Old withdrawn", "proposal 1: 1 replacement(s) to review and commit"]
    code, out, err = fleet(capsys, "central", "model", "status", "Old", "--cameras", "--json", "--config", config)
    assert code == 0, err
    answer = json.loads(out)
    assert answer["status"]["total"]["proposed"] == 1 and answer["status"]["total"]["in_stores"] == 1
    assert {c["serial"]: c["replacement"] for c in answer["cameras"]} == {"OLD-1": "NEW-1", "OLD-2": None}
    code, out, err = fleet(capsys, "central", "model", "status", "Old", "--config", config)
    assert code == 0 and "2 to return" in out and out.splitlines()[-1].startswith("all")
    code, out, err = fleet(capsys, "central", "model", "replace", "Old", "--config", config)
    assert code == 2 and "nothing to replace" in err and "Traceback" not in err
    code, out, err = fleet(capsys, "central", "model", "list", "--json", "--config", config)
    assert {m["model"]: bool(m["withdrawal"]) for m in json.loads(out)} == {"New": False, "Old": True}
    code, out, err = fleet(capsys, "central", "model", "withdraw", "Nope", "--reason", "x", "--config", config)
    assert code == 2 and "no camera of model 'Nope'" in err
