"""Attacks on deployments through a station's token: results it may not claim are refused, and
what it may claim never stops the real outcome of a camera from counting."""

from __future__ import annotations

from fleet.events import CameraUpdateResult
from tests.central.conftest import ADMIN, CAMDEN
from tests.central.firmware.test_deployments import (
    cameras,
    client,
    create,
    refusals,
    release,
    results,
    send,
    show,
    standing,
)

__all__ = ["client"]  # the fixture, reused


def test_a_result_for_an_attempt_never_offered_is_refused_and_the_real_one_still_counts(client):
    release_id = release(client)
    d = create(client, release_id=release_id, target={"serials": ["BWV-C001"]}, phases=[{"share_pct": 100}])
    forged = CameraUpdateResult(serial="BWV-C001", deployment_id=d["id"], attempt=1000, ok=False, error="forged")
    send(client, "camden", [forged])  # the camera was offered attempt 1 only
    assert [(s, k) for s, k, _ in refusals(client)] == [("camden", "camera_update_result")]
    assert "attempt 1000" in refusals(client)[0][2]
    results(client, d["id"], {"BWV-C001": True})  # the camera's real report of attempt 1
    camera = cameras(client, d["id"])["BWV-C001"]
    assert camera["state"] == "updated" and camera["failures"] == 0


def test_a_release_withdrawn_while_its_deployment_runs_is_offered_to_no_camera_any_more(client):
    release_id = release(client)
    d = create(client, release_id=release_id, target={"serials": ["BWV-C001", "BWV-C002"]}, phases=[{"share_pct": 100}])
    assert standing(client, CAMDEN) == {"BWV-C001", "BWV-C002"}
    withdrawn = client.post(
        f"/api/v1/firmware/releases/{release_id}/withdraw", json={"reason": "bricks cameras"}, headers=ADMIN
    )
    assert withdrawn.status_code == 200, withdrawn.text
    # A station that downloaded the artifact already would hand it to the next camera docked.
    assert standing(client, CAMDEN) == set()
    assert show(client, d["id"])["state"] != "running"
