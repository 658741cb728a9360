"""A person's word on a report of a clip that waits for its upload (``central.events.decisions``,
``fleet central claims``): the report another station made first with other bytes, refused, and
the true station's report put in its place."""

from __future__ import annotations

import json
import os

import pytest

from central.core.providers import services
from central.events import decisions
from fleet.cli import main
from fleet.errors import BadRequest, Conflict, NotFound
from fleet.events import ClipDamaged
from fleet.protocol import encode_upload_metadata
from tests.central.conftest import ADMIN, BARNET, CAMDEN, KENTISH, TUS, config_file
from tests.central.events.test_claims import (
    _forged_upload,
    chain_intact,
    custody,
    refusals,
    upload_metadata,
    upload_reported,
)
from tests.central.fleetdata import docked, ingested, post

SERIAL = "BWV-000123"


def _blocked(client):
    """Kentish reports copying the clip first, naming other bytes than the camera's; Camden, whose
    dock copied it, is refused twice: its report (another station's came first) and its upload (409,
    "a person must look"). The clip's (true) bytes and Camden's report."""
    data, forged = os.urandom(3000), os.urandom(3000)
    true = ingested(SERIAL, 2, data=data)
    fake = ingested(SERIAL, 2, clip_id=true.clip_id, data=forged)
    post(client, CAMDEN, [docked(SERIAL, 1)], hours=[1])
    post(client, KENTISH, [fake], hours=[3])
    post(client, CAMDEN, [docked(SERIAL, 3, clips=1), true], first_seq=2, hours=[3, 3])
    refused = _forged_upload(client, true, data, "whole in its creation", headers=CAMDEN)
    assert refused.status_code == 409 and "a person must look" in refused.text
    assert [(s, q) for s, q, _, _ in refusals(client)] == [("camden", 3)]
    return data, true


def _audit(client, clip_id: str) -> list[tuple[str, str, str]]:
    with services(client.app).store.writer.read() as db:
        rows = db.execute(
            "SELECT actor, action, detail FROM audit WHERE object_id = ? AND action LIKE 'claim-%' ORDER BY id",
            [clip_id],
        ).fetchall()
    return [tuple(r) for r in rows]


def test_a_report_made_first_with_other_bytes_is_refused_and_the_true_stations_put_in_its_place(client):
    data, clip = _blocked(client)
    events = services(client.app).events
    seen = decisions.show(events, clip.clip_id)
    assert (seen.waiting.station_id, seen.waiting.seq, seen.reported_by) == ("kentish", 1, "kentish")
    assert [(r.station_id, r.seq) for r in seen.refused] == [("camden", 3)] and seen.upload is None

    decision = decisions.refuse(events, clip.clip_id, "cli:imo", " not the camera's footage ", instead="camden")
    assert (decision.refused.station_id, decision.refused.seq, decision.refused.refused) == (
        "kentish",
        1,
        "not the camera's footage",
    )
    assert (decision.reinstated.station_id, decision.reinstated.seq) == ("camden", 3)
    seen = decisions.show(events, clip.clip_id)
    assert (seen.waiting.station_id, seen.waiting.size, seen.reported_by) == ("camden", 3000, "camden")

    upload_reported(client, clip, data)  # ``fleet station retry`` at Camden
    assert sorted(custody(client, clip.clip_id)) == [  # the person's word is in the clip's custody too
        ("claim-refused", "central"),
        ("claim-reinstated", "central"),
        ("ingest", "camden"),
        ("upload-verified", "central"),
    ]
    attributed = client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).json()
    assert attributed["station_id"] == "camden"
    assert ("kentish", 1, "clip_ingested", "refused by cli:imo: not the camera's footage") in refusals(client)
    (refusal, reinstatement) = _audit(client, clip.clip_id)
    assert refusal[:2] == ("cli:imo", "claim-refused") and "station kentish's report (event 1)" in refusal[2]
    assert reinstatement[:2] == ("cli:imo", "claim-reinstated") and "in place of station kentish's" in reinstatement[2]
    assert chain_intact(client)


def test_a_refused_report_alone_lets_the_true_bytes_in_unattributed(client):
    """Without --instead the clip's bytes are taken from whoever has them, and nobody's report names it:
    the supervisors attribute it by hand."""
    data, clip = _blocked(client)
    decisions.refuse(services(client.app).events, clip.clip_id, "cli:imo", "a stolen token")
    upload_reported(client, clip, data)
    assert custody(client, clip.clip_id) == [("claim-refused", "central"), ("upload-verified", "central")]
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).status_code == 404
    client.post("/api/v1/officers/", headers=ADMIN, json=[{"officer_id": "PC9", "borough": "Camden"}])
    r = client.post(
        f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN, json={"officer_id": "PC9", "reason": "duty log"}
    )
    assert r.status_code == 200, r.text
    assert (r.json()["officer_id"], r.json()["station_id"], r.json()["resolved_by"]) == ("PC9", None, "admin")
    assert chain_intact(client)


def _unchanged(client, clip_id: str) -> None:
    seen = decisions.show(services(client.app).events, clip_id)
    assert (seen.waiting.station_id, seen.reported_by) == ("kentish", "kentish")
    assert _audit(client, clip_id) == []
    assert [(s, q) for s, q, _, _ in refusals(client)] == [("camden", 3)]


def test_what_cannot_be_done_is_refused_with_its_reason_and_changes_nothing(client):
    _, clip = _blocked(client)
    events = services(client.app).events
    with pytest.raises(BadRequest, match="say why"):
        decisions.refuse(events, clip.clip_id, "cli:imo", "  ")
    with pytest.raises(Conflict, match="station kentish's is the report refused"):
        decisions.refuse(events, clip.clip_id, "cli:imo", "why", instead="kentish")
    with pytest.raises(NotFound, match="station barnet has no refused report of clip"):
        decisions.refuse(events, clip.clip_id, "cli:imo", "why", instead="barnet")
    _unchanged(client, clip.clip_id)
    with pytest.raises(NotFound, match=r"no report of clip .* waits for its upload"):
        decisions.refuse(events, "7d0e5a3c-0000-4000-8000-000000000000", "cli:imo", "why")


def test_a_report_put_back_that_is_refused_again_changes_nothing(client):
    """Barnet's report of Camden's camera is refused whenever it is applied: put back, it is refused
    again, and the whole decision with it (Kentish's report still waits)."""
    _, clip = _blocked(client)
    post(client, BARNET, [clip], hours=[3])
    with pytest.raises(Conflict, match=r"station barnet's report of clip .* is refused again: .*registered to Camden"):
        decisions.refuse(services(client.app).events, clip.clip_id, "cli:imo", "why", instead="barnet")
    seen = decisions.show(services(client.app).events, clip.clip_id)
    assert (seen.waiting.station_id, len(seen.refused), _audit(client, clip.clip_id)) == ("kentish", 2, [])


def _config(tmp_path) -> str:
    return config_file(
        tmp_path,
        '[stations.camden]\nborough = "Camden"\ntoken = "camden-test-token"\n'
        '[stations.kentish]\nborough = "Camden"\ntoken = "kentish-test-token"\n',
    )


def test_the_commands_show_and_refuse_a_waiting_report_and_say_what_is_wrong(client, tmp_path, capsys):
    _, clip = _blocked(client)
    path = _config(tmp_path)
    assert main(["central", "claims", "show", clip.clip_id, "--config", path]) == 0
    out = capsys.readouterr().out
    assert f"waiting: station kentish's report (event 1), 3000 bytes, sha256 {clip.sha256}" not in out  # other bytes
    assert "waiting: station kentish's report (event 1), 3000 bytes" in out
    assert f"refused: station camden's report (event 3, 3000 bytes, sha256 {clip.sha256}): clip" in out
    assert "upload: none" in out

    assert main(["central", "claims", "refuse", clip.clip_id, "--reason", "", "--config", path]) == 2
    assert "say why the report is refused" in capsys.readouterr().err
    command = ["central", "claims", "refuse", clip.clip_id, "--reason", "forged", "--instead", "camden"]
    assert main([*command, "--json", "--config", path]) == 0
    decision = json.loads(capsys.readouterr().out)
    assert decision["refused"]["station_id"] == "kentish" and decision["reinstated"] == {
        "station_id": "camden",
        "seq": 3,
        "refused": None,
        "size": 3000,
        "sha256": clip.sha256,
    }
    assert main(["central", "claims", "show", clip.clip_id, "--json", "--config", path]) == 0
    assert json.loads(capsys.readouterr().out)["waiting"]["station_id"] == "camden"
    assert main(["central", "claims", "refuse", "no-such-clip", "--reason", "x", "--config", path]) == 2
    assert "no report of clip no-such-clip waits for its upload" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("words", "said"),
    [
        (["show", "\udcff"], "is not a clip id"),  # a byte that is not UTF-8 on the command line
        (["refuse", "\udcff", "--reason", "forged"], "is not a clip id"),
        (["refuse", "CLIP", "--reason", "forged \udcff"], "one printable line"),
        (["refuse", "CLIP", "--reason", "forged\nclip verified by station camden"], "one printable line"),
        (["refuse", "CLIP", "--reason", "forged \u202edegami"], "one printable line"),  # reads right to left
        (["refuse", "CLIP", "--reason", "x" * 501], "at most 500 characters"),
        (["refuse", "CLIP", "--reason", "forged", "--instead", "\udcff"], "is not a station id"),
    ],
)
def test_what_a_person_mistypes_is_one_line_and_exit_2_and_changes_nothing(client, tmp_path, capsys, words, said):
    """The reason goes into the audit trail and the clip's custody report: a line break or a
    bidirectional mark there makes it say what the person did not write."""
    _, clip = _blocked(client)
    words = [clip.clip_id if w == "CLIP" else w for w in words]
    assert main(["central", "claims", *words, "--config", _config(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert said in err and err.count("\n") == 1, err
    _unchanged(client, clip.clip_id)


@pytest.mark.parametrize("uploaded", [False, True])
def test_a_refusal_made_without_instead_is_put_right_by_naming_the_station_after(client, uploaded):
    """A tired person refuses the false report and forgets --instead. Camden's retry then brings the
    clip in attributed to nobody, and with no attribution row at all: in no supervisor's queue, under
    no officer hold, and with no row to attribute by hand. The same command naming Camden puts its
    report in, whether its upload has been verified since (custody from Camden's time) or not."""
    data, clip = _blocked(client)
    events = services(client.app).events
    decisions.refuse(events, clip.clip_id, "cli:imo", "forged")
    if uploaded:
        upload_reported(client, clip, data)
    decision = decisions.refuse(events, clip.clip_id, "cli:imo", "forgot --instead", instead="camden")
    assert decision.refused is None and (decision.reinstated.station_id, decision.reinstated.seq) == ("camden", 3)
    if not uploaded:
        assert decisions.show(events, clip.clip_id).waiting.station_id == "camden"
        upload_reported(client, clip, data)
    assert sorted(custody(client, clip.clip_id)) == [
        ("claim-refused", "central"),
        ("claim-reinstated", "central"),
        ("ingest", "camden"),
        ("upload-verified", "central"),
    ]
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).json()["station_id"] == "camden"
    assert "forgot --instead" in _audit(client, clip.clip_id)[-1][2]
    assert chain_intact(client)


def test_a_report_is_put_back_only_where_none_stands(client):
    """Once Camden's upload settled its report, nothing waits and its report stands: Kentish's put in
    its place, or Camden's put back again, is refused and changes nothing."""
    data, clip = _blocked(client)
    events = services(client.app).events
    decisions.refuse(events, clip.clip_id, "cli:imo", "forged", instead="camden")
    upload_reported(client, clip, data)
    audited = _audit(client, clip.clip_id)
    for station in ("kentish", "camden"):
        with pytest.raises(Conflict, match=r"no report of clip .* waits for its upload, and station camden's stands"):
            decisions.refuse(events, clip.clip_id, "cli:imo", "why", instead=station)
    assert _audit(client, clip.clip_id) == audited and len(refusals(client)) == 2
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).json()["station_id"] == "camden"


def _by_hand(client, clip_id: str) -> None:
    """A supervisor attributes the clip to PC1 while Kentish's report of it waits."""
    officer = {"officer_id": "PC1", "borough": "Camden", "role": "response"}
    client.post("/api/v1/officers/", json=[officer], headers=ADMIN).raise_for_status()
    attributed = {"officer_id": "PC1", "reason": "seen on the footage"}
    client.post(f"/api/v1/clips/{clip_id}/attribution", json=attributed, headers=ADMIN).raise_for_status()


@pytest.mark.parametrize(("instead", "later"), [(None, False), ("camden", False), ("camden", True)])
def test_a_hand_attributed_clips_refused_report_no_longer_makes_its_station_the_clips(client, instead, later):
    """The supervisor's word on the officer stays; Kentish's refused report no longer names Kentish
    the clip's station (whose say-so, such as "my copy is damaged", went into the clip's custody),
    and Camden's report can be put in its place, at once or after the refusal."""
    data, clip = _blocked(client)
    _by_hand(client, clip.clip_id)
    events = services(client.app).events
    decisions.refuse(events, clip.clip_id, "cli:imo", "forged", instead=None if later else instead)
    post(client, KENTISH, [ClipDamaged(clip_id=clip.clip_id, reason="segment 1 failed")], first_seq=2, hours=[5])
    assert ("kentish", 2, "clip_damaged") in [(s, q, k) for s, q, k, _ in refusals(client)]
    if later:
        decisions.refuse(events, clip.clip_id, "cli:imo", "forgot --instead", instead=instead)
    upload_reported(client, clip, data)
    attributed = client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).json()
    assert (attributed["station_id"], attributed["officer_id"], attributed["resolved_by"]) == (instead, "PC1", "admin")
    assert ("ingest", "camden") in custody(client, clip.clip_id) or instead is None
    assert "damaged-at-station" not in dict(custody(client, clip.clip_id))
    assert chain_intact(client)


def test_a_report_put_back_where_none_waits_that_is_refused_again_changes_nothing(client):
    _, clip = _blocked(client)
    events = services(client.app).events
    decisions.refuse(events, clip.clip_id, "cli:imo", "forged")
    post(client, BARNET, [clip], hours=[3])
    before = (refusals(client), _audit(client, clip.clip_id))
    with pytest.raises(Conflict, match=r"station barnet's report of clip .* is refused again: .*registered to Camden"):
        decisions.refuse(events, clip.clip_id, "cli:imo", "why", instead="barnet")
    assert (refusals(client), _audit(client, clip.clip_id)) == before
    assert client.get(f"/api/v1/clips/{clip.clip_id}/attribution", headers=ADMIN).status_code == 404


def test_a_report_put_back_while_the_false_reports_station_uploads_its_bytes_changes_nothing(client):
    """Kentish's upload of the bytes its report named is under way: finished, its bytes would be the
    clip's evidence whatever is decided about its report. The decision is refused whole, with or
    without --instead, saying what to do; once the admin has stopped that upload it goes through."""
    _, clip = _blocked(client)
    forged = decisions.show(services(client.app).events, clip.clip_id)
    created = client.post(
        "/api/v1/uploads/",
        headers={
            **KENTISH,
            **TUS,
            "Upload-Length": str(forged.waiting.size),
            "Upload-Metadata": encode_upload_metadata(upload_metadata(clip, forged.waiting.sha256)),
        },
    )
    assert created.status_code == 201, created.text
    for instead in ("camden", None):  # without --instead too: finished, its bytes would be the clip's
        with pytest.raises(Conflict, match=r"station kentish is uploading clip .*: replace its token first"):
            decisions.refuse(services(client.app).events, clip.clip_id, "cli:imo", "forged", instead=instead)
        _unchanged(client, clip.clip_id)
    upload_id = created.headers["Location"].rstrip("/").rsplit("/", 1)[-1]
    assert client.delete(f"/api/v1/uploads/{upload_id}", headers={**ADMIN, **TUS}).status_code == 204
    decision = decisions.refuse(services(client.app).events, clip.clip_id, "cli:imo", "forged", instead="camden")
    assert decision.reinstated.station_id == "camden"


def test_the_refused_report_put_back_is_the_one_named_and_show_says_which_bytes_each_named(client):
    """Camden's token reported the clip twice (the second with other bytes: its token lied too). Show
    lists the bytes each refused report named; --event puts back the one the person chose, and
    without it the latest goes back."""
    data, clip = _blocked(client)
    other = ingested(SERIAL, 2, clip_id=clip.clip_id, data=os.urandom(2000))
    post(client, CAMDEN, [other], first_seq=4, hours=[4])
    events = services(client.app).events
    seen = decisions.show(events, clip.clip_id)
    assert [(r.seq, r.size, r.sha256) for r in seen.refused] == [(3, 3000, clip.sha256), (4, 2000, other.sha256)]
    with pytest.raises(BadRequest, match="--event names one of the --instead station's"):
        decisions.refuse(events, clip.clip_id, "cli:imo", "forged", event=3)
    with pytest.raises(NotFound, match=r"station camden's event 2 is not one of its refused reports .* \(3, 4:"):
        decisions.refuse(events, clip.clip_id, "cli:imo", "forged", instead="camden", event=2)
    _unchanged_but(client, clip.clip_id, refused=[("camden", 3), ("camden", 4)])
    decision = decisions.refuse(events, clip.clip_id, "cli:imo", "forged", instead="camden", event=3)
    assert (decision.reinstated.station_id, decision.reinstated.seq) == ("camden", 3)
    assert decisions.show(events, clip.clip_id).waiting.sha256 == clip.sha256
    upload_reported(client, clip, data)
    assert ("ingest", "camden") in custody(client, clip.clip_id) and chain_intact(client)


def _unchanged_but(client, clip_id: str, refused: list[tuple[str, int]]) -> None:
    seen = decisions.show(services(client.app).events, clip_id)
    assert (seen.waiting.station_id, seen.reported_by) == ("kentish", "kentish")
    assert _audit(client, clip_id) == []
    assert [(s, q) for s, q, _, _ in refusals(client)] == refused
