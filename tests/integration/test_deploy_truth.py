"""Deployment truth (issue 11): what autodeployd concludes about a deployment must be what
Marathon really did, and what it writes must touch only what it changed.

One test (or a few variations) per fault of the issue, each with the issue's inputs, asserting
the behaviour contract of the deployer rewrite:
  1. a deployment cancelled by someone else is followed (forced scale) or reported `cancelled`
     (operator's DELETE, forced image change), never rolled back;
  2. a rollback PATCHes only `container` (old image) and `labels`, never instances / version /
     force, and keeps what others changed meanwhile;
  3. success is judged from lastConfigChangeAt and the tasks, not `version`: a later autoscale
     is no failure;
  4. among waiting pushes exactly one deploys (semver: the highest; else the newest);
  5. --deploy-timeout counts from Marathon's acceptance; waiting for a lock is bounded by
     --update-timeout;
  6. a deployment listed late is not "ended"; a rollback is `rolling_back` until its revert
     deployment ended (`rolled_back`) or did not (`rollback_failed`);
  7. every app a push matches is deployed (300 apps).

The evidence: autodeployd's records (/v1/deployments), the emulator's state, its request log
(who sent what: autodeployd's User-Agent is autodeployd/<version>) and its deployment history
(who created and who cancelled each deployment), and the Slack messages. Waits are on
conditions; the only sleeps place an operator's action "1 s into the rollout", as the issue's
inputs say.
"""
import copy
import datetime
import json
import time

import pytest

from conftest import wait_for
from deploy_helpers import (NON_TERMINAL, app, app_state, autodeployd_requests,  # noqa: F401
                            autodeployd_writes, deployments_by_autodeployd, emu_get, envelope,
                            marathon, operator_call, push, records, start_daemon,
                            wait_deployment_by_autodeployd, wait_records)
from faults_helpers import ADMIN, assert_alive, pause, resume

REGISTRY = "registry.example.com:5000/"
IMG1 = REGISTRY + "strava/foo:master-1"
IMG2 = REGISTRY + "strava/foo:master-2"
PATTERN = "strava/foo:master-*"
FOO = "/staging/foo"
HOOK = "/services/T000/B000/deploytruth"
FAILURE_WORDS = ("Failed", "Timed out", "Rolling back", "Rolled back", "Rollback")


# ---------------------------------------------------------------- helpers

def foo_app(app_id=FOO, image=IMG1, pattern=PATTERN, instances=1, **kw):
    return app(app_id, image, pattern=pattern, instances=instances, **kw)


def push_foo(tag="master-2", **kw):
    return push(repo="strava/foo", tag=tag, **kw)[0]


def with_slack(daemon, emu, sink, *args):
    return start_daemon(daemon, emu, "--slack-pushes", "none", *args,
                        env={"AUTODEPLOY_SLACK_WEBHOOK_URL": sink.url + HOOK})


def slack_texts(sink):
    return [m["json"]["text"] for m in sink.messages() if m["status"] == 200 and m.get("json")]


def slack_wait(sink, pred, what, timeout=10):
    """Waits for a Slack message whose text satisfies pred; returns the message (json)."""
    def found():
        for m in sink.messages():
            if m["status"] == 200 and m.get("json") and pred(m["json"]["text"]):
                return m
        return None
    return wait_for(found, timeout=timeout, what=what)


def sleep_until(t_wall):
    """Places an actor's step at a given moment of the scenario (an input of the issue's fault,
    e.g. "1 s into the rollout"); never used to wait for an outcome."""
    delay = t_wall - time.time()
    if delay > 0:
        time.sleep(delay)


def image(emu, app_id=FOO):
    return app_state(emu, app_id)["definition"]["container"]["docker"]["image"]


def marathon_app(emu, app_id=FOO):
    return emu_get(emu, "/v2/apps" + app_id)["app"]


def running_tasks(emu, app_id=FOO):
    return [t for t in app_state(emu, app_id)["tasks"] if t["state"] == "TASK_RUNNING"]


def idle(emu):
    return emu.list_deployments(include_unlisted=True) == []


def methods(reqs):
    return [r["method"] for r in reqs]


def rfc3339(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def assert_only_ours_cancelled(emu, ours):
    """The only deployment a write ended is ours (by the operator): autodeployd cancelled
    nobody's deployment."""
    gone = emu.cancellations()
    others = [c for c in gone if c["deployment"] != ours]
    assert not others, "deployments cancelled besides ours: %s" % [
        (c["deployment"], c["created_by"].get("user_agent"), "cancelled by",
         c["cancelled_by"].get("user_agent"), c["cancelled_by"].get("method"),
         c["cancelled_by"].get("raw_path")) for c in others]
    assert [c["deployment"] for c in gone] == [ours]


def assert_no_write_after_the_patch(emu, app_id=FOO):
    ws = autodeployd_writes(emu, app_id)
    assert methods(ws) == ["PATCH"], (
        "autodeployd wrote after its PATCH: %s" % [(r["method"], r["raw_path"], r["body"]) for r in ws])
    return ws[0]


# ---------------------------------------------------------------- 1. cancelled by someone else

@pytest.mark.parametrize("rollback", [False, True], ids=["plain", "rollback-on-failure"])
def test_operator_forced_scale_mid_rollout_is_followed_to_success(daemon, marathon, slack, rollback):
    """Fault 1: /staging/foo on master-1, 1 instance; our rollout to master-2 takes 3 s; 1 s in,
    an operator sends PUT ?force=true {"instances":3}. Marathon cancels our deployment
    (deployment_failed, "The upgrade has been cancelled") and starts the operator's, which
    keeps our image. Right: autodeployd follows that deployment; the record ends succeeded
    (naming the operator's deployment) when it really ended; no write after the PATCH, with or
    without --rollback-on-failure."""
    emu = marathon([foo_app()], deploy_seconds=1.0)
    emu.set_behaviour(FOO, "succeed", seconds=3, times=1)
    d = with_slack(daemon, emu, slack, *(["--rollback-on-failure"] if rollback else []))
    d.post_event(push_foo("master-2"))
    ours = wait_deployment_by_autodeployd(emu, FOO)
    sleep_until(ours["created_time"] + 1.0)
    theirs = operator_call(emu, "PUT", "/v2/apps/staging/foo?force=true", {"instances": 3})["deploymentId"]
    assert emu.deployment_record(ours["id"])["replaced_by"] == theirs

    rec = wait_records(d, FOO, timeout=15)[0]
    theirs_now = emu.deployment_record(theirs)
    assert rec["state"] == "succeeded", rec
    assert theirs_now["result"] == "success", (
        "the record says succeeded while the operator's deployment is %s" % theirs_now["result"])
    assert theirs in (rec["reason"] or ""), "the reason should name the deployment that completed it: %r" % rec
    assert rec["deployment_id"] == ours["id"] and rec.get("rollback_deployment_id") is None, rec
    assert_no_write_after_the_patch(emu)
    a = marathon_app(emu)
    assert a["container"]["docker"]["image"] == IMG2 and a["instances"] == 3 and a["tasksRunning"] == 3, a
    assert len(deployments_by_autodeployd(emu, FOO)) == 1
    assert_only_ours_cancelled(emu, ours["id"])
    done = slack_wait(slack, lambda t: t.startswith("Deployed"), "the Deployed message")
    assert not [t for t in slack_texts(slack) if t.startswith(FAILURE_WORDS)], slack_texts(slack)
    assert "master-2" in done["json"]["text"]
    assert_alive(d)


@pytest.mark.parametrize("rollback", [False, True], ids=["plain", "rollback-on-failure"])
def test_operator_delete_of_our_deployment_ends_cancelled(daemon, marathon, slack, rollback):
    """Fault 1, second half: 1 s into our 3 s rollout an operator DELETEs our deployment
    (Marathon's revert: the app goes back to master-1). Right: record `cancelled`, reason
    "cancelled by another writer" naming the image the app runs now; no rollback of ours and
    no write at all after the PATCH."""
    emu = marathon([foo_app()], deploy_seconds=1.0)
    emu.set_behaviour(FOO, "succeed", seconds=3, times=1)
    d = with_slack(daemon, emu, slack, *(["--rollback-on-failure"] if rollback else []))
    d.post_event(push_foo("master-2"))
    ours = wait_deployment_by_autodeployd(emu, FOO)
    sleep_until(ours["created_time"] + 1.0)
    revert = operator_call(emu, "DELETE", "/v2/deployments/" + ours["id"])["deploymentId"]

    rec = wait_records(d, FOO, timeout=15)[0]
    assert rec["state"] == "cancelled", rec
    assert "cancelled by another writer" in rec["reason"], rec
    assert "strava/foo:master-1" in rec["reason"], "the reason names the image the app runs now: %r" % rec
    assert rec.get("rollback_deployment_id") is None, rec
    wait_for(lambda: emu.deployment_record(revert)["result"] != "running", what="the operator's revert done")
    assert_only_ours_cancelled(emu, ours["id"])
    assert emu.deployment_record(revert)["result"] == "success"
    assert image(emu) == IMG1
    assert [t["state"] for t in app_state(emu, FOO)["tasks"]] == ["TASK_RUNNING"]
    assert_no_write_after_the_patch(emu)
    msg = slack_wait(slack, lambda t: "cancelled" in t.lower(), "the cancelled message")
    assert "master-1" in json.dumps(msg["json"])
    assert not [t for t in slack_texts(slack) if t.startswith(("Rolling back", "Rolled back", "Failed"))]
    assert_alive(d)


def test_operator_forced_image_change_mid_rollout_ends_cancelled(daemon, marathon):
    """Fault 1, variation: the operator's forced write puts another image (a hotfix) while our
    rollout runs. The app no longer carries our image: `cancelled`, naming the hotfix image;
    the operator's deployment is neither rolled back nor touched."""
    emu = marathon([foo_app()], deploy_seconds=1.0)
    emu.set_behaviour(FOO, "succeed", seconds=3, times=1)
    d = start_daemon(daemon, emu, "--rollback-on-failure")
    d.post_event(push_foo("master-2"))
    ours = wait_deployment_by_autodeployd(emu, FOO)
    sleep_until(ours["created_time"] + 1.0)
    container = copy.deepcopy(app_state(emu, FOO)["definition"]["container"])
    container["docker"]["image"] = REGISTRY + "strava/foo:hotfix-7"
    theirs = operator_call(emu, "PUT", "/v2/apps/staging/foo?force=true",
                           {"container": container})["deploymentId"]
    rec = wait_records(d, FOO, timeout=15)[0]
    assert rec["state"] == "cancelled", rec
    assert "cancelled by another writer" in rec["reason"] and "hotfix-7" in rec["reason"], rec
    wait_for(lambda: emu.deployment_record(theirs)["result"] != "running", what="the hotfix deployment done")
    assert_only_ours_cancelled(emu, ours["id"])
    assert image(emu).endswith(":hotfix-7")
    assert_no_write_after_the_patch(emu)


# ---------------------------------------------------------------- 2. the rollback's body

def test_rollback_patches_only_container_and_labels(daemon, marathon):
    """Fault 2: our deployment fails (the emulator's `fail`). The rollback is one PATCH without
    force whose body is exactly {container: the app's container with the old image, labels:
    the app's labels with the autodeploy.* keys as they were before} — never `instances`,
    never `version` (which restores every field of the old version)."""
    before_labels = {"autodeploy.digest": "sha256:" + "0" * 64, "autodeploy.pushed-by": "bob",
                     "owner": "payments"}
    emu = marathon([foo_app(labels=before_labels)], deploy_seconds=0.3)
    original = app_state(emu, FOO)["definition"]
    emu.set_behaviour(FOO, "fail", seconds=0.5, message="Container exited with 1", times=1)
    d = start_daemon(daemon, emu, "--rollback-on-failure")
    d.post_event(push_foo("master-2"))
    rec = wait_records(d, FOO, timeout=15)[0]
    ws = autodeployd_writes(emu, FOO)
    assert methods(ws) == ["PATCH", "PATCH"], [(r["method"], r["raw_path"], r["body"]) for r in ws]
    ours, rollback = ws
    assert rollback["path"] == "/v2/apps/staging/foo" and "force" not in rollback["query"], rollback["raw_path"]
    body = json.loads(rollback["body"])
    assert set(body) == {"container", "labels"}, body
    assert body["container"] == original["container"], "the app's container, only the image put back"
    mine = json.loads(ours["body"])["labels"]
    want = {k: v for k, v in mine.items() if not k.startswith("autodeploy.")}
    want.update({k: v for k, v in original["labels"].items() if k.startswith("autodeploy.")})
    assert body["labels"] == want, body["labels"]
    assert rec["state"] == "rolled_back", rec
    assert rec.get("rollback_deployment_id") == rollback["deployment_created"], rec
    st = app_state(emu, FOO)
    assert st["definition"]["container"]["docker"]["image"] == IMG1
    assert st["definition"]["labels"]["autodeploy.digest"] == before_labels["autodeploy.digest"]
    assert idle(emu)


def test_rollback_keeps_a_scale_made_after_the_failure(daemon, marathon):
    """Fault 2, the window made deterministic: our deployment fails; autodeployd's re-read of
    the app is held 2 s by the emulator (a fault armed by our deployment_failed, for
    autodeployd's User-Agent only); meanwhile an operator scales the app to 3 (the image is
    broken: that scale fails too). The rollback must put master-1 back on 3 instances: what the
    operator changed survives (a PUT {"version": old} would bring back 1 instance)."""
    emu = marathon([foo_app()], deploy_seconds=0.3)
    emu.set_behaviour(FOO, "fail", seconds=1.0, message="Container exited with 1", times=2)
    d = start_daemon(daemon, emu, "--rollback-on-failure")
    d.post_event(push_foo("master-2"))
    ours = wait_deployment_by_autodeployd(emu, FOO)
    hold = emu.add_fault({"method": "GET", "path_regex": r"^/v2/apps(/staging/foo)?$",
                          "user_agent": "autodeployd/", "after_event": "deployment_failed",
                          "after_event_id": ours["id"], "delay": 2.0})

    def reread_or_wrote():
        if hold.hits:
            return "re-read"
        return "wrote" if len(autodeployd_writes(emu, FOO)) > 1 else None
    seen = wait_for(reread_or_wrote, timeout=10, what="autodeployd's re-read after the failure")
    assert seen == "re-read", ("autodeployd rolled back without re-reading the app: %s"
                               % [(r["method"], r["raw_path"], r["body"]) for r in autodeployd_writes(emu, FOO)])
    scale = operator_call(emu, "PUT", "/v2/apps/staging/foo", {"instances": 3},
                          user_agent="autoscaler/1.0")["deploymentId"]
    rec = wait_records(d, FOO, timeout=15)[0]
    assert emu.deployment_record(scale)["result"] != "running"
    ws = autodeployd_writes(emu, FOO)
    assert methods(ws) == ["PATCH", "PATCH"], [(r["method"], r["raw_path"], r["body"]) for r in ws]
    body = json.loads(ws[1]["body"])
    assert set(body) == {"container", "labels"} and "force" not in ws[1]["query"], ws[1]
    assert rec["state"] == "rolled_back", rec
    wait_for(lambda: idle(emu), what="the rollback deployment done")
    a = marathon_app(emu)
    assert a["container"]["docker"]["image"] == IMG1
    assert a["instances"] == 3 and a["tasksRunning"] == 3, "the operator's scale was undone: %r" % a


# ---------------------------------------------------------------- 3. success is not `version`

def test_autoscale_after_the_rollout_is_not_a_failure(daemon, marathon):
    """Fault 3: the event stream is cut (refused) while master-2 rolls out (1 s); right after
    the rollout an autoscaler sends PUT {"instances":2} (no force), which changes the app's
    `version` but not lastConfigChangeAt. --poll-interval 3s --rollback-on-failure. Right:
    succeeded, no rollback, 2 instances on master-2; the polls honour --poll-interval."""
    emu = marathon([foo_app()], deploy_seconds=0.3)
    emu.set_behaviour(FOO, "succeed", seconds=1.0, times=1)
    d = start_daemon(daemon, emu, "--poll-interval", "3s", "--rollback-on-failure")
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, what="stream up")
    emu.cut_streams(refuse_seconds=15, refuse_status=0)
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 0, what="stream down")
    d.post_event(push_foo("master-2"))
    ours = wait_deployment_by_autodeployd(emu, FOO)
    wait_for(lambda: emu.deployment_record(ours["id"])["result"] != "running", timeout=5, what="our rollout")
    assert emu.deployment_record(ours["id"])["result"] == "success"
    scale = operator_call(emu, "PUT", "/v2/apps/staging/foo", {"instances": 2},
                          user_agent="autoscaler/1.0")["deploymentId"]
    scaled_at = emu.deployment_record(scale)["created_time"]
    rec = wait_records(d, FOO, timeout=20)[0]
    assert rec["state"] == "succeeded", rec
    assert rfc3339(rec["ended_at"]) >= scaled_at, "the outcome was known before the autoscale: not this fault"
    patch = assert_no_write_after_the_patch(emu)
    wait_for(lambda: emu.deployment_record(scale)["result"] == "success", what="the autoscale done")
    a = marathon_app(emu)
    assert a["container"]["docker"]["image"] == IMG2 and a["instances"] == 2 and a["tasksRunning"] == 2, a
    assert a["versionInfo"]["lastConfigChangeAt"] == ours["version"] != a["version"]
    # Polls honour --poll-interval: no more than one per 3 s (plus the first and a re-read).
    polls = [r for r in autodeployd_requests(emu, "GET", "/v2/deployments")
             if r["seq"] > patch["seq"] and r["time"] <= rfc3339(rec["ended_at"])]
    span = rfc3339(rec["ended_at"]) - patch["time"]
    assert len(polls) <= span / 3.0 + 2, (len(polls), span)


# ---------------------------------------------------------------- 4. one deployment per app

def api_app():
    return app("/prod/api", REGISTRY + "strava/api:1.1.0", pattern="semver:strava/api:^1", instances=1)


def pushes_settled(d):
    """Every push was matched (or not) and every record ended: nothing more will happen."""
    ps = d.pushes()
    return bool(ps) and all(p["state"] in ("dispatched", "no match", "failed") for p in ps) and \
        all(r["state"] not in NON_TERMINAL for r in records(d))


def assert_only_120_deployed(emu, d):
    patches = autodeployd_writes(emu, "/prod/api")
    images = [json.loads(r["body"])["container"]["docker"]["image"] for r in patches]
    assert images == [REGISTRY + "strava/api:1.2.0"], "autodeployd deployed %s" % images
    assert image(emu, "/prod/api").endswith(":1.2.0")
    by_tag = {r["tag"]: r for r in records(d, "/prod/api")}
    assert by_tag["1.2.0"]["state"] == "succeeded", by_tag
    late = by_tag.get("1.1.9")
    if late is not None:
        assert late["state"] in ("superseded", "skipped"), late
        if late["state"] == "skipped":
            assert "older" in late["reason"], late


def test_semver_one_envelope_deploys_only_the_highest(daemon, marathon):
    """Fault 4: /prod/api on strava/api:1.1.0, label semver:strava/api:^1; one envelope
    carries 1.2.0 (10:00:00Z) then 1.1.9 (10:00:30Z). Right: one deployment, to 1.2.0; 1.1.9
    (newer by timestamp, lower by version) is never deployed: superseded."""
    emu = marathon([api_app()], deploy_seconds=0.5)
    d = start_daemon(daemon, emu)
    _, high = push(repo="strava/api", tag="1.2.0", ts="2026-11-25T10:00:00Z")
    _, low = push(repo="strava/api", tag="1.1.9", ts="2026-11-25T10:00:30Z")
    assert d.post_event(envelope(high, low)).json()["accepted"] == 2
    # The dispatcher may take 1.2.0 alone (the envelope's pushes are queued one by one) and
    # list the apps again for 1.1.9 after the job for 1.2.0 has written the app: then 1.1.9 is
    # below what the app runs and matches nothing, and has no record. Either way both pushes
    # end and only 1.2.0 deploys.
    wait_for(lambda: len(d.pushes()) == 2 and pushes_settled(d) and
             any(r["tag"] == "1.2.0" for r in records(d, "/prod/api")), timeout=15,
             what="both pushes ended")
    assert_only_120_deployed(emu, d)


def test_semver_two_envelopes_never_deploy_the_lower(daemon, marathon):
    """Fault 4, variation: the same two pushes in two envelopes. The emulator holds
    autodeployd's PATCH for 1.2.0 for 1 s, so the second envelope is matched while the app
    still runs 1.1.0 (1.1.9 is in range and newer than that): 1.1.9 then waits behind 1.2.0
    and must end superseded or skipped as older; never deployed over 1.2.0."""
    emu = marathon([api_app()], deploy_seconds=0.5)
    held = emu.add_fault({"method": "PATCH", "path": "/v2/apps/prod/api", "user_agent": "autodeployd/",
                          "delay": 1.0})
    d = start_daemon(daemon, emu)
    body_high, _ = push(repo="strava/api", tag="1.2.0", ts="2026-11-25T10:00:00Z")
    body_low, _ = push(repo="strava/api", tag="1.1.9", ts="2026-11-25T10:00:30Z")
    d.post_event(body_high)
    wait_for(lambda: held.hits, what="the PATCH for 1.2.0 held")
    d.post_event(body_low)
    wait_for(lambda: len(autodeployd_requests(emu, "GET", "/v2/apps")) == 2, what="the second listing")
    assert image(emu, "/prod/api").endswith(":1.1.0"), "the second push was matched against 1.1.0"
    wait_for(lambda: len(records(d, "/prod/api")) == 2 and pushes_settled(d), timeout=15,
             what="both pushes ended")
    assert_only_120_deployed(emu, d)


def test_paused_burst_deploys_only_the_newest(daemon, marathon):
    """Fault 4, variation: paused, three pushes main-1, main-2, main-3 for one app, resumed.
    Right: exactly one deployment, main-3; main-1 and main-2 superseded."""
    emu = marathon([foo_app(image=REGISTRY + "strava/foo:main-0", pattern="strava/foo:main-*")],
                   deploy_seconds=0.3)
    d = start_daemon(daemon, emu, "--admin-token", ADMIN)
    pause(d)
    for n in (1, 2, 3):
        assert d.post_event(push_foo(f"main-{n}")).json()["accepted"] == 1
    resume(d)
    wait_for(lambda: len(records(d, FOO)) == 3 and pushes_settled(d), timeout=15, what="three records ended")
    by_tag = {r["tag"]: r["state"] for r in records(d, FOO)}
    assert by_tag == {"main-1": "superseded", "main-2": "superseded", "main-3": "succeeded"}, by_tag
    patches = autodeployd_writes(emu, FOO)
    assert [json.loads(r["body"])["container"]["docker"]["image"] for r in patches] == \
        [REGISTRY + "strava/foo:main-3"]


# ---------------------------------------------------------------- 5. timeouts

def slow_app_with_lock(marathon, lock_seconds=5):
    """/staging/slow, locked for lock_seconds by an operator's env change (5 s deployment);
    autodeployd's own rollout will take 4 s."""
    emu = marathon([foo_app("/staging/slow")], deploy_seconds=0.3)
    emu.set_behaviour("/staging/slow", "succeed", seconds=lock_seconds, times=1)
    other = operator_call(emu, "PATCH", "/v2/apps/staging/slow", {"env": {"FEATURE": "on"}})["deploymentId"]
    emu.set_behaviour("/staging/slow", "succeed", seconds=4)
    return emu, other


def test_deploy_timeout_counts_from_acceptance(daemon, marathon):
    """Fault 5: another deployment holds /staging/slow for 5 s, our rollout takes 4 s,
    --deploy-timeout 7s --rollback-on-failure. 9 s from the push, but 4 s from Marathon's
    acceptance: succeeded, no rollback; update_started_at is when Marathon accepted it."""
    emu, other = slow_app_with_lock(marathon)
    d = start_daemon(daemon, emu, "--deploy-timeout", "7s", "--rollback-on-failure")
    d.post_event(push_foo("master-2"))
    rec = wait_records(d, "/staging/slow", timeout=25)[0]
    assert rec["state"] == "succeeded", rec
    ws = autodeployd_writes(emu, "/staging/slow")
    assert set(methods(ws)) == {"PATCH"} and all("force" not in r["query"] for r in ws), ws
    accepted = [r for r in ws if r["status"] == 200]
    assert len(accepted) == 1 and all(r["status"] == 409 for r in ws if r not in accepted)
    assert emu.deployment_record(other)["result"] == "success"          # waited for, not cancelled
    st = app_state(emu, "/staging/slow")["definition"]
    assert st["container"]["docker"]["image"] == IMG2 and st["env"] == {"FEATURE": "on"}
    assert rec.get("update_started_at"), rec
    assert abs(rfc3339(rec["update_started_at"]) - accepted[0]["time"]) < 1.0, rec


def test_update_timeout_bounds_the_wait_for_a_lock(daemon, marathon):
    """Fault 5, variation: --update-timeout 2s with the same 5 s lock: the push gives up while
    the other deployment still runs: skipped, the reason names --update-timeout; no accepted
    write, no force, the other deployment untouched."""
    emu, other = slow_app_with_lock(marathon)
    d = start_daemon(daemon, emu, "--update-timeout", "2s", "--deploy-timeout", "30s")
    d.post_event(push_foo("master-2"))
    rec = wait_records(d, "/staging/slow", timeout=10)[0]
    assert emu.deployment_record(other)["result"] == "running", "gave up after the lock cleared"
    assert rec["state"] == "skipped" and "--update-timeout" in rec["reason"], rec
    ws = autodeployd_writes(emu, "/staging/slow")
    assert all(r["method"] == "PATCH" and r["status"] == 409 and "force" not in r["query"] for r in ws), ws
    assert image(emu, "/staging/slow") == IMG1
    wait_for(lambda: emu.deployment_record(other)["result"] == "success", what="the other deployment done")


# ---------------------------------------------------------------- 6. late listing, rolling back

@pytest.mark.parametrize("rollout", [2.5, 0.5], ids=["listed-late", "never-listed"])
def test_deployment_listed_late_is_not_taken_for_ended(daemon, marathon, rollout):
    """Fault 6a: Marathon lists a deployment 1.5 s after accepting it; the stream is down, so
    autodeployd polls (300 ms). An id never seen listed is not "ended". Rollout 2.5 s: it shows
    up, then ends. Rollout 0.5 s: it is never listed; it ends when the app lists no deployment
    and its tasks converged. Both: succeeded, not failed, no rollback."""
    emu = marathon([foo_app()], deploy_seconds=0.3, list_delay_seconds=1.5)
    emu.set_behaviour(FOO, "succeed", seconds=rollout, times=1)
    d = start_daemon(daemon, emu, "--rollback-on-failure")
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, what="stream up")
    emu.cut_streams(refuse_seconds=20, refuse_status=0)
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 0, what="stream down")
    d.post_event(push_foo("master-2"))
    ours = wait_deployment_by_autodeployd(emu, FOO)
    rec = wait_records(d, FOO, timeout=15)[0]
    assert rec["state"] == "succeeded", rec
    assert emu.deployment_record(ours["id"])["result"] == "success", "succeeded before Marathon said so"
    assert_no_write_after_the_patch(emu)
    a = marathon_app(emu)
    assert a["container"]["docker"]["image"] == IMG2 and a["tasksRunning"] == 1
    assert {t["version"] for t in a["tasks"]} == {ours["version"]}


def our_revert(emu):
    """The revert deployment Marathon started for autodeployd's DELETE (accepted)."""
    dels = [r for r in autodeployd_requests(emu, "DELETE", "/v2/deployments/*") if r["status"] == 200]
    return dels[0]["deployment_created"] if dels else None


def test_timed_out_rollback_is_rolling_back_until_the_revert_ends(daemon, marathon, slack):
    """Fault 6b: --rollback-on-failure; our deployment hangs past --deploy-timeout 2s; the
    DELETE is accepted and Marathon's revert takes 1.5 s (within the timeout, which the revert
    gets too). Right: Slack says "Rolling back" (with the revert's id) once the DELETE is
    accepted, the record is rolling_back while the revert runs, and rolled_back (and the
    Rolled back message) only after it ended."""
    emu = marathon([foo_app()], deploy_seconds=0.3)
    emu.set_behaviour(FOO, "hang", times=1)
    emu.set_rollback_behaviour(FOO, "succeed", seconds=1.5)
    d = with_slack(daemon, emu, slack, "--deploy-timeout", "2s", "--rollback-on-failure")
    d.post_event(push_foo("master-2"))
    ours = wait_deployment_by_autodeployd(emu, FOO)
    revert = wait_for(lambda: our_revert(emu), timeout=8, what="autodeployd's DELETE accepted")
    assert autodeployd_requests(emu, "DELETE", "/v2/deployments/*")[0]["path"] == "/v2/deployments/" + ours["id"]
    rec = wait_for(lambda: [r for r in records(d, FOO)
                            if r["state"] not in ("queued", "updating", "locked", "deploying")],
                   timeout=1, what="the record past deploying")[0]
    assert emu.deployment_record(revert)["result"] == "running"
    assert rec["state"] == "rolling_back", rec
    assert rec.get("rollback_deployment_id") == revert, rec
    msg = slack_wait(slack, lambda t: t.startswith("Rolling back"), "the Rolling back message", timeout=1)
    assert revert in json.dumps(msg["json"]) and "master-1" in msg["json"]["text"]
    assert emu.deployment_record(revert)["result"] == "running", "Rolling back came after the revert"
    assert not [t for t in slack_texts(slack) if t.startswith("Rolled back")]

    rec = wait_records(d, FOO, timeout=10)[0]
    assert rec["state"] == "rolled_back", rec
    end = emu.deployment_record(revert)
    assert end["result"] == "success" and end["ended_time"] <= rfc3339(rec["ended_at"]) + 0.01, (end, rec)
    done = slack_wait(slack, lambda t: t.startswith("Rolled back"), "the Rolled back message")
    assert done["time"] >= end["ended_time"]
    assert image(emu) == IMG1 and idle(emu)
    assert methods(autodeployd_writes(emu, FOO)) == ["PATCH", "DELETE"]


def test_revert_that_hangs_ends_rollback_failed(daemon, marathon, slack):
    """Fault 6b, variation: the revert deployment hangs (no offers). Right: rollback_failed
    after --deploy-timeout counted from the revert's acceptance; the reason and the Slack
    message say it needs a hand; nothing forced, nothing else written."""
    emu = marathon([foo_app()], deploy_seconds=0.3)
    emu.set_behaviour(FOO, "hang", times=1)
    emu.set_rollback_behaviour(FOO, "hang")
    d = with_slack(daemon, emu, slack, "--deploy-timeout", "1500ms", "--rollback-on-failure")
    d.post_event(push_foo("master-2"))
    revert = wait_for(lambda: our_revert(emu), timeout=8, what="autodeployd's DELETE accepted")
    accepted_at = autodeployd_requests(emu, "DELETE", "/v2/deployments/*")[0]["time"]
    rec = wait_records(d, FOO, timeout=12)[0]
    assert rec["state"] == "rollback_failed", rec
    assert "needs a hand" in rec["reason"], rec
    assert rfc3339(rec["ended_at"]) - accepted_at >= 1.4, "gave up on the revert before --deploy-timeout"
    assert emu.deployment_record(revert)["result"] == "running"
    slack_wait(slack, lambda t: "needs a hand" in t, "the rollback_failed message")
    assert not [t for t in slack_texts(slack) if t.startswith("Rolled back")]
    ws = autodeployd_writes(emu, FOO)
    assert methods(ws) == ["PATCH", "DELETE"] and all("force" not in r["query"] for r in ws), ws


# ---------------------------------------------------------------- 7. every matching app

def test_a_push_matching_300_apps_deploys_all_300(daemon, marathon):
    """A push whose pattern 300 apps carry: every one is deployed, once (no 256 limit)."""
    ids = [f"/fleet/svc{i:03d}" for i in range(300)]
    emu = marathon([foo_app(i) for i in ids], deploy_seconds=0.05, max_deployments=1000)
    d = start_daemon(daemon, emu, "--deploy-workers", "16")
    d.post_event(push_foo("master-2"))

    wait_for(lambda: pushes_settled(d) and idle(emu), timeout=60, what="the push's jobs all ended")
    ws = autodeployd_writes(emu)
    missing = sorted(set("/v2/apps" + i for i in ids) - {r["path"] for r in ws})
    assert not missing, "%d of 300 apps never deployed, e.g. %s" % (len(missing), missing[:3])
    assert len(ws) == 300 and all(r["method"] == "PATCH" for r in ws)
    apps = emu_get(emu, "/_emu/apps")["apps"]
    assert all(a["definition"]["container"]["docker"]["image"] == IMG2 for a in apps)
    assert all(r["state"] == "succeeded" for r in records(d)), \
        [r for r in records(d) if r["state"] != "succeeded"][:3]
    assert_alive(d)
