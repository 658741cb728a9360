"""Disclosure: a case's clips exported as a signed package a receiver checks offline, and share links."""

import contextlib
import io
import os
import re
import shutil
import struct
import zipfile
import zlib
from dataclasses import dataclass
from datetime import timedelta

import msgspec
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from central.core.providers import services
from central.evidence.signing import GENERATED_KEY
from central.uploads.blobstore import FilesystemBlobStore
from fleet import bundle
from fleet.cli import main as fleet_main
from fleet.clock import to_iso, utc_now
from fleet.errors import FleetError
from fleet.keyfile import write_key_file
from tests.central.apps import central_client
from tests.central.conftest import ADMIN, make_settings
from tests.central.evidence.test_clips import upload
from tests.e2e.harness import wait_until

FOR = {"prepared_for": "CPS London South, J. Smith", "reason": "pre-charge advice"}


@pytest.fixture
def settings(tmp_path):
    """Central with a configured signing key (a TEST key made here), as every replica would have."""
    key = tmp_path / "signing.key"
    write_key_file(key, Ed25519PrivateKey.generate().private_bytes_raw())
    return make_settings(tmp_path / "central", disclosure={"signing_key": {"file": str(key)}})


@dataclass
class Case:
    uploaded: dict[str, bytes]
    """Clip id → the camera's bytes."""
    reported: str
    """A clip whose upload has begun but not finished."""


@pytest.fixture
def case(client):
    """Case OP-7: two clips at central and one its station has not uploaded yet."""
    clips = {upload(client, data): data for data in (os.urandom(3000), os.urandom(5000))}
    reported = upload(client, os.urandom(1000), finish=False)  # its upload begun, not finished
    hold = client.post("/api/v1/holds", headers=ADMIN, json={"kind": "case", "case_ref": "OP-7", "reason": "op 7"})
    assert hold.status_code == 201, hold.text
    added = client.post(
        "/api/v1/cases/OP-7/clips", headers=ADMIN, json={"clip_ids": [*clips, reported], "reason": "op 7"}
    )
    assert added.status_code == 200, added.text
    return Case(uploaded=clips, reported=reported)


def export(client, tmp_path, case_ref="OP-7"):
    response = client.post(f"/api/v1/cases/{case_ref}/disclosure", headers=ADMIN, json=FOR)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    path = tmp_path / f"{case_ref}.zip"
    path.write_bytes(response.content)
    return path


def central_keys(client) -> list[str]:
    published = client.get("/api/v1/disclosure/keys")  # public: no token
    assert published.status_code == 200, published.text
    return [k["public_key"] for k in published.json()]


def test_a_case_exported_is_every_clip_its_custody_and_a_signed_index_that_checks_offline(client, case, tmp_path):
    path = export(client, tmp_path)
    verdict = bundle.verify(path, central_keys(client))
    assert verdict.ok and verdict.trusted, verdict.problems
    with zipfile.ZipFile(path) as archive:
        index = msgspec.json.decode(archive.read("index.json"), type=bundle.BundleIndex)
        assert {c.clip_id for c in index.clips} == set(case.uploaded)
        for clip_id, data in case.uploaded.items():
            assert archive.read(f"clips/{clip_id}.mp4") == data
            custody = archive.read(f"custody/{clip_id}.csv").decode()
            assert "upload-verified" in custody.splitlines()[1]
            assert "disclose" in custody.splitlines()[-1] and "CPS London South" in custody.splitlines()[-1]
        assert [(a.clip_id, a.reason) for a in index.absent] == [(case.reported, "not uploaded to central yet")]
        assert index.prepared_by == "admin" and index.prepared_for == FOR["prepared_for"]
    # The export is in each clip's chain of custody at central too.
    clip_id = next(iter(case.uploaded))
    records = client.get(f"/api/v1/clips/{clip_id}/custody", headers=ADMIN).json()
    assert records[-1]["action"] == "disclose" and "pre-charge advice" in records[-1]["detail"]
    # And the command a receiver runs says so, in one word and an exit status.
    assert fleet_main(["verify-bundle", str(path), "--public-key", central_keys(client)[0]]) == 0


def unpacked(path, tmp_path):
    folder = tmp_path / "unpacked"
    with zipfile.ZipFile(path) as archive:
        archive.extractall(folder)
    return folder


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        ("clip", "has changed"),
        ("index", "signature in index.sig does not match"),
        ("added", "not in index.json: nothing vouches for it"),
        ("removed", "listed in index.json but missing"),
        ("custody", "has changed"),
    ],
)
def test_a_tampered_package_fails_the_check_naming_what_changed(client, case, tmp_path, capsys, tamper, found):
    folder = unpacked(export(client, tmp_path), tmp_path)
    clip_file = folder / "clips" / f"{next(iter(case.uploaded))}.mp4"
    if tamper == "clip":
        data = bytearray(clip_file.read_bytes())
        data[100] ^= 1
        clip_file.write_bytes(bytes(data))
    elif tamper == "index":
        text = (folder / "index.json").read_text().replace("CPS London South", "CPS London North")
        (folder / "index.json").write_text(text)
    elif tamper == "added":
        (folder / "clips" / "extra.mp4").write_bytes(b"planted")
    elif tamper == "removed":
        clip_file.unlink()
    else:
        custody = next((folder / "custody").iterdir())
        custody.write_text(custody.read_text().replace("disclose", "nothing"))
    assert bundle.verify(folder, central_keys(client)).ok is False
    assert fleet_main(["verify-bundle", str(folder)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("NOT INTACT") and found in out


def repacked(genuine, target, extra_for=None):
    """The package's entries written again by Python (sizes in the headers, no data descriptors)."""
    with zipfile.ZipFile(genuine) as src, zipfile.ZipFile(target, "w") as dst:
        for info in src.infolist():
            new = zipfile.ZipInfo(info.filename, info.date_time)
            if extra_for is not None:
                new.extra = extra_for(info.filename)
            dst.writestr(new, src.read(info))
    return target


def test_a_package_zipped_again_plainly_still_checks(client, case, tmp_path):
    assert bundle.verify(repacked(export(client, tmp_path), tmp_path / "again.zip"), central_keys(client)).ok


def test_a_zip_field_that_renames_an_entry_for_other_tools_fails(client, case, tmp_path):
    """Info-ZIP's Unicode path field (0x7075): `unzip` would write clip b's bytes under clip a's name,
    while Python reads the plain name (found by the attack review)."""
    a, b = sorted(case.uploaded)
    swap = {f"clips/{a}.mp4": f"clips/{b}.mp4", f"clips/{b}.mp4": f"clips/{a}.mp4"}

    def unicode_path(name):
        if name not in swap:
            return b""
        body = b"\x01" + struct.pack("<I", zlib.crc32(name.encode())) + swap[name].encode()
        return struct.pack("<HH", 0x7075, len(body)) + body

    forged = repacked(export(client, tmp_path), tmp_path / "swapped.zip", unicode_path)
    verdict = bundle.verify(forged, central_keys(client))
    assert not verdict.ok and any(f"extra fields [{0x7075}]" in p for p in verdict.problems)


@pytest.mark.parametrize("where", ["before", "after"])
def test_bytes_no_entry_accounts_for_fail(client, case, tmp_path, where):
    """A zip glued before the package (a streaming unzip reads its entries first), or bytes after it."""
    genuine = export(client, tmp_path).read_bytes()
    planted = io.BytesIO()
    with zipfile.ZipFile(planted, "w") as other:
        other.writestr(f"clips/{next(iter(case.uploaded))}.mp4", b"other footage")
    path = tmp_path / "glued.zip"
    path.write_bytes(planted.getvalue() + genuine if where == "before" else genuine + b"trailing")
    verdict = bundle.verify(path, central_keys(client))
    assert not verdict.ok and not verdict.intact


def test_a_forgery_with_its_own_readme_and_key_is_not_a_pass(client, case, tmp_path, capsys):
    """The package names a key; only a key from the force vouches (attack review)."""
    folder = unpacked(export(client, tmp_path), tmp_path)
    forger = Ed25519PrivateKey.generate()
    index = msgspec.json.decode((folder / "index.json").read_bytes(), type=bundle.BundleIndex)
    index.public_key = forger.public_key().public_bytes_raw().hex()
    (folder / "index.json").write_bytes(bundle.encode_index(index))
    (folder / "index.sig").write_text(forger.sign((folder / "index.json").read_bytes()).hex())
    readme = (folder / "README.txt").read_text()
    assert central_keys(client)[0] not in readme  # the package never offers a key to trust
    assert fleet_main(["verify-bundle", str(folder), "--public-key", central_keys(client)[0]]) == 1
    assert fleet_main(["verify-bundle", str(folder), "--public-key", index.public_key]) == 0  # the forger's own key
    capsys.readouterr()
    assert fleet_main(["verify-bundle", str(folder)]) == bundle.EXIT_UNTRUSTED
    assert "NOT CHECKED" in capsys.readouterr().out


def test_a_package_re_signed_by_another_key_is_told_apart_from_centrals(client, case, tmp_path, capsys):
    folder = unpacked(export(client, tmp_path), tmp_path)
    forger = Ed25519PrivateKey.generate()
    index = msgspec.json.decode((folder / "index.json").read_bytes(), type=bundle.BundleIndex)
    index.prepared_for = "someone else"
    index.public_key = forger.public_key().public_bytes_raw().hex()
    (folder / "index.json").write_bytes(bundle.encode_index(index))
    (folder / "index.sig").write_text(forger.sign((folder / "index.json").read_bytes()).hex())
    # Consistent in itself, so without central's key the check can only say whose key signed...
    assert fleet_main(["verify-bundle", str(folder)]) == bundle.EXIT_UNTRUSTED
    assert "NOT CHECKED: signed by key" in capsys.readouterr().out
    # ...and against central's published key it fails.
    verdict = bundle.verify(folder, central_keys(client))
    assert verdict.intact and not verdict.ok and "not a key you gave" in verdict.problems[0]


def test_a_zip_holding_one_name_twice_fails(client, case, tmp_path):
    path = export(client, tmp_path)
    with zipfile.ZipFile(path, "a") as archive, pytest.warns(UserWarning, match="Duplicate name"):
        archive.writestr(f"clips/{next(iter(case.uploaded))}.mp4", b"another clip")
    verdict = bundle.verify(path, central_keys(client))
    assert not verdict.ok and any("appears twice" in p for p in verdict.problems)


def test_not_a_package_is_one_clear_line(tmp_path, capsys):
    (tmp_path / "x.zip").write_bytes(b"not a zip")
    assert fleet_main(["verify-bundle", str(tmp_path / "x.zip")]) == 2
    assert "not a disclosure package" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert fleet_main(["verify-bundle", str(tmp_path / "empty")]) == 1
    assert fleet_main(["verify-bundle", str(tmp_path / "empty"), "--public-key", "zz"]) == 2


def test_export_is_refused_for_an_unknown_case_a_scoped_supervisor_and_bad_input(client, case, tmp_path):
    assert client.post("/api/v1/cases/OP-8/disclosure", headers=ADMIN, json=FOR).status_code == 404
    assert client.post("/api/v1/cases/OP-7/disclosure", headers=ADMIN, json={"reason": "x"}).status_code == 400
    users = services(client.app).users
    users.add("s.camden", "supervisor", "admin", borough="Camden")
    scoped = {"Authorization": f"Bearer {users.create_token('s.camden', 'x', 'admin').token}"}
    assert client.post("/api/v1/cases/OP-7/disclosure", headers=scoped, json=FOR).status_code == 403
    assert client.post("/api/v1/cases/OP-7/disclosure", json=FOR).status_code == 401


@pytest.mark.sqlite_only
def test_a_central_on_one_machine_makes_its_key_once_and_keeps_it(tmp_path):

    settings = make_settings(tmp_path / "central", disclosure={})
    with central_client(settings) as first:
        key = central_keys(first)
    path = tmp_path / "central" / GENERATED_KEY
    assert path.stat().st_mode & 0o777 == 0o600
    with central_client(settings) as again:
        assert central_keys(again) == key


def test_a_configured_key_signs_a_key_file_open_to_others_stops_central(tmp_path):
    from litestar.testing import TestClient

    from central.core.app import create_app
    from fleet.errors import ConfigError

    seed = Ed25519PrivateKey.generate()
    key_file = tmp_path / "signing.key"
    key_file.write_text(seed.private_bytes_raw().hex())
    key_file.chmod(0o600)
    old = Ed25519PrivateKey.generate().public_key().public_bytes_raw().hex()
    settings = make_settings(
        tmp_path / "central", disclosure={"signing_key": {"file": str(key_file)}, "previous_public_keys": [old]}
    )
    with central_client(settings) as client:
        published = client.get("/api/v1/disclosure/keys").json()
    assert [(k["public_key"], k["current"]) for k in published] == [
        (seed.public_key().public_bytes_raw().hex(), True),
        (old, False),
    ]
    key_file.chmod(0o644)
    with pytest.raises(ExceptionGroup) as caught, TestClient(create_app(settings)):  # the lifespan's failure
        pass
    assert caught.group_contains(ConfigError, match="open to group or others")


@pytest.mark.postgresql_only
@pytest.mark.slow
def test_replicas_without_a_configured_key_refuse_to_export_and_record_nothing(tmp_path):

    settings = make_settings(tmp_path / "central", disclosure={})
    with central_client(settings, raise_server_exceptions=False) as client:
        clip_id = upload(client, os.urandom(100))
        client.post("/api/v1/holds", headers=ADMIN, json={"kind": "case", "case_ref": "OP-7", "reason": "r"})
        client.post("/api/v1/cases/OP-7/clips", headers=ADMIN, json={"clip_ids": [clip_id], "reason": "r"})
        response = client.post("/api/v1/cases/OP-7/disclosure", headers=ADMIN, json=FOR)
        assert response.status_code == 409 and "signing_key" in response.json()["message"]
        records = client.get(f"/api/v1/clips/{clip_id}/custody", headers=ADMIN).json()
        assert all(r["action"] != "disclose" for r in records)
        assert client.get("/api/v1/disclosure/keys").json() == []
    assert not (tmp_path / "central" / GENERATED_KEY).exists()


# -- share links -------------------------------------------------------------------------------


def share(client, expires_in=timedelta(days=7), case_ref="OP-7", headers=ADMIN):
    return client.post(
        f"/api/v1/cases/{case_ref}/shares",
        headers=headers,
        json={"recipient": "IOPC, A. Jones", "expires_at": to_iso(utc_now() + expires_in)},
    )


def test_a_share_link_opens_the_case_for_its_receiver_and_every_view_and_download_is_in_custody(client, case):
    made = share(client)
    assert made.status_code == 201, made.text
    link = made.json()["path"]
    with services(client.app).store.writer.read() as db:
        stored = db.execute("SELECT token_sha256 FROM case_shares").fetchone()[0]
    assert link.split("/")[-1] not in stored  # only its hash is kept
    page = client.get(link)  # no token, no session: the link is the key
    assert page.status_code == 200 and "IOPC, A. Jones" in page.text
    clip_id, data = next(iter(case.uploaded.items()))
    assert clip_id in page.text and case.reported not in page.text
    assert client.get(f"{link}/clips/{clip_id}").content == data
    part = client.get(f"{link}/clips/{clip_id}", headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == data[10:20]
    records = client.get(f"/api/v1/clips/{clip_id}/custody", headers=ADMIN).json()
    partner = [(r["action"], r["actor"]) for r in records if r["actor"].startswith("share #")]
    assert partner == [(action, "share #1 (IOPC, A. Jones)") for action in ("view", "download", "download")]
    listed = client.get("/api/v1/cases/OP-7/shares", headers=ADMIN).json()
    assert [(s["share_id"], s["state"]) for s in listed] == [(1, "active")] and "path" not in listed[0]


def test_a_share_link_opens_nothing_else(client, case):
    other = upload(client, os.urandom(100))
    link = share(client).json()["path"]
    assert client.get(f"{link}/clips/{other}").status_code == 404
    assert client.get(f"{link}/clips/{case.reported}").status_code == 404
    assert (
        client.get(f"/api/v1/clips/{other}", headers={"Authorization": f"Bearer {link.split('/')[-1]}"}).status_code
        == 401
    )
    assert client.get("/shared/" + "A" * 43).status_code == 404


@pytest.mark.slow  # 1-2 s: the whole suite runs it, the quick lane stays under 2 minutes
def test_a_withdrawn_or_expired_link_says_so(client, case):
    link = share(client).json()["path"]
    withdrawn = client.post("/api/v1/cases/OP-7/shares/1/withdraw", headers=ADMIN)
    assert withdrawn.status_code == 200 and withdrawn.json()["state"] == "withdrawn"
    gone = client.get(link)
    assert gone.status_code == 410 and "withdrawn" in gone.text and "text/html" in gone.headers["content-type"]
    clip_id = next(iter(case.uploaded))
    assert client.get(f"{link}/clips/{clip_id}").status_code == 410

    brief = share(client, expires_in=timedelta(seconds=2)).json()["path"]
    assert client.get(brief).status_code == 200
    wait_until(lambda: client.get(brief).status_code == 410, timeout=30, message="the link to expire", interval=0.2)
    assert "expired on" in client.get(brief).text


def test_share_links_are_refused_past_the_longest_life_in_the_past_and_outside_scope(client, case):
    assert share(client, expires_in=timedelta(days=31)).status_code == 400
    assert share(client, expires_in=timedelta(seconds=-1)).status_code == 400
    assert share(client, case_ref="OP-8").status_code == 404
    users = services(client.app).users
    users.add("s.camden", "supervisor", "admin", borough="Camden")
    scoped = {"Authorization": f"Bearer {users.create_token('s.camden', 'x', 'admin').token}"}
    assert share(client, headers=scoped).status_code == 403
    assert client.post("/api/v1/cases/OP-7/shares/99/withdraw", headers=ADMIN).status_code == 404


def test_the_package_streams_clips_larger_than_a_read_piece(client, tmp_path):
    data = os.urandom(3 * (1 << 20) + 17)
    clip_id = upload(client, data)
    client.post("/api/v1/holds", headers=ADMIN, json={"kind": "case", "case_ref": "BIG", "reason": "r"})
    client.post("/api/v1/cases/BIG/clips", headers=ADMIN, json={"clip_ids": [clip_id], "reason": "r"})
    path = export(client, tmp_path, "BIG")
    assert bundle.verify(path, central_keys(client)).ok
    with zipfile.ZipFile(io.BytesIO(path.read_bytes())) as archive:
        assert archive.read(f"clips/{clip_id}.mp4") == data
    shutil.rmtree(tmp_path / "central", ignore_errors=True)


# -- found by the attack review ----------------------------------------------------------------


def test_a_share_link_shares_the_clips_of_when_it_was_made_and_closes_with_the_case(client, case):
    link = share(client).json()["path"]
    later = upload(client, os.urandom(700))
    added = client.post("/api/v1/cases/OP-7/clips", headers=ADMIN, json={"clip_ids": [later], "reason": "new"})
    assert added.status_code == 200
    assert client.get(f"{link}/clips/{later}").status_code == 404 and later not in client.get(link).text
    hold = next(h for h in client.get("/api/v1/holds", headers=ADMIN).json() if h["case_ref"] == "OP-7")
    released = client.post(f"/api/v1/holds/{hold['id']}/release", headers=ADMIN, json={"reason": "no further action"})
    assert released.status_code == 200, released.text
    closed = client.get(link)
    assert closed.status_code == 410 and "was closed" in closed.text
    assert share(client).status_code == 409  # no new link to a released case


def test_another_cases_disclosures_are_withheld_from_this_cases_package(client, case, tmp_path):
    clip_id = next(iter(case.uploaded))
    client.post("/api/v1/holds", headers=ADMIN, json={"kind": "case", "case_ref": "PSD-9", "reason": "r"})
    client.post("/api/v1/cases/PSD-9/clips", headers=ADMIN, json={"clip_ids": [clip_id], "reason": "r"})
    other = {"prepared_for": "IOPC", "reason": "misconduct investigation of PC 4471"}
    assert client.post("/api/v1/cases/PSD-9/disclosure", headers=ADMIN, json=other).status_code == 200
    with zipfile.ZipFile(export(client, tmp_path)) as archive:
        custody = archive.read(f"custody/{clip_id}.csv").decode()
    assert "PC 4471" not in custody and "IOPC" not in custody
    assert "another case: withheld from this package" in custody and "CPS London South" in custody


def test_a_share_links_secret_never_reaches_centrals_log(client, case, caplog, monkeypatch):
    import sqlite3

    from central.evidence.shares import ShareService

    link = share(client).json()["path"]

    def busy(self, token):
        raise sqlite3.OperationalError("database is locked")  # logged with the request's path

    monkeypatch.setattr(ShareService, "opened", busy)
    assert client.get(link).status_code >= 500
    central = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("central"))  # not the client's
    assert "/shared/…" in central and link.split("/")[-1] not in central


def test_a_package_not_delivered_whole_is_recorded_so(client, case):
    clip_id = next(iter(case.uploaded))
    with services(client.app).store.writer.read() as db:
        key = db.execute("SELECT blob_key FROM clips WHERE clip_id = ?", [clip_id]).fetchone()[0]
    blobs = services(client.app).blobs
    assert isinstance(blobs, FilesystemBlobStore)
    blob = blobs._path(key)  # the file itself, altered at rest
    blob.write_bytes(b"x" * blob.stat().st_size)
    with contextlib.suppress(Exception):  # the stream ends with an error, however the client reports it
        client.post("/api/v1/cases/OP-7/disclosure", headers=ADMIN, json=FOR)
    actions = [r["action"] for r in client.get(f"/api/v1/clips/{clip_id}/custody", headers=ADMIN).json()]
    assert actions[-2:] == ["disclose", "disclose-failed"]


@pytest.mark.sqlite_only
def test_two_centrals_starting_at_once_make_one_key(tmp_path, monkeypatch):
    import threading

    from central.evidence import signing

    settings = make_settings(tmp_path / "central", disclosure={})
    (tmp_path / "central").mkdir()
    both, write = threading.Barrier(2), signing.write_key_file

    def together(path, key):
        both.wait()
        write(path, key)

    monkeypatch.setattr(signing, "write_key_file", together)
    keys: list[str | None] = []
    threads = [
        threading.Thread(
            target=lambda: keys.append(signing.Signer.from_settings(settings, single_machine=True).public_key)
        )
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 2 and keys[0] == keys[1] is not None
    assert sorted(p.name for p in (tmp_path / "central").iterdir()) == [GENERATED_KEY]


def _patched_entry(raw: bytes, name: str, local_at: int, central_at: int, patch) -> bytes:
    """The zip's bytes with ``patch(old) -> new`` applied to one 16-bit field of ``name``'s local
    header (at ``local_at``) and of its central directory record (at ``central_at``)."""
    out, encoded = bytearray(raw), name.encode()
    for signature, field, name_len_at, name_at in (
        (b"PK\x03\x04", local_at, 26, 30),
        (b"PK\x01\x02", central_at, 28, 46),
    ):
        at = raw.find(signature)
        while at >= 0:
            length = struct.unpack_from("<H", raw, at + name_len_at)[0]
            if raw[at + name_at : at + name_at + length] == encoded:
                struct.pack_into("<H", out, at + field, patch(struct.unpack_from("<H", raw, at + field)[0]))
            at = raw.find(signature, at + 1)
    return bytes(out)


def test_a_clip_changed_inside_the_zip_is_named_with_exit_status_1(client, case, tmp_path, capsys):
    genuine = export(client, tmp_path).read_bytes()
    clip_id, data = next(iter(case.uploaded.items()))
    at = genuine.index(data)
    forged = bytearray(genuine)
    forged[at + 100] ^= 1  # one bit of the footage, nothing else
    path = tmp_path / "changed.zip"
    path.write_bytes(bytes(forged))
    assert fleet_main(["verify-bundle", str(path), "--public-key", central_keys(client)[0]]) == 1
    out = capsys.readouterr().out
    assert out.startswith("NOT INTACT") and f"clips/{clip_id}.mp4 has changed" in out


@pytest.mark.parametrize("how", ["encrypted", "deflate64"])
def test_a_zip_entry_python_cannot_read_is_not_a_traceback(client, case, tmp_path, capsys, how):
    genuine = export(client, tmp_path).read_bytes()
    name = f"clips/{next(iter(case.uploaded))}.mp4"
    if how == "encrypted":  # general purpose flag bit 0, in the local header (offset 6) and the directory (8)
        forged = _patched_entry(genuine, name, 6, 8, lambda flags: flags | 1)
    else:  # compression method 9 (Deflate64), in the local header (offset 8) and the directory (10)
        forged = _patched_entry(genuine, name, 8, 10, lambda method: 9)
    path = tmp_path / f"{how}.zip"
    path.write_bytes(forged)
    assert fleet_main(["verify-bundle", str(path), "--public-key", central_keys(client)[0]]) == 1
    assert capsys.readouterr().out.startswith("NOT INTACT")


def test_a_range_of_absurd_length_through_a_share_link_is_416_not_500(client, case):
    link = share(client).json()["path"]
    clip_id = next(iter(case.uploaded))
    for absurd in ("bytes=" + "9" * 5000 + "-", "bytes=-" + "1" * 5000):
        refused = client.get(f"{link}/clips/{clip_id}", headers={"Range": absurd})
        assert refused.status_code == 416 and re.fullmatch(r"bytes \*/\d+", refused.headers["content-range"])


def test_no_byte_of_the_zips_structure_changed_gives_a_traceback_or_a_pass(client, case, tmp_path):
    """Every byte outside the files' own bytes, changed: a problem named or "not a package", never
    an exception, and never a pass unless the byte is one no tool reads a file by (times, versions,
    permissions, disk numbers, index.sig's trailing newline)."""
    genuine = export(client, tmp_path).read_bytes()
    keys = central_keys(client)
    with zipfile.ZipFile(io.BytesIO(genuine)) as archive:
        contents = [archive.read(i) for i in archive.infolist() if i.filename != bundle.SIGNATURE]
    spans = [(genuine.index(data), genuine.index(data) + len(data)) for data in contents]
    path, passed = tmp_path / "changed.zip", []
    for at in range(len(genuine)):
        if any(start <= at < end for start, end in spans):
            continue
        forged = bytearray(genuine)
        forged[at] ^= 0xFF
        path.write_bytes(bytes(forged))
        with contextlib.suppress(FleetError):
            if bundle.verify(path, keys).ok:
                passed.append(at)
    entries, harmless = 8, 4 + 4 + 2 + 4 + 4 + 4 + 2 + 2  # times, versions (twice), disk, attributes
    assert len(passed) <= entries * harmless + 4 + 1, passed  # and the end record's disk numbers, a newline
    for cut in range(0, len(genuine), 97):
        path.write_bytes(genuine[:cut])
        with contextlib.suppress(FleetError):
            assert not bundle.verify(path, keys).ok


def test_a_name_past_the_directorys_end_or_a_miscounted_directory_fails(client, case, tmp_path):
    """zipfile reads no further than the size the end record gives, so a last name that runs past
    it reads the same to Python and differently to `unzip`."""
    genuine = export(client, tmp_path).read_bytes()
    last = genuine.rindex(b"PK\x01\x02")
    longer = bytearray(genuine)
    struct.pack_into("<H", longer, last + 28, struct.unpack_from("<H", genuine, last + 28)[0] + 4)
    miscounted = bytearray(genuine)
    end = genuine.rindex(b"PK\x05\x06")
    struct.pack_into("<2H", miscounted, end + 8, 7, 7)
    for forged in (longer, miscounted):
        path = tmp_path / "forged.zip"
        path.write_bytes(bytes(forged))
        verdict = bundle.verify(path, central_keys(client))
        assert not verdict.ok and not verdict.intact, verdict


def test_a_zip_directory_larger_than_any_package_is_refused_unread(tmp_path, capsys):
    """A directory of millions of tiny records would take gigabytes of memory to list."""
    path = tmp_path / "huge.zip"
    with open(path, "wb") as f:
        f.write(b"\0" * 64)
        f.write(struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, bundle.MAX_DIRECTORY + 1, 0, 0))
    assert fleet_main(["verify-bundle", str(path)]) == 1
    assert "directory is larger than any this format writes" in capsys.readouterr().out


def test_an_entry_larger_than_listed_is_read_no_further(client, case, tmp_path, monkeypatch):
    folder = unpacked(export(client, tmp_path), tmp_path)
    clip_id, data = next(iter(case.uploaded.items()))
    (folder / "clips" / f"{clip_id}.mp4").write_bytes(data + b"\0" * (3 * bundle.READ_PIECE))
    monkeypatch.setattr(bundle, "READ_PIECE", 1024)
    verdict = bundle.verify(folder, central_keys(client))
    assert f"clips/{clip_id}.mp4 has changed: larger than the {len(data)} bytes the index says" in verdict.problems


def test_control_characters_in_a_package_are_printed_escaped(client, case, tmp_path, capsys):
    """A name is the forger's: an escape sequence in it could clear the screen and print a pass."""
    folder = unpacked(export(client, tmp_path), tmp_path)
    (folder / "clips" / "\x1b[2J\x1b[Hintact\u202e.mp4").write_bytes(b"planted")
    assert fleet_main(["verify-bundle", str(folder), "--public-key", central_keys(client)[0]]) == 1
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\u202e" not in out and "\\u001b[2J\\u001b[Hintact\\u202e.mp4" in out
    assert fleet_main(["verify-bundle", str(folder), "--json", "--public-key", central_keys(client)[0]]) == 1
    printed = capsys.readouterr().out
    assert "\u202e" not in printed and any("\u202e" in p for p in msgspec.json.decode(printed)["problems"])
