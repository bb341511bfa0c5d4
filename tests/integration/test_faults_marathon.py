"""Fault injection, Marathon side: the real autodeployd against the Marathon emulator while
Marathon is down, failing, slow, locked, refusing, losing its event stream, hanging a
deployment, or losing the app between the listing and the update.

Each test asserts, in the words of the issue: no crash (the process is alive and answers
/healthz), no duplicate deploy (the Marathon writes and the app versions Marathon stored are
counted), and every accepted push ends visibly: deployed, skipped with a reason, or failed
and reported (GET /v1/deployments, or GET /v1/pushes when the app list could not be read).
test_deploy.py already covers the plain cases (one lock by another deployment, 503s on the
PATCH, a 422, a deletion before the re-read, timeouts of a hanging deployment with and
without rollback); these extend them.
"""
import json
import time

import pytest

from conftest import free_port, wait_for
from deploy_helpers import (app, app_state, emu_call, marathon, push, records,  # noqa: F401
                            start_daemon, wait_records, writes)
from faults_helpers import (assert_alive, deployments_started, image_of, log_msgs, versions,
                            wait_terminal)
from marathon import MarathonEmulator

IMG = "registry.example.com:5000/strava/foo-service:master-1"


def patches(emu, app_id):
    return [r for r in writes(emu, app_id) if r["method"] == "PATCH"]


def deployed_once(emu, d, app_id, tag):
    """The app runs the pushed tag, Marathon stored exactly one new version for it, and the
    record says succeeded."""
    rec = wait_records(d, app_id)[0]
    assert rec["state"] == "succeeded", rec
    assert image_of(emu, app_id).endswith(":" + tag)
    assert versions(emu, app_id) == 2, app_state(emu, app_id)["versions"]
    assert len(deployments_started(emu, app_id)) == 1
    return rec


# ------------------------------------------------------------------ Marathon down, then back

def test_marathon_down_at_push_time_and_back_later(daemon):
    """Nothing listens on Marathon's port when the push arrives; Marathon starts 2 s later on
    that very port. The listing is retried with backoff, then the push deploys once."""
    port = free_port()
    d = start_daemon(daemon, f"http://127.0.0.1:{port}")
    body, _ = push(tag="master-2")
    assert d.post_event(body).status == 202
    wait_for(lambda: "cannot list Marathon apps; retrying" in log_msgs(d), timeout=5,
             what="the listing retried")
    time.sleep(1.5)
    assert records(d) == []
    emu = MarathonEmulator(port=port, apps=[app("/staging/foo", IMG)], deploy_seconds=0.3,
                           heartbeat_seconds=0.5).start()
    try:
        deployed_once(emu, d, "/staging/foo", "master-2")
        assert len(patches(emu, "/staging/foo")) == 1
        assert [p["state"] for p in d.pushes()] == ["dispatched"]
        # The event stream came back too, by itself.
        wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, timeout=10,
                 what="event stream attached")
        assert_alive(d)
    finally:
        d.stop()
        emu.stop()


def test_marathon_drops_connections_then_recovers(daemon, marathon):
    """Marathon accepts the connection and closes it without an answer for the first requests
    of every kind (the listing, the re-read, the PATCH): each is retried, one deployment."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.add_fault({"method": "GET", "path": "/v2/apps", "count": 2, "close": True})
    emu.add_fault({"method": "GET", "path": "/v2/apps/staging/foo", "count": 1, "close": True})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-3")[0])
    deployed_once(emu, d, "/staging/foo", "master-3")
    assert len([r for r in emu.get_requests() if r["path"] == "/v2/apps"]) == 3
    assert d.metrics()['autodeploy_marathon_errors_total{status="0"}'] >= 3
    assert_alive(d)


def test_marathon_never_back_push_fails_visibly(daemon):
    """Marathon stays down past --update-timeout: the push ends as failed in /v1/pushes and the
    log says why; a later push, once Marathon is back, deploys normally."""
    port = free_port()
    d = start_daemon(daemon, f"http://127.0.0.1:{port}", "--update-timeout", "2s")
    d.post_event(push(tag="master-4")[0])
    wait_for(lambda: [p for p in d.pushes() if p["state"] == "failed"], timeout=8,
             what="push failed")
    errs = [r for r in d.logs() if r.get("msg") == "push not deployed: cannot list Marathon apps"]
    assert len(errs) == 1 and "Marathon unreachable" in errs[0]["error"]
    assert records(d) == []
    assert_alive(d)
    emu = MarathonEmulator(port=port, apps=[app("/staging/foo", IMG)], deploy_seconds=0.3,
                           heartbeat_seconds=0.5).start()
    try:
        d.post_event(push(tag="master-5")[0])
        deployed_once(emu, d, "/staging/foo", "master-5")
    finally:
        d.stop()
        emu.stop()


# ------------------------------------------------------------------ 500s

def test_500s_on_every_step_are_retried_and_deploy_once(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    err = {"message": "An unexpected server error occurred"}
    emu.add_fault({"method": "GET", "path": "/v2/apps", "count": 2, "status": 500, "body": err})
    emu.add_fault({"method": "GET", "path": "/v2/apps/staging/foo", "count": 1, "status": 500,
                   "body": err})
    emu.add_fault({"method": "PATCH", "path": "/v2/apps/staging/foo", "count": 1, "status": 500,
                   "body": err})
    emu.add_fault({"method": "GET", "path": "/v2/deployments", "count": 100, "status": 500,
                   "body": err})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-6")[0])
    deployed_once(emu, d, "/staging/foo", "master-6")
    assert len(patches(emu, "/staging/foo")) == 2  # one refused by the fault, one applied
    # The listing twice, the re-read, the PATCH; /v2/deployments polls fail too (stream or not).
    assert d.metrics()['autodeploy_marathon_errors_total{status="500"}'] >= 4
    assert_alive(d)


def test_persistent_500_on_update_fails_with_the_reason(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.add_fault({"method": "PATCH", "path": "/v2/apps/staging/foo", "count": 1000,
                   "status": 500, "body": {"message": "storage is down"}})
    d = start_daemon(daemon, emu, "--update-timeout", "2s")
    d.post_event(push(tag="master-7")[0])
    rec = wait_terminal(d, "/staging/foo", timeout=10)[0]
    assert rec["state"] == "failed" and "HTTP 500: storage is down" in rec["reason"], rec
    assert "--update-timeout" in rec["reason"], rec
    assert versions(emu, "/staging/foo") == 1 and image_of(emu, "/staging/foo") == IMG
    assert_alive(d)


# ------------------------------------------------------------------ slower than the request timeout

def test_listing_slower_than_request_timeout_is_retried(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.add_fault({"method": "GET", "path": "/v2/apps", "count": 1, "delay": 2.0})
    d = start_daemon(daemon, emu, "--marathon-timeout", "700ms")
    t0 = time.monotonic()
    d.post_event(push(tag="master-8")[0])
    deployed_once(emu, d, "/staging/foo", "master-8")
    assert time.monotonic() - t0 < 5
    assert any("Timeout was reached" in r.get("error", "") or "timed out" in r.get("error", "")
               for r in d.logs() if r.get("msg") == "Marathon unreachable")
    assert_alive(d)


def test_update_slower_than_request_timeout_deploys_once(daemon, marathon):
    """The PATCH reaches Marathon but is applied 3 s later, after --marathon-timeout (1 s):
    autodeployd cannot know whether it was applied, so it re-reads the app and sends the PATCH
    again, which Marathon applies at once. When the late first PATCH lands, it must not start
    a second deployment: Marathon must end with exactly one new app version. (A retried PATCH
    with the very same body would be a no-change plan; one with a new deployed-at label
    restarts every task a second time.)"""
    emu = marathon([app("/staging/foo", IMG)])
    emu.add_fault({"method": "PATCH", "path": "/v2/apps/staging/foo", "count": 1, "delay": 3.0})
    d = start_daemon(daemon, emu, "--marathon-timeout", "1s")
    d.post_event(push(tag="master-9")[0])
    rec = wait_terminal(d, "/staging/foo", timeout=12)[0]
    assert rec["state"] == "succeeded", rec
    wait_for(lambda: len(patches(emu, "/staging/foo")) == 2, what="the PATCH sent again")
    time.sleep(3.5)  # the late PATCH lands, and its deployment (if any) runs
    assert_alive(d)
    assert image_of(emu, "/staging/foo").endswith(":master-9")
    bodies = [json.loads(r["body"]) for r in patches(emu, "/staging/foo")]
    assert versions(emu, "/staging/foo") == 2, (
        "Marathon stored %d versions; deployed-at labels sent: %s" % (
            versions(emu, "/staging/foo"), [b["labels"]["autodeploy.deployed-at"] for b in bodies]))


# ------------------------------------------------------------------ 409 lock that clears

LOCKED = ("App is locked by one or more deployments. Override with the option '?force=true'. "
          "View details at '/v2/deployments/<DEPLOYMENT_ID>'.")


def test_409_lock_that_clears_is_waited_out(daemon, marathon):
    """Two 409s naming a deployment that /v2/deployments no longer lists (it ended between the
    two requests): autodeployd checks, sends again, deploys once, never with force."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.add_fault({"method": "PATCH", "path": "/v2/apps/staging/foo", "count": 2, "status": 409,
                   "body": {"message": LOCKED,
                            "deployments": [{"id": "5ed4c0c5-9ff8-4a6f-a0cd-f57f59a34b43"}]}})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-10")[0])
    deployed_once(emu, d, "/staging/foo", "master-10")
    mine = patches(emu, "/staging/foo")
    assert len(mine) == 3 and all("force" not in r["query"] for r in mine)
    assert [r for r in emu.get_requests() if r["path"] == "/v2/deployments"], "the lock was checked"
    assert "app locked by a running deployment; waiting for it" in log_msgs(d)
    assert_alive(d)


def test_409_lock_that_never_clears_ends_skipped_with_reason(daemon, marathon):
    """Someone else's deployment of the app hangs: the push gives up at --update-timeout,
    visibly, and never forces its way through nor touches the other deployment."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "hang", times=1)
    emu_call(emu, "PATCH", "/v2/apps/staging/foo", {"instances": 3})
    other = emu.list_deployments()[0]["id"]
    d = start_daemon(daemon, emu, "--update-timeout", "2s")
    d.post_event(push(tag="master-11")[0])
    rec = wait_terminal(d, "/staging/foo", timeout=10)[0]
    assert rec["state"] == "skipped", rec
    assert "locked" in rec["reason"] and "App is locked" in rec["reason"], rec
    assert "--update-timeout" in rec["reason"], rec
    assert all("force" not in r["query"] for r in patches(emu, "/staging/foo"))
    assert [x["id"] for x in emu.list_deployments()] == [other]  # still running, untouched
    assert not [r for r in emu.get_requests() if r["method"] == "DELETE"]
    assert image_of(emu, "/staging/foo") == IMG
    assert_alive(d)


# ------------------------------------------------------------------ 401 and 403

def test_401_on_update_fails_at_once_and_is_not_retried(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.add_fault({"method": "PATCH", "path": "/v2/apps/staging/foo", "count": 1, "status": 401,
                   "body": {"message": "Invalid username or password."},
                   "headers": {"WWW-Authenticate": "acsjwt"}})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-12")[0])
    rec = wait_terminal(d, "/staging/foo")[0]
    assert rec["state"] == "failed" and "401" in rec["reason"], rec
    assert len(patches(emu, "/staging/foo")) == 1
    assert versions(emu, "/staging/foo") == 1
    assert_alive(d)


def test_credentials_rotated_under_the_daemon(daemon, marathon):
    """Marathon starts requiring other credentials at run time: pushes fail visibly (push
    state failed, the log names the 401), nothing is written; once the credentials agree again
    the next push deploys. The password never reaches the log."""
    emu = marathon([app("/staging/foo", IMG)], http_credentials="deployer:old-pw-123")
    d = start_daemon(daemon, emu, "--marathon-user", "deployer",
                     env={"AUTODEPLOY_MARATHON_PASSWORD": "old-pw-123"})
    d.post_event(push(tag="master-13")[0])
    deployed_once(emu, d, "/staging/foo", "master-13")
    emu_call(emu, "PUT", "/_emu/config", {"http_credentials": "deployer:new-pw-456"})
    d.post_event(push(tag="master-14")[0])
    wait_for(lambda: [p for p in d.pushes() if p["tag"] == "master-14" and p["state"] == "failed"],
             timeout=8, what="push refused by the new credentials")
    errs = [r for r in d.logs() if r.get("msg") == "push not deployed: cannot list Marathon apps"]
    assert errs and "HTTP 401" in errs[-1]["error"]
    assert len(patches(emu, "/staging/foo")) == 1
    emu_call(emu, "PUT", "/_emu/config", {"http_credentials": "deployer:old-pw-123"})
    d.post_event(push(tag="master-15")[0])
    rec = wait_records(d, "/staging/foo", 2)[0]
    assert rec["tag"] == "master-15" and rec["state"] == "succeeded"
    assert versions(emu, "/staging/foo") == 3
    assert_alive(d)
    d.stop()
    assert "old-pw-123" not in d.log_text()


def test_403_too_many_deployments_is_retried_until_room(daemon, marathon):
    """Marathon runs --max_running_deployments 1 and another app's deployment holds the slot:
    the PATCH gets TooManyRunningDeploymentsException's 403 and is sent again until the slot
    frees, then deploys once."""
    emu = marathon([app("/staging/foo", IMG), app("/staging/busy", IMG, pattern="other/busy:*")],
                   max_deployments=1)
    emu.set_behaviour("/staging/busy", "hang", times=1)
    emu_call(emu, "PATCH", "/v2/apps/staging/busy", {"instances": 3})
    busy = emu.list_deployments()[0]["id"]
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-16")[0])
    wait_for(lambda: len(patches(emu, "/staging/foo")) >= 2, timeout=8,
             what="the PATCH refused and retried")
    wait_for(lambda: d.metrics().get('autodeploy_marathon_errors_total{status="403"}', 0) >= 2,
             what="the 403s counted")
    assert records(d, "/staging/foo")[0]["state"] not in ("failed", "skipped")
    emu.finish_deployment(busy, "success")
    rec = deployed_once(emu, d, "/staging/foo", "master-16")
    assert rec["state"] == "succeeded"
    assert_alive(d)


# ------------------------------------------------------------------ the event stream cut

def test_event_stream_cut_before_the_push_outcome_from_polling(daemon, marathon):
    """The stream is cut and refused (connections closed without an answer) for the whole
    deployment: its success is learnt by polling /v2/deployments; the stream comes back."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "succeed", seconds=1.0)
    d = start_daemon(daemon, emu)
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, what="stream up")
    emu.cut_streams(refuse_seconds=4, refuse_status=0)
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 0, what="stream down")
    d.post_event(push(tag="master-17")[0])
    deployed_once(emu, d, "/staging/foo", "master-17")
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, timeout=12,
             what="stream back")
    assert_alive(d)


def test_event_stream_cut_mid_deployment_outcome_known_promptly(daemon, marathon):
    """The stream is cut 0.1 s into a 1.5 s deployment and refused for 3 s: the
    deployment_success is published while no stream is attached, so it is lost. autodeployd
    must learn the outcome by polling (--poll-interval 300ms) soon after, not half a minute
    later: the record must be terminal within 8 s of the cut."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "succeed", seconds=1.5)
    d = start_daemon(daemon, emu)
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, what="stream up")
    d.post_event(push(tag="master-25")[0])
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/foo")),
             what="deployment running")
    time.sleep(0.1)
    emu.cut_streams(refuse_seconds=3, refuse_status=0)
    try:
        rec = wait_terminal(d, "/staging/foo", timeout=8)[0]
    finally:
        assert_alive(d)
    assert rec["state"] == "succeeded", rec
    assert versions(emu, "/staging/foo") == 2


def test_event_stream_cut_mid_deployment_failure_is_not_reported_as_success(daemon, marathon):
    """The stream is cut while the deployment runs and the deployment then fails (a task
    crashes, Marathon gives up: deployment_failed). Marathon keeps the new app definition (and
    version) when a deployment fails, so the poller cannot call the deployment a success just
    because it left /v2/deployments at the version autodeployd created."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "fail", seconds=1.5, message="Container exited with 1",
                      times=1)
    d = start_daemon(daemon, emu)
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, what="stream up")
    d.post_event(push(tag="master-18")[0])
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/foo")),
             what="deployment running")
    emu.cut_streams(refuse_seconds=5)
    rec = wait_terminal(d, "/staging/foo", timeout=10)[0]
    assert [e for e in emu.get_events() if e.get("eventType") == "deployment_failed"]
    assert_alive(d)
    assert rec["state"] == "failed", rec


# ------------------------------------------------------------------ a deployment that hangs

def test_hang_past_timeout_with_rollback_while_stream_is_down(daemon, marathon):
    """The deployment hangs and the stream is down the whole time: the timeout still fires
    (from polling), the hanging deployment is deleted once, Marathon rolls the app back, and
    the record says rolled_back with the reason."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "hang", times=1)
    d = start_daemon(daemon, emu, "--deploy-timeout", "2s", "--rollback-on-failure")
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, what="stream up")
    emu.cut_streams(refuse_seconds=8)
    d.post_event(push(tag="master-19")[0])
    rec = wait_terminal(d, "/staging/foo", timeout=10)[0]
    assert rec["state"] == "rolled_back" and "deploy-timeout" in rec["reason"], rec
    dels = [r for r in emu.get_requests() if r["method"] == "DELETE"]
    assert [r["path"] for r in dels] == ["/v2/deployments/" + rec["deployment_id"]]
    wait_for(lambda: image_of(emu, "/staging/foo") == IMG, what="previous image back")
    wait_for(lambda: emu.list_deployments() == [], what="the rollback deployment done")
    assert_alive(d)


def test_hang_past_timeout_rollback_refused_stays_timed_out(daemon, marathon):
    """The rollback itself fails (Marathon answers 500 to the DELETE): the record ends
    rollback_failed with the time-out as its reason, the log says the rollback failed, nothing
    is retried blindly."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "hang", times=1)
    emu.add_fault({"method": "DELETE", "path": "/v2/deployments/*", "count": 1, "status": 500,
                   "body": {"message": "leader lost"}})
    d = start_daemon(daemon, emu, "--deploy-timeout", "1500ms", "--rollback-on-failure")
    d.post_event(push(tag="master-20")[0])
    rec = wait_terminal(d, "/staging/foo", timeout=10)[0]
    assert rec["state"] == "rollback_failed" and "deploy-timeout" in rec["reason"], rec
    assert "refused" in rec["reason"], rec
    errs = [r for r in d.logs() if r.get("msg") == "rollback failed"]
    assert len(errs) == 1 and "leader lost" in errs[0]["error"]
    assert len([r for r in emu.get_requests() if r["method"] == "DELETE"]) == 1
    assert len(patches(emu, "/staging/foo")) == 1
    assert_alive(d)


def test_hang_then_next_push_is_not_blocked_forever(daemon, marathon):
    """A push waits behind a deployment that hangs past the timeout (no rollback): the first
    ends timed_out, the second then meets the app still locked by the hanging deployment and
    ends skipped with the lock as its reason. Both visible; one PATCH applied."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "hang", times=1)
    d = start_daemon(daemon, emu, "--deploy-timeout", "1500ms", "--update-timeout", "1500ms")
    d.post_event(push(tag="master-21", ts="2026-11-25T11:00:01Z")[0])
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/foo")),
             what="deployment running")
    d.post_event(push(tag="master-22", ts="2026-11-25T11:00:02Z")[0])
    recs = wait_terminal(d, "/staging/foo", n=2, timeout=12)
    by_tag = {r["tag"]: r for r in recs}
    assert by_tag["master-21"]["state"] == "timed_out"
    assert by_tag["master-22"]["state"] == "skipped" and "locked" in by_tag["master-22"]["reason"]
    assert versions(emu, "/staging/foo") == 2
    assert_alive(d)


# ------------------------------------------------------------------ the app deleted

def test_app_deleted_while_the_patch_is_in_flight(daemon, marathon):
    """The app is deleted after the re-read, while the PATCH travels (the emulator holds it
    1 s): Marathon answers 404 and the app is never re-created by a PUT or POST."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.add_fault({"method": "PATCH", "path": "/v2/apps/staging/foo", "count": 1, "delay": 1.0})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-23")[0])
    wait_for(lambda: patches(emu, "/staging/foo"), what="the PATCH")
    emu_call(emu, "DELETE", "/_emu/apps/staging/foo")
    rec = wait_terminal(d, "/staging/foo")[0]
    assert rec["state"] == "failed" and "never re-created" in rec["reason"], rec
    assert [r["method"] for r in writes(emu)] == ["PATCH"]
    assert emu_call(emu, "GET", "/_emu/apps")["apps"] == []
    assert_alive(d)


def test_app_destroyed_mid_deployment(daemon, marathon):
    """Someone destroys the app (DELETE /v2/apps, force) while autodeployd follows its
    deployment: the deployment is cancelled; the record ends failed with a reason, the app is
    not re-created."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "succeed", seconds=3)
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-24")[0])
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/foo")),
             what="deployment running")
    emu_call(emu, "DELETE", "/v2/apps/staging/foo?force=true")
    rec = wait_terminal(d, "/staging/foo", timeout=10)[0]
    assert rec["state"] == "failed" and rec["reason"], rec
    time.sleep(0.5)
    assert [r["method"] for r in writes(emu)] == ["PATCH", "DELETE"]
    assert emu_call(emu, "GET", "/_emu/apps")["apps"] == []
    assert_alive(d)
