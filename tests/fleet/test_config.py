import hashlib
import sys
from pathlib import Path

import msgspec
import pytest

from fleet.config import CentralSettings, StationSettings, load_settings, settings_from_dict, token_sha256
from fleet.errors import ConfigError
from fleet.protocol import BoroughName

STATION = {
    "station_id": "camden",
    "borough": "Camden",
    "central_url": "http://127.0.0.1:8000/",
    "token": "t",
    "data_dir": "data",
    "dock_dir": "dock",
}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_station_config_resolves_relative_paths_against_the_file(tmp_path):
    path = write(tmp_path, "\n".join(f'{k} = "{v}"' for k, v in STATION.items()))
    settings = load_settings(path, StationSettings)
    assert settings.data_dir == str(tmp_path / "data")
    assert settings.dock_dir == str(tmp_path / "dock")
    assert settings.central_url == "http://127.0.0.1:8000"


def test_unknown_key_is_a_clear_error(tmp_path):
    path = write(tmp_path, "\n".join(f'{k} = "{v}"' for k, v in STATION.items()) + "\nchunk_byte = 5\n")
    with pytest.raises(ConfigError, match="unknown field `chunk_byte`"):
        load_settings(path, StationSettings)


@pytest.mark.parametrize(
    "text, message",
    [
        ("data_dir = ", "not valid TOML"),
        ('data_dir = "x"\nport = 70000', "port"),
        ('data_dir = "x"\nport = "eighty"', "Expected `int`"),
    ],
)
def test_bad_central_files(tmp_path, text, message):
    with pytest.raises(ConfigError, match=message):
        load_settings(write(tmp_path, text), CentralSettings)


def test_missing_file():
    with pytest.raises(ConfigError, match="not found"):
        load_settings("/nonexistent/x.toml", CentralSettings)


def test_secret_from_environment(monkeypatch):
    monkeypatch.setenv("CAMDEN_TOKEN", "from-env")
    raw = dict(STATION, token_env="CAMDEN_TOKEN")
    del raw["token"]
    assert settings_from_dict(raw, StationSettings).token == "from-env"


def test_secret_env_not_set_or_doubly_given(monkeypatch):
    monkeypatch.delenv("NOPE", raising=False)
    with pytest.raises(ConfigError, match=r"\$NOPE, which is not set"):
        settings_from_dict({**{k: v for k, v in STATION.items() if k != "token"}, "token_env": "NOPE"}, StationSettings)
    with pytest.raises(ConfigError, match="only one of token, token_env"):
        settings_from_dict(dict(STATION, token_env="X"), StationSettings)
    with pytest.raises(ConfigError, match=r"token .* is required"):
        settings_from_dict({k: v for k, v in STATION.items() if k != "token"}, StationSettings)


def test_central_may_hold_only_token_hashes():
    digest = hashlib.sha256(b"s3cret").hexdigest()
    settings = settings_from_dict(
        {
            "data_dir": "x",
            "admin_token_sha256": digest,
            "stations": {"camden": {"borough": "Camden", "token": "s3cret"}},
        },
        CentralSettings,
    )
    assert settings.admin_token is None
    assert token_sha256(settings, "admin_token") == digest
    assert token_sha256(settings.stations["camden"], "token") == digest


def test_station_ids_are_validated():
    with pytest.raises(ConfigError, match="stations"):
        settings_from_dict(
            {"data_dir": "x", "admin_token": "a", "stations": {"Bad Id!": {"borough": "B", "token": "t"}}},
            CentralSettings,
        )


def test_tls_files_are_checked_when_the_config_loads(tmp_path):
    from tests.support.pki import Pki

    pki = Pki.make(tmp_path / "pki")
    server, other = pki.server(), pki.server("other")
    central = {"data_dir": "d", "admin_token": "a"}

    def central_with(tls):
        return settings_from_dict({**central, "tls": tls}, CentralSettings, where="central.toml", base=tmp_path)

    loaded = central_with({"certificate": "pki/central.pem", "key": "pki/central.key"})  # relative to the file
    assert loaded.tls.certificate == server["certificate"]
    with pytest.raises(ConfigError, match=r"central.toml: \[tls\]: key .*missing.key: No such file"):
        central_with({**server, "key": str(tmp_path / "missing.key")})
    with pytest.raises(ConfigError, match=r"cannot be used together"):
        central_with({"certificate": server["certificate"], "key": other["key"]})
    with pytest.raises(ConfigError, match=r"client_ca .* holds no usable PEM certificate"):
        central_with({**server, "client_ca": server["key"]})

    station = {"station_id": "camden", "borough": "Camden", "central_url": "https://central", "token": "t"}
    station |= {"data_dir": "d", "dock_dir": "k"}

    def station_with(tls, url="https://central"):
        raw = {**station, "central_url": url, "tls": tls}
        return settings_from_dict(raw, StationSettings, where="station.toml", base=tmp_path)

    assert station_with({"ca_bundle": "pki/ca.pem"}).tls.ca_bundle == pki.ca_bundle
    with pytest.raises(ConfigError, match="give ca_bundle or pinned_certificate, not both"):
        station_with({"ca_bundle": pki.ca_bundle, "pinned_certificate": server["certificate"]})
    with pytest.raises(ConfigError, match="give certificate and key together"):
        station_with({"ca_bundle": pki.ca_bundle, "certificate": server["certificate"]})
    with pytest.raises(ConfigError, match=r"central_url http://central is not https://"):
        station_with({"ca_bundle": pki.ca_bundle}, url="http://central")


@pytest.mark.parametrize(
    "borough", ["Camden\n", "Cam\nden", " Camden", "Camden\u202e", "Cam\u2028den", "Cam\u2029den", "Camden\u200b"]
)
def test_a_borough_name_must_be_printable_wherever_a_config_gives_one(borough):
    """A newline in a borough's name (the last one slipped past ``$``) broke every alert digest
    to its destination; each place a config names a borough refuses it when central starts."""
    places = [
        {"stations": {"camden": {"borough": borough, "token": "t"}}},
        {"fleet": {"assignment_modes": {borough: "pool"}}},
        {"oidc": {"groups": {"g": {"role": "supervisor", "borough": borough}}}},
    ]
    for place in places:
        with pytest.raises(ConfigError, match=r"Expected a printable name .* at .*(borough|modes)") as refused:
            settings_from_dict({"data_dir": "x", "admin_token": "a", **place}, CentralSettings)
        assert "regex" not in str(refused.value)
    with pytest.raises(ConfigError, match="borough"):
        settings_from_dict({**STATION, "borough": borough}, StationSettings)
    assert settings_from_dict({**STATION, "borough": "Barking and Dagenham"}, StationSettings).borough


def test_no_character_a_line_breaks_at_nor_an_invisible_one_is_in_a_borough_name():
    """A mail header refuses a value ``str.splitlines`` splits (U+2028 and U+2029 as well as a line
    feed), so such a name broke every alert mail as a newline did; a zero-width character makes
    a second "Camden" that reads as the first."""
    invisible = {"\u200b", "\u2060", "\ufeff"}
    accepted = []
    for code in range(sys.maxunicode + 1):
        c = chr(code)
        if len(f"a{c}b".splitlines()) > 1 or c in invisible:
            try:
                msgspec.convert(f"Cam{c}den", BoroughName)
                accepted.append(c)
            except msgspec.ValidationError:
                pass
    assert accepted == []
