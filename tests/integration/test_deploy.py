"""The deployer against the stateful Marathon emulator: each numbered point of the deploy
issue and each Marathon API fact the deployer must respect."""
import copy
import json
import os
import time

from conftest import FIXTURES, wait_for
from deploy_helpers import (app, app_state, digest, emu_call, marathon, push, records,  # noqa: F401
                            start_daemon, wait_records, writes)

IMG = "registry.example.com:5000/strava/foo-service:master-1"


def test_push_deploys_full_container_and_labels(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG), app("/staging/other", IMG, pattern="strava/bar:*")])
    d = start_daemon(daemon, emu)
    body, ev = push(tag="master-2", pusher="alice")
    assert d.post_event(body).status == 202
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "succeeded", rec
    assert rec["old_image"] == IMG
    # The registry host the app uses is kept, the pushed repository:tag is taken.
    assert rec["new_image"] == "registry.example.com:5000/strava/foo-service:master-2"
    assert rec["deployment_id"] and rec["duration_s"] >= 0

    # The listing used the label selector; only the matching app was written.
    lists = [r for r in emu.get_requests() if r["method"] == "GET" and r["path"] == "/v2/apps"]
    assert lists and lists[0]["query"]["label"] == ["autodeploy"]
    w = writes(emu)
    assert [(r["method"], r["path"]) for r in w] == [("PATCH", "/v2/apps/staging/foo")]
    sent = json.loads(w[0]["body"])
    assert set(sent) == {"container", "labels"}  # never instances, never version
    want = copy.deepcopy(app("/staging/foo", IMG)["container"])
    want["docker"]["image"] = rec["new_image"]
    assert sent["container"] == want  # portMappings, parameters, volumes... all kept
    labels = sent["labels"]
    assert labels["team"] == "payments" and labels["autodeploy"] == "strava/foo-service:master*"
    assert labels["autodeploy.digest"] == ev["target"]["digest"]
    assert labels["autodeploy.pushed-by"] == "alice"
    assert labels["autodeploy.pushed-at"] == ev["timestamp"]
    assert labels["autodeploy.deployed-at"].endswith("Z")

    state = app_state(emu, "/staging/foo")["definition"]
    assert state["container"] == want and state["instances"] == 2
    assert not records(d, "/staging/other")

    # The next push records what ran before it, image and digest (the digest from our label;
    # unknown before the first deploy).
    assert rec["old_digest"] is None
    d.post_event(push(tag="master-3")[0])
    rec2 = wait_records(d, "/staging/foo", n=2)[0]
    assert rec2["tag"] == "master-3" and rec2["state"] == "succeeded", rec2
    assert rec2["old_image"] == rec["new_image"]
    assert rec2["old_digest"] == ev["target"]["digest"]


def test_real_app_shapes_round_trip(daemon, marathon):
    """Legacy Docker, 1.5+ networks, UCR (MESOS) and odd real definitions keep every field."""
    names = ["11_mlb-docker-bridge-mixed.json", "13_mlb-nginx-1.5.json",
             "07_private-ucr-pullconfig.json", "10_docker-volumes-misplaced-forcepull.json",
             "21_odile-haproxy-empty-labels.json"]
    apps = []
    for i, name in enumerate(names):
        with open(os.path.join(FIXTURES, "marathon", "real_apps", name)) as f:
            a = json.load(f)
        a = a.get("app", a)
        a["id"] = f"/shapes/app{i}"
        a.setdefault("labels", {})
        a["labels"] = dict(a["labels"] or {}, autodeploy=f"shapes/app{i}:*")
        a["container"]["docker"]["image"] = f"registry.example.com/shapes/app{i}:old"
        apps.append(a)
    emu = marathon(apps)
    before = {a["id"]: app_state(emu, a["id"])["definition"] for a in apps}
    d = start_daemon(daemon, emu)
    for i in range(len(names)):
        d.post_event(push(repo=f"shapes/app{i}", tag="new")[0])
    for a in apps:
        rec = wait_records(d, a["id"])[0]
        assert rec["state"] == "succeeded", rec
        after = app_state(emu, a["id"])["definition"]
        expect = copy.deepcopy(before[a["id"]])
        expect["container"]["docker"]["image"] = f"registry.example.com{a['id']}:new"
        for k in ("container", "labels"):
            got = copy.deepcopy(after[k])
            if k == "labels":
                got = {x: y for x, y in got.items() if not x.startswith("autodeploy.")}
                assert got == expect["labels"]
            else:
                assert got == expect["container"], a["id"]
        for k, v in before[a["id"]].items():
            if k not in ("container", "labels", "version", "versionInfo"):
                assert after.get(k) == v, (a["id"], k)


def test_duplicate_delivery_and_second_replica_deploy_once(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    d1 = start_daemon(daemon, emu)
    d2 = start_daemon(daemon, emu)
    body, _ = push(tag="master-7")
    for _ in range(3):
        d1.post_event(body)  # the registry re-sending after a timeout
    assert wait_records(d1, "/staging/foo")[0]["state"] == "succeeded"
    d2.post_event(body)  # another replica gets the same event
    rec = wait_records(d2, "/staging/foo")[0]
    assert rec["state"] == "unchanged", rec
    assert len(writes(emu, "/staging/foo")) == 1


def test_mutable_tag_repush_rolls_new_digest_same_digest_does_nothing(daemon, marathon):
    emu = marathon([app("/staging/foo", "registry.example.com/strava/foo-service:master",
                        pattern="strava/foo-service:master")])
    d = start_daemon(daemon, emu)
    a, b = digest("A"), digest("B")
    d.post_event(push(tag="master", dig=a)[0])
    wait_records(d, "/staging/foo", 1)
    d.post_event(push(tag="master", dig=b)[0])
    recs = wait_records(d, "/staging/foo", 2)
    assert [r["state"] for r in recs] == ["succeeded", "succeeded"]
    patches = writes(emu, "/staging/foo")
    assert len(patches) == 2
    second = json.loads(patches[1]["body"])
    # Same image string: the changed digest label restarts the app and forces a pull.
    assert second["container"]["docker"]["image"] == "registry.example.com/strava/foo-service:master"
    assert second["container"]["docker"]["forcePullImage"] is True
    assert second["labels"]["autodeploy.digest"] == b
    steps = [e for e in emu.get_events() if e.get("eventType") == "deployment_success"]
    assert len(steps) == 2
    # A re-push of the digest the app already runs deploys nothing (new event id, new daemon
    # memory, so only Marathon's state can tell).
    d.post_event(push(tag="master", dig=b, event_id="11111111-2222-4333-8444-555555555555")[0])
    time.sleep(1)
    assert len(writes(emu, "/staging/foo")) == 2


def test_pin_digest_label(daemon, marathon):
    emu = marathon([app("/staging/foo", "registry.example.com/strava/foo-service:master",
                        pattern="strava/foo-service:master",
                        labels={"autodeploy.pin-digest": "true"})])
    d = start_daemon(daemon, emu)
    dg = digest("pinned")
    d.post_event(push(tag="master", dig=dg)[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["new_image"] == f"registry.example.com/strava/foo-service:master@{dg}"
    assert app_state(emu, "/staging/foo")["definition"]["container"]["docker"]["image"] == rec["new_image"]


def test_locked_app_waits_for_the_blocking_deployment(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "succeed", seconds=1.5, times=1)
    # Someone else starts a deployment of the app (scale), which holds the lock.
    emu_call(emu, "PATCH", "/v2/apps/staging/foo", {"instances": 3})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-3")[0])
    rec = wait_records(d, "/staging/foo", timeout=20)[0]
    assert rec["state"] == "succeeded", rec
    mine = [r for r in writes(emu, "/staging/foo") if r["method"] == "PATCH"][1:]
    assert len(mine) >= 2  # refused with 409 while locked, then sent again
    assert all("force" not in r["query"] for r in mine)
    assert any(e.get("eventType") == "deployment_failed" for e in emu.get_events())
    state = app_state(emu, "/staging/foo")["definition"]
    assert state["instances"] == 3  # the other change was kept, not overwritten
    assert state["container"]["docker"]["image"].endswith(":master-3")


def test_force_label_overrides_the_lock(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG, labels={"autodeploy.force": "true"})])
    emu.set_behaviour("/staging/foo", "hang", times=1)
    emu_call(emu, "PATCH", "/v2/apps/staging/foo", {"instances": 3})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-4")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "succeeded", rec
    mine = writes(emu, "/staging/foo")[1:]
    assert mine and mine[0]["query"].get("force") == ["true"]


def test_server_errors_are_retried(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.add_fault({"method": "PATCH", "path": "/v2/apps/staging/foo", "count": 2, "status": 503,
                   "body": {"message": "leader election"}})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-5")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "succeeded", rec
    assert len([r for r in emu.get_requests() if r["method"] == "PATCH"]) == 3
    m = d.metrics()
    assert m['autodeploy_marathon_errors_total{status="503"}'] == 2


def test_validation_error_is_reported_with_details(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.add_fault({"method": "PATCH", "path": "/v2/apps/staging/foo", "count": 1, "status": 422,
                   "body": {"message": "Object is not valid",
                            "details": [{"path": "/container/docker/image",
                                         "errors": ["must not be empty"]}]}})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-6")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "failed"
    assert "Object is not valid" in rec["reason"] and "/container/docker/image" in rec["reason"]
    assert len(writes(emu)) == 1  # not retried


def test_app_deleted_is_never_recreated(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    # The app disappears between the listing and the update.
    emu.add_fault({"method": "GET", "path": "/v2/apps/staging/foo", "count": 1, "delay": 0.5})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-8")[0])
    wait_for(lambda: any(r["path"] == "/v2/apps/staging/foo" for r in emu.get_requests()),
             what="the app read")
    emu_call(emu, "DELETE", "/_emu/apps/staging/foo")
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "failed" and "never re-created" in rec["reason"]
    assert not [r for r in writes(emu) if r["method"] in ("PUT", "POST")]


def test_marathon_13_falls_back_to_put(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)], marathon_version="1.3")
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-9")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "succeeded", rec
    w = writes(emu, "/staging/foo")
    assert [r["method"] for r in w] == ["PATCH", "PUT"]
    assert w[1]["query"].get("partialUpdate") == ["true"]
    assert json.loads(w[1]["body"])["container"]["docker"]["portMappings"]
    assert app_state(emu, "/staging/foo")["definition"]["container"]["docker"]["portMappings"]


def test_marathon_13_app_deleted_before_put_is_not_recreated(daemon, marathon):
    emu = marathon([app("/staging/gone", IMG)], marathon_version="1.3")
    emu.add_fault({"method": "PATCH", "path": "/v2/apps/staging/gone", "count": 1, "delay": 1.0})
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-9")[0])
    wait_for(lambda: any(r["method"] == "PATCH" for r in emu.get_requests()), what="the PATCH")
    emu_call(emu, "DELETE", "/_emu/apps/staging/gone")  # while the PATCH (405) is in flight
    rec = wait_records(d, "/staging/gone")[0]
    assert rec["state"] == "failed" and "never re-created" in rec["reason"], rec
    assert [r["method"] for r in writes(emu)] == ["PATCH"]
    assert emu_call(emu, "GET", "/_emu/apps")["apps"] == []


def test_newest_waiting_push_wins_and_older_never_downgrades(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "succeed", seconds=1.5)
    d = start_daemon(daemon, emu)
    b1, _ = push(tag="master-10", ts="2026-11-25T10:00:01Z")
    b2, _ = push(tag="master-11", ts="2026-11-25T10:00:02Z")
    b3, _ = push(tag="master-12", ts="2026-11-25T10:00:03Z")
    d.post_event(b1)
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/foo")),
             what="first deployment running")
    d.post_event(b3)
    d.post_event(b2)  # arrives later but was pushed earlier
    recs = wait_records(d, "/staging/foo", 3, timeout=20)
    by_tag = {r["tag"]: r for r in recs}
    assert by_tag["master-10"]["state"] == "succeeded"
    assert by_tag["master-11"]["state"] == "superseded"
    assert "master-12" in by_tag["master-11"]["reason"]
    assert by_tag["master-12"]["state"] == "succeeded"
    assert app_state(emu, "/staging/foo")["definition"]["container"]["docker"]["image"].endswith(":master-12")
    # A push older than the one deployed never downgrades the app.
    d.post_event(push(tag="master-13", ts="2026-11-25T09:00:00Z")[0])
    recs = wait_records(d, "/staging/foo", 4)
    assert recs[0]["tag"] == "master-13" and recs[0]["state"] == "skipped"
    assert "older" in recs[0]["reason"]
    assert app_state(emu, "/staging/foo")["definition"]["container"]["docker"]["image"].endswith(":master-12")


def test_different_apps_deploy_in_parallel(daemon, marathon):
    emu = marathon([app(f"/staging/app{i}", IMG) for i in range(3)])
    emu.set_behaviour(None, "succeed", seconds=1.5)
    d = start_daemon(daemon, emu)
    t0 = time.monotonic()
    d.post_event(push(tag="master-20")[0])
    for i in range(3):
        assert wait_records(d, f"/staging/app{i}")[0]["state"] == "succeeded"
    assert time.monotonic() - t0 < 4.0  # three 1.5 s deployments, not one after the other


def test_guard_rails_prefix_paused_dry_run(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG), app("/prod/foo", IMG),
                    app("/staging/frozen", IMG, labels={"autodeploy.paused": "true"})])
    d = start_daemon(daemon, emu, "--app-prefix", "/staging/")
    d.post_event(push(tag="master-30")[0])
    assert wait_records(d, "/staging/foo")[0]["state"] == "succeeded"
    prod = wait_records(d, "/prod/foo")[0]
    assert prod["state"] == "skipped" and "--app-prefix" in prod["reason"]
    frozen = wait_records(d, "/staging/frozen")[0]
    assert frozen["state"] == "skipped" and "paused" in frozen["reason"]
    assert [r["path"] for r in writes(emu)] == ["/v2/apps/staging/foo"]

    dry = start_daemon(daemon, emu, "--dry-run")
    dry.post_event(push(tag="master-31")[0])
    rec = wait_records(dry, "/staging/foo")[0]
    assert rec["state"] == "dry_run" and "master-31" in rec["reason"]
    assert len(writes(emu)) == 1


def test_failed_deployment_reports_task_message_and_rolls_back(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "fail", seconds=0.5, message="Container exited with 137",
                      times=1)
    d = start_daemon(daemon, emu, "--rollback-on-failure")
    d.post_event(push(tag="master-40")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "rolled_back", rec
    assert "Container exited with 137" in rec["reason"] + rec["task_message"]
    assert "TASK_FAILED" in rec["task_message"]
    wait_for(lambda: app_state(emu, "/staging/foo")["definition"]["container"]["docker"]["image"] == IMG,
             what="the previous image back")


def test_hanging_deployment_times_out_and_is_rolled_back(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "hang", seconds=0.3, message="health check failed", times=1)
    d = start_daemon(daemon, emu, "--deploy-timeout", "2s", "--rollback-on-failure")
    d.post_event(push(tag="master-41")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "rolled_back", rec
    assert "deploy-timeout" in rec["reason"] and "health check failed" in rec["task_message"]
    dels = [r for r in emu.get_requests() if r["method"] == "DELETE"
            and r["path"].startswith("/v2/deployments/")]
    assert [r["path"] for r in dels] == ["/v2/deployments/" + rec["deployment_id"]]


def test_hanging_deployment_times_out_without_rollback(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "hang", times=1)
    d = start_daemon(daemon, emu, "--deploy-timeout", "1500ms")
    d.post_event(push(tag="master-42")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "timed_out"
    assert not [r for r in emu.get_requests() if r["method"] == "DELETE"]


def test_outcome_known_while_event_stream_is_down(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    d = start_daemon(daemon, emu)
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, what="stream up")
    emu.set_behaviour("/staging/foo", "succeed", seconds=1.0)
    emu.cut_streams(refuse_seconds=4)
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 0, what="stream down")
    d.post_event(push(tag="master-43")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "succeeded", rec
    polls = [r for r in emu.get_requests() if r["path"] == "/v2/deployments"]
    assert polls, "the outcome came from polling /v2/deployments"
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, timeout=15,
             what="stream reconnected")


def test_event_stream_request_is_exact(daemon, marathon):
    emu = marathon([])
    start_daemon(daemon, emu)
    wait_for(lambda: [r for r in emu.get_requests() if r["path"] == "/v2/events"], what="stream")
    r = [r for r in emu.get_requests() if r["path"] == "/v2/events"][0]
    headers = {k.lower(): v for k, v in r["headers"].items()}
    assert headers["accept"] == "text/event-stream"
    assert "deployment_success" in r["query"]["event_type"]
    assert "status_update_event" in r["query"]["event_type"]


def test_plan_changes_nothing(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG), app("/prod/foo", IMG), app("/staging/x", IMG, pattern="other/*x")])
    d = start_daemon(daemon, emu, "--app-prefix", "/staging/")
    r = d.request("GET", "/v1/plan?image=registry.example.com:5000/strava/foo-service:master-99")
    assert r.status == 200
    plan = {a["id"]: a for a in r.json()["apps"]}
    assert plan["/staging/foo"]["action"] == "deploy"
    assert plan["/staging/foo"]["new_image"] == "registry.example.com:5000/strava/foo-service:master-99"
    assert plan["/prod/foo"]["action"] == "skip"
    assert plan["/staging/x"]["action"] == "none" and plan["/staging/x"]["reason"]
    assert d.request("GET", "/v1/plan?image=Not%20An%20Image").status == 400
    assert writes(emu) == []


def test_basic_auth_and_failover(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)], http_credentials="deployer:s3cr3t-pw")
    dead = "http://127.0.0.1:9"  # nothing listens on the discard port
    d = start_daemon(daemon, f"{dead},{emu.url}", "--marathon-user", "deployer",
                     env={"AUTODEPLOY_MARATHON_PASSWORD": "s3cr3t-pw"})
    d.post_event(push(tag="master-50")[0])
    assert wait_records(d, "/staging/foo")[0]["state"] == "succeeded"
    d.stop()
    assert "s3cr3t-pw" not in d.log_text()


def test_wrong_credentials_fail_visibly(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)], token="good-token")
    d = start_daemon(daemon, emu, env={"AUTODEPLOY_MARATHON_TOKEN": "bad-token"})
    d.post_event(push(tag="master-51")[0])
    wait_for(lambda: any(p["state"] == "failed" for p in d.pushes()), what="push failed")
    assert writes(emu) == []
    d.stop()
    assert "bad-token" not in d.log_text()


def test_leader_redirect_is_followed(daemon, marathon):
    leader = marathon([app("/staging/foo", IMG)])
    follower = marathon([], redirect_to=leader.url)
    d = start_daemon(daemon, follower)
    d.post_event(push(tag="master-52")[0])
    assert wait_records(d, "/staging/foo")[0]["state"] == "succeeded"
    assert app_state(leader, "/staging/foo")["definition"]["container"]["docker"]["image"].endswith(":master-52")


def test_invalid_label_skips_app_and_warns_once(daemon, marathon):
    emu = marathon([app("/staging/bad", IMG, pattern="strava/*:master"), app("/staging/foo", IMG)])
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-60")[0])
    d.post_event(push(tag="master-61")[0])
    wait_records(d, "/staging/foo", 2)
    warns = [r for r in d.logs() if r.get("msg", "").startswith("invalid autodeploy label")]
    assert len(warns) == 1 and warns[0]["app"] == "/staging/bad" and "column" in warns[0]["error"]
    assert writes(emu, "/staging/bad") == []


def test_a_burst_of_pushes_shares_one_listing(daemon, marathon):
    """Pushes already waiting when one is taken (here: queued during a pause) are matched
    against one app listing, not one listing each."""
    emu = marathon([app(f"/staging/app{i}", IMG, pattern=f"strava/svc{i}:*") for i in range(5)])
    d = start_daemon(daemon, emu, "--admin-token", "adm")
    auth = {"Authorization": "Bearer adm"}
    assert d.request("POST", "/v1/pause", headers=auth).status == 200
    for i in range(5):
        assert d.post_event(push(repo=f"strava/svc{i}", tag="v1")[0]).json()["accepted"] == 1
    assert d.request("POST", "/v1/resume", headers=auth).status == 200
    for i in range(5):
        assert wait_records(d, f"/staging/app{i}")[0]["state"] == "succeeded"
    listings = [r for r in emu.get_requests() if r["method"] == "GET" and r["path"] == "/v2/apps"]
    assert len(listings) == 1, len(listings)


def test_plan_waiting_on_a_slow_marathon_never_holds_the_webhook(daemon, marathon):
    """/v1/plan reads Marathon on its own thread: while plans wait for a slow listing, the
    registry's webhook is still answered at once, and a third concurrent plan is told to
    retry rather than queued behind them."""
    import threading
    emu = marathon([app("/staging/foo", IMG)])
    d = start_daemon(daemon, emu)
    emu.add_fault({"method": "GET", "path": "/v2/apps", "count": 2, "delay": 2.0})
    results = []

    def plan():
        results.append(d.request("GET", "/v1/plan?image=strava/foo-service:master-9").status)

    threads = [threading.Thread(target=plan) for _ in range(2)]
    for t in threads:
        t.start()
    wait_for(lambda: len([r for r in emu.get_requests() if r["path"] == "/v2/apps"]) >= 2,
             what="both plans reading Marathon")
    t0 = time.monotonic()
    assert d.post_event(push(tag="master-90")[0]).status == 202
    assert d.request("GET", "/healthz").status == 200
    assert time.monotonic() - t0 < 0.5
    assert d.request("GET", "/v1/plan?image=strava/foo-service:master-9").status == 429
    for t in threads:
        t.join(10)
    assert results == [200, 200]
