"""Officers: JSON and CSV import/export; errors name the line."""

import pytest

from tests.central.conftest import ADMIN, CAMDEN

CSV = "officer_id,borough,team,role,name\nPC1,Camden,Team A,response,\nPC2,Camden,Team B,neighbourhood,A. Smith\n"


def test_csv_round_trip(client):
    r = client.post("/api/v1/officers/import.csv", content=CSV.encode(), headers={**ADMIN, "Content-Type": "text/csv"})
    assert r.status_code == 200, r.text
    assert r.json() == {"created": 2, "updated": 0, "unchanged": 0}
    exported = client.get("/api/v1/officers/export.csv", headers=ADMIN)
    assert exported.headers["content-type"] == "text/csv; charset=utf-8"  # once: it was said twice
    lines = exported.text.splitlines()
    assert lines[0] == "officer_id,borough,team,role,name,active" and lines[2].startswith("PC2,Camden,Team B")
    again = client.post(
        "/api/v1/officers/import.csv", content=exported.content, headers={**ADMIN, "Content-Type": "text/csv"}
    )
    assert again.json() == {"created": 0, "updated": 0, "unchanged": 2}
    found = client.get("/api/v1/officers/", params={"q": "smith"}, headers=ADMIN).json()["items"]
    assert [o["officer_id"] for o in found] == ["PC2"]  # either case, as SQLite's LIKE matches


def test_a_bad_csv_imports_nothing_and_names_the_line(client):
    bad = CSV + "PC3,Camden,,sergeant,\n"
    r = client.post("/api/v1/officers/import.csv", content=bad.encode(), headers={**ADMIN, "Content-Type": "text/csv"})
    assert r.status_code == 400 and "line 4" in r.json()["message"] and "role" in r.json()["message"]
    assert client.get("/api/v1/officers/", headers=ADMIN).json()["items"] == []


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("borough", "Camden\u200b"),  # reads as Camden, is another borough
        ("borough", "Cam\u2028den"),  # a line separator: broke the digests' lines
        ("borough", " Camden"),
        ("borough", "\u202eNEDMAC"),  # shown reversed
        ("team", "Team A\nBcc: x@example.org"),
        ("name", "A. Smith\x00"),
    ],
)
def test_an_officer_with_an_unprintable_borough_team_or_name_is_refused_whole(client, field, value):
    officers = [{"officer_id": "PC1", "borough": "Camden"}, {"officer_id": "PC2", "borough": "Camden", field: value}]
    r = client.post("/api/v1/officers/", headers=ADMIN, json=officers)
    assert r.status_code == 400 and r.json()["message"].startswith(f"officer PC2: {field} ")
    assert client.get("/api/v1/officers/", headers=ADMIN).json()["items"] == []  # nothing imported
    row = {"officer_id": "PC2", "borough": "Camden", "team": "", "role": "other", "name": "", field: value}
    csv = (
        "officer_id,borough,team,role,name\n"
        + ",".join(f'"{row[k]}"' for k in ("officer_id", "borough", "team", "role", "name"))
        + "\n"
    )
    r = client.post("/api/v1/officers/import.csv", content=csv.encode(), headers={**ADMIN, "Content-Type": "text/csv"})
    assert r.status_code == 400, r.text  # by the check or by the CSV reader before it (a NUL, a line break)
    assert client.get("/api/v1/officers/", headers=ADMIN).json()["items"] == []


def test_officer_detail_and_scoping(client):
    client.post(
        "/api/v1/officers/",
        headers=ADMIN,
        json=[{"officer_id": "PC1", "borough": "Camden"}, {"officer_id": "PC2", "borough": "Barnet"}],
    )
    assert client.get("/api/v1/officers/PC1", headers=CAMDEN).json()["officer"]["borough"] == "Camden"
    assert client.get("/api/v1/officers/PC2", headers=CAMDEN).status_code == 403
    assert [o["officer_id"] for o in client.get("/api/v1/officers/", headers=CAMDEN).json()["items"]] == ["PC1"]
    assert client.post("/api/v1/officers/", headers=CAMDEN, json=[]).status_code == 403
    assert (
        client.post(
            "/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC1", "borough": "Camden"}] * 2
        ).status_code
        == 400
    )


@pytest.mark.slow  # a CLI in a subprocess: the whole suite, not test-fast
@pytest.mark.sqlite_only  # its config names no database: SQLite whatever the test's database, so once
def test_cli_import_and_export(tmp_path):
    import subprocess
    import sys

    config = tmp_path / "central.toml"
    config.write_text('data_dir = "data"\nadmin_token = "cli-test-token"\n')  # test value, not a secret
    (tmp_path / "officers.csv").write_text(CSV)

    def fleet(*args, stdin=None):
        return subprocess.run(
            [sys.executable, "-m", "fleet.cli", "central", "officers", *args, "--config", str(config)],
            capture_output=True,
            text=True,
            input=stdin,
            timeout=60,
        )

    done = fleet("import", str(tmp_path / "officers.csv"))
    assert done.returncode == 0 and "2 created" in done.stdout, done.stderr
    assert fleet("export", "--borough", "Camden").stdout.splitlines()[1].startswith("PC1,Camden,Team A,response")
    bad = fleet("import", "-", stdin="officer_id,borough,role\nPC3,Camden,boss\n")
    assert bad.returncode == 2 and "line 2: role" in bad.stderr and "Traceback" not in bad.stderr
    missing = fleet("import", str(tmp_path / "nope.csv"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr
