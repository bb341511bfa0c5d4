"""Reconcile: autodeployd asks the registry what the labelled apps should run, so that a push
whose notification was lost (a registry restart, a misconfigured endpoint, an app that opts in
later) still deploys. Real registry (Debian's docker-registry) with notifications off unless a
test turns them on, the Marathon emulator, autodeployd with --reconcile-interval 2s.
"""
import datetime
import json
import os
import shutil
import signal
import socket
import threading
import time
import urllib.request

import pytest

from conftest import free_port, wait_for
from deploy_helpers import (app, marathon, operator_call, push, records, start_daemon,  # noqa: F401
                            writes)
from oci_images import write_image
from registry_helpers import NOTIFY_TOKEN, registry  # noqa: F401

ADMIN = "reconcile-admin-token"
INTERVAL = "2s"


def pushed(reg, tmp_path, repo, tag, created, salt=""):
    """Pushes repo:tag (an image built at `created`) with skopeo; returns its digest."""
    layout = str(tmp_path / ("oci-%s-%s%s" % (repo.replace("/", "_"), tag, salt)))
    write_image(layout, tag, created=created, salt=repo + tag + salt)
    return reg.push(layout, tag, "%s:%s" % (repo, tag))


def app_on_main(addr, tag="main-1"):
    """/staging/app, 1 instance, on team/app:TAG in the registry at addr, label team/app:main-*."""
    return app("/staging/app", "%s/team/app:%s" % (addr, tag), pattern="team/app:main-*",
               instances=1)


def start(daemon, emu, *args):
    return start_daemon(daemon, emu, "--reconcile-interval", INTERVAL, "--admin-token", ADMIN,
                        "--verify-push", "require", *args)


def image_of(emu, app_id):
    a = json.loads(urllib.request.urlopen(emu.url + "/v2/apps" + app_id, timeout=5).read())["app"]
    return a["container"]["docker"]["image"], a["labels"].get("autodeploy.digest")


def patches(emu, app_id):
    return [w for w in writes(emu, app_id) if w["method"] in ("PATCH", "PUT")]


def cycles(d):
    m = d.metrics()
    return sum(m.get('autodeploy_reconcile_cycles_total{result="%s"}' % r, 0)
               for r in ("ok", "partial"))


def wait_cycles(d, n, timeout=30):
    """Waits until n more cycles than now have ended."""
    start_at = cycles(d)
    wait_for(lambda: cycles(d) >= start_at + n, timeout=timeout, what="%d reconcile cycles" % n)


def runs(emu, app_id, image, timeout=30):
    wait_for(lambda: image_of(emu, app_id)[0] == image, timeout=timeout,
             what="%s runs %s" % (app_id, image))


def api(d, method, path, token=ADMIN):
    r = d.request(method, path, body=b"" if method == "POST" else None,
                  headers={"Authorization": "Bearer " + token} if token else {}, timeout=60)
    return r.status, json.loads(r.body or b"{}")


def test_lost_notifications_deploy_what_the_rules_choose_once(daemon, registry, marathon, tmp_path):
    reg = registry("open")
    r = reg.addr
    # main-*: main-10 is newer by created time than main-9 although it sorts before it.
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    pushed(reg, tmp_path, "team/app", "main-9", "2026-03-01T11:00:00Z")
    main10 = pushed(reg, tmp_path, "team/app", "main-10", "2026-03-01T12:00:00Z")
    # :latest, pushed twice with new content: the second one runs.
    first = pushed(reg, tmp_path, "team/worker", "latest", "2026-03-01T10:00:00Z", salt="a")
    # semver ^1.2: 1.3.0 wins over 2.0.0 (out of range) and the later backport 1.2.9.
    for tag in ("1.2.0", "1.3.0", "2.0.0", "1.2.9"):
        pushed(reg, tmp_path, "team/api", tag, "2026-03-01T10:00:00Z")
    emu = marathon([
        app_on_main(r),
        app("/staging/worker", "%s/team/worker:latest" % r, pattern="team/worker:latest",
            labels={"autodeploy.digest": first}, instances=1),
        app("/prod/api", "%s/team/api:1.2.0" % r, pattern="semver:team/api:^1.2", instances=1),
    ])
    second = pushed(reg, tmp_path, "team/worker", "latest", "2026-03-02T10:00:00Z", salt="b")
    d = start(daemon, emu)
    runs(emu, "/staging/app", "%s/team/app:main-10" % r)
    runs(emu, "/prod/api", "%s/team/api:1.3.0" % r)
    wait_for(lambda: image_of(emu, "/staging/worker")[1] == second, timeout=30,
             what="worker at the second :latest")
    assert image_of(emu, "/staging/app")[1] == main10
    wait_cycles(d, 2)
    for app_id in ("/staging/app", "/staging/worker", "/prod/api"):
        assert len(patches(emu, app_id)) == 1, (app_id, patches(emu, app_id))
    recs = [x for x in records(d) if x["state"] == "succeeded"]
    assert {x["app"] for x in recs} == {"/staging/app", "/staging/worker", "/prod/api"}
    assert all(x["source"] == "reconcile" for x in recs), recs


def test_a_late_notification_of_an_older_push_never_undoes_what_reconcile_deployed(
        daemon, registry, marathon, tmp_path):
    """The registry could not reach autodeployd for a while: reconcile deploys main-2, then
    the registry's retries deliver main-1's notification (pushed before the cycle). It must not
    deploy main-1 over main-2 (a downgrade the webhook path alone never makes)."""
    reg = registry("open")
    r = reg.addr
    main1 = pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    pushed_at = (datetime.datetime.utcnow() - datetime.timedelta(seconds=30)).strftime(
        "%Y-%m-%dT%H:%M:%S.%fZ")
    main2 = pushed(reg, tmp_path, "team/app", "main-2", "2026-03-01T11:00:00Z")
    emu = marathon([app_on_main(r, "main-0")])
    d = start(daemon, emu)
    wait_for(lambda: image_of(emu, "/staging/app") == ("%s/team/app:main-2" % r, main2),
             timeout=30, what="reconcile deployed main-2")
    body, _ = push(repo="team/app", tag="main-1", dig=main1, host=r, ts=pushed_at)
    assert d.post_event(body).status == 202
    wait_for(lambda: [x for x in records(d, "/staging/app")
                      if x["tag"] == "main-1" and x["state"] == "skipped"],
             timeout=30, what="the late main-1 skipped")
    assert image_of(emu, "/staging/app")[0] == "%s/team/app:main-2" % r
    assert len(patches(emu, "/staging/app")) == 1, patches(emu, "/staging/app")
    # A registry whose clock is behind: main-3's notification looks older than the cycle and
    # is skipped; the next cycles still find main-3 (the skip is no reason to leave it).
    main3 = pushed(reg, tmp_path, "team/app", "main-3", "2026-03-01T12:00:00Z")
    body, _ = push(repo="team/app", tag="main-3", dig=main3, host=r, ts=pushed_at)
    assert d.post_event(body).status == 202
    wait_for(lambda: image_of(emu, "/staging/app") == ("%s/team/app:main-3" % r, main3),
             timeout=30, what="reconcile deployed main-3")
    assert [x["state"] for x in records(d, "/staging/app") if x["tag"] == "main-3"] == [
        "succeeded", "skipped"] or image_of(emu, "/staging/app")[0].endswith("main-3")


def test_an_image_that_failed_and_was_rolled_back_is_not_tried_again(
        daemon, registry, marathon, tmp_path):
    """Reconcile deploys main-2, it fails and is rolled back to main-1: the next cycles see
    main-1 running and main-2 the newest, and must not deploy it again (and again)."""
    reg = registry("open")
    r = reg.addr
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    pushed(reg, tmp_path, "team/app", "main-2", "2026-03-01T11:00:00Z")
    emu = marathon([app_on_main(r)])
    emu.set_behaviour("/staging/app", "fail", seconds=0.3, message="exited with 1", times=1)
    d = start(daemon, emu, "--rollback-on-failure")
    wait_for(lambda: [x for x in records(d, "/staging/app") if x["state"] == "rolled_back"],
             timeout=30, what="main-2 rolled back")
    wait_cycles(d, 3)
    assert image_of(emu, "/staging/app")[0] == "%s/team/app:main-1" % r
    assert len(patches(emu, "/staging/app")) == 2, patches(emu, "/staging/app")  # and revert


def test_a_notification_is_not_taken_for_a_duplicate_of_what_reconcile_could_not_queue(
        daemon, registry, marathon, tmp_path):
    """While the app's job deploys main-2 (slowly), a cycle finds main-3 and leaves the busy
    app alone; main-3's notification, arriving next, is a push of its own (not a duplicate
    of what reconcile did not queue) and deploys right after main-2, not a cycle later."""
    reg = registry("open")
    r = reg.addr
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    emu = marathon([app_on_main(r)])
    emu.set_behaviour("/staging/app", "succeed", seconds=8, times=1)
    d = start(daemon, emu, "--reconcile-interval", "1s")
    wait_cycles(d, 1)
    main2 = pushed(reg, tmp_path, "team/app", "main-2", "2026-03-01T11:00:00Z")
    runs(emu, "/staging/app", "%s/team/app:main-2" % r)  # the slow deployment has begun
    main3 = pushed(reg, tmp_path, "team/app", "main-3", "2026-03-01T12:00:00Z")
    wait_cycles(d, 2)
    assert [x["state"] for x in records(d, "/staging/app") if x["tag"] == "main-2"] == [
        "deploying"], records(d)
    body, _ = push(repo="team/app", tag="main-3", dig=main3, host=r)
    answer = d.post_event(body)
    assert answer.status == 202 and answer.json()["accepted"] == 1, answer.json()
    assert main2


def test_a_tag_no_registry_could_take_does_not_stop_the_app(daemon, registry, marathon,
                                                             tmp_path):
    """The registry lists a tag outside Docker's grammar (here one longer than 128 characters,
    planted in its storage) that the glob matches: it is no candidate, and the app still gets
    its newest image."""
    reg = registry("open")
    r = reg.addr
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    main2 = pushed(reg, tmp_path, "team/app", "main-2", "2026-03-01T11:00:00Z")
    tags = os.path.join(reg.data, "docker/registry/v2/repositories/team/app/_manifests/tags")
    shutil.copytree(os.path.join(tags, "main-2"), os.path.join(tags, "main-" + "x" * 130))
    assert "main-" + "x" * 130 in reg.tags("team/app")
    emu = marathon([app_on_main(r)])
    start(daemon, emu)
    wait_for(lambda: image_of(emu, "/staging/app") == ("%s/team/app:main-2" % r, main2),
             timeout=30, what="main-2 deployed")


def test_a_tag_whose_image_cannot_be_read_does_not_stop_the_app(daemon, registry, marathon,
                                                                 tmp_path):
    """main-3's config blob is not JSON (garbage planted in the registry's storage): main-3 is
    left out and the app gets main-2, the newest image whose build time can be read; main-3 is
    not asked about again at the next cycles."""
    reg = registry("open")
    proxy = reg.proxy()
    r = reg.addr
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    main2 = pushed(reg, tmp_path, "team/app", "main-2", "2026-03-01T11:00:00Z")
    pushed(reg, tmp_path, "team/app", "main-3", "2026-03-01T12:00:00Z")
    cfg = reg.manifest("team/app:main-3")[0]["config"]["digest"].split(":")[1]
    with open(os.path.join(reg.data, "docker/registry/v2/blobs/sha256", cfg[:2], cfg, "data"),
              "wb") as f:
        f.write(b"\x00 not a JSON config")
    emu = marathon([app_on_main(r)])
    d = start(daemon, emu, "--registry-url", "%s=http://%s" % (r, proxy.addr))
    wait_for(lambda: image_of(emu, "/staging/app") == ("%s/team/app:main-2" % r, main2),
             timeout=30, what="main-2 deployed")
    wait_cycles(d, 1)
    before = proxy.kinds()
    wait_cycles(d, 2)
    spent = proxy.kinds() - before
    assert set(spent) <= {("GET", "tags"), ("HEAD", "manifest")}, spent


def test_notified_and_reconciled_pushes_deploy_once(daemon, registry, marathon, tmp_path):
    """The registry notifies and reconcile runs: every push deploys once, also when the
    notification arrives while a cycle (slowed down at its tags/list) is deciding."""
    port = free_port()
    reg = registry("open", notify_url="http://127.0.0.1:%d/v1/webhooks/registry" % port)
    proxy = reg.proxy()
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    emu = marathon([app_on_main(reg.addr)])
    d = start(daemon, emu, "--listen", "127.0.0.1:%d" % port, "--webhook-token", NOTIFY_TOKEN,
              "--registry-url", "%s=http://%s" % (reg.addr, proxy.addr))
    wait_cycles(d, 1)
    for i, tag in enumerate(("main-2", "main-3"), start=2):
        # The next cycles' tags/list wait 1.5 s: the notification lands inside a cycle.
        proxy.fail_next(mode="delay", seconds=1.5, kind="tags", count=2)
        pushed(reg, tmp_path, "team/app", tag, "2026-03-01T1%d:00:00Z" % i)
        runs(emu, "/staging/app", "%s/team/app:%s" % (reg.addr, tag))
        wait_cycles(d, 2)
    # (main-1's own notification reached autodeployd once it listened: that is the webhook's
    # business.) Each later push deployed exactly once, by whichever path came first.
    images = [json.loads(p["body"])["container"]["docker"]["image"].rsplit(":", 1)[1]
              for p in patches(emu, "/staging/app")]
    assert images.count("main-2") == 1 and images.count("main-3") == 1, images
    assert d.metrics().get('autodeploy_events_total{result="accepted"}', 0) >= 2


def test_a_notification_lost_in_a_registry_restart_deploys_at_the_next_cycle(
        daemon, registry, marathon, tmp_path):
    # The registry notifies an address where nothing answers yet: the event waits in its
    # memory, and the restart (SIGKILL) loses it.
    reg = registry("open", notify_url="http://127.0.0.1:%d/v1/webhooks/registry" % free_port())
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    emu = marathon([app_on_main(reg.addr)])
    d = start(daemon, emu)
    wait_cycles(d, 1)
    digest2 = pushed(reg, tmp_path, "team/app", "main-2", "2026-03-01T11:00:00Z")
    reg.restart()
    runs(emu, "/staging/app", "%s/team/app:main-2" % reg.addr)
    assert image_of(emu, "/staging/app")[1] == digest2
    rec = [x for x in records(d, "/staging/app") if x["tag"] == "main-2"][0]
    assert rec["source"] == "reconcile" and rec["state"] in ("deploying", "succeeded"), rec
    assert d.metrics().get('autodeploy_events_total{result="accepted"}', 0) == 0


def test_an_app_that_opts_in_later_deploys_and_one_deployed_by_hand_is_adopted(
        daemon, registry, marathon, tmp_path):
    reg = registry("open")
    r = reg.addr
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    pushed(reg, tmp_path, "team/app", "main-2", "2026-03-01T11:00:00Z")
    by_hand = pushed(reg, tmp_path, "team/worker", "latest", "2026-03-01T10:00:00Z", salt="a")
    late = app("/staging/late", "%s/team/app:main-1" % r, instances=1)
    del late["labels"]["autodeploy"]
    emu = marathon([late, app("/staging/worker", "%s/team/worker:latest" % r,
                              pattern="team/worker:latest", instances=1)])
    d = start(daemon, emu)
    wait_cycles(d, 2)
    # Deployed by hand, no autodeploy.digest: adopted (recorded once), not restarted.
    assert patches(emu, "/staging/worker") == [] and patches(emu, "/staging/late") == []
    adopted = [x for x in records(d, "/staging/worker") if x["state"] == "adopted"]
    assert len(adopted) == 1 and adopted[0]["digest"] == by_hand, records(d)
    # The label arrives: the newest matching image deploys at the next cycle.
    labels = dict(late["labels"], autodeploy="team/app:main-*")
    operator_call(emu, "PUT", "/v2/apps/staging/late", {"labels": labels})
    runs(emu, "/staging/late", "%s/team/app:main-2" % r)
    # A new :latest after the adoption deploys: the baseline says it moved.
    moved = pushed(reg, tmp_path, "team/worker", "latest", "2026-03-02T10:00:00Z", salt="b")
    wait_for(lambda: image_of(emu, "/staging/worker")[1] == moved, timeout=30,
             what="the moved :latest deployed")
    assert len(patches(emu, "/staging/worker")) == 1


def test_a_steady_cycle_asks_only_tags_list_and_head(daemon, registry, marathon, tmp_path):
    reg = registry("open")
    proxy = reg.proxy()
    r = reg.addr
    for i in range(1, 4):
        pushed(reg, tmp_path, "team/app", "main-%d" % i, "2026-03-01T1%d:00:00Z" % i)
    pushed(reg, tmp_path, "team/worker", "latest", "2026-03-01T10:00:00Z")
    pushed(reg, tmp_path, "team/api", "1.2.0", "2026-03-01T10:00:00Z")
    emu = marathon([
        app("/staging/a%d" % i, "%s/team/app:main-1" % r, pattern="team/app:main-*", instances=1)
        for i in range(3)] + [
        app("/staging/worker", "%s/team/worker:latest" % r, pattern="team/worker:latest",
            instances=1),
        app("/prod/api", "%s/team/api:1.2.0" % r, pattern="semver:team/api:^1", instances=1)])
    d = start(daemon, emu, "--registry-url", "%s=http://%s" % (r, proxy.addr))
    for i in range(3):
        runs(emu, "/staging/a%d" % i, "%s/team/app:main-3" % r)
    wait_cycles(d, 1)
    before = proxy.kinds()
    wait_cycles(d, 2)
    spent = proxy.kinds() - before
    assert set(spent) <= {("GET", "tags"), ("HEAD", "manifest")}, spent
    # Per cycle: one tags/list per listed repository (team/app, team/api), one HEAD for the
    # exact tag; 3 apps sharing team/app cost one tags/list.
    cycles_seen = spent[("GET", "tags")] / 2
    assert spent[("GET", "tags")] % 2 == 0 and 2 <= cycles_seen <= 4, spent
    assert spent[("HEAD", "manifest")] == cycles_seen, spent
    for app_id in ("/staging/a0", "/staging/a1", "/staging/a2"):
        assert len(patches(emu, app_id)) == 1
    assert patches(emu, "/staging/worker") == [] and patches(emu, "/prod/api") == []


def test_reconcile_deploys_nothing_a_webhook_would_not(daemon, registry, marathon, tmp_path):
    """Paused apps, apps outside --app-prefix, invalid labels, downgrades, apps already on the
    newest image, and apps whose registry cannot be reached: nothing deploys, the preview says
    why, and the unreachable registry is counted."""
    reg = registry("open")
    r = reg.addr
    for tag, created in (("main-1", "10"), ("main-2", "11")):
        pushed(reg, tmp_path, "team/app", tag, "2026-03-01T%s:00:00Z" % created)
    for tag in ("1.2.0", "1.3.0", "1.2.9"):
        pushed(reg, tmp_path, "team/api", tag, "2026-03-01T10:00:00Z")
    dead = "127.0.0.1:%d" % free_port()
    emu = marathon([
        app("/staging/paused", "%s/team/app:main-1" % r, pattern="team/app:main-*",
            labels={"autodeploy.paused": "true"}, instances=1),
        app("/prod/outside", "%s/team/app:main-1" % r, pattern="team/app:main-*", instances=1),
        app("/staging/invalid", "%s/team/app:main-1" % r, pattern="team/*:main-*", instances=1),
        app("/staging/api", "%s/team/api:1.3.0" % r, pattern="semver:team/api:^1.2", instances=1),
        app("/staging/newest", "%s/team/app:main-2" % r, pattern="team/app:main-*", instances=1),
        app("/staging/unreachable", "%s/team/app:main-1" % dead, pattern="team/app:main-*",
            instances=1),
    ])
    d = start(daemon, emu, "--app-prefix", "/staging/", "--registry-timeout", "1s")
    wait_cycles(d, 2)
    assert [w for w in writes(emu) if w["method"] != "GET"] == []
    status, plan = api(d, "GET", "/v1/reconcile?dry_run=1")
    assert status == 200 and plan["dry_run"] is True, plan
    why = {a["id"]: (a["action"], a["reason"]) for a in plan["apps"]}
    assert why["/staging/paused"][0] == "skipped" and "paused" in why["/staging/paused"][1]
    assert why["/prod/outside"][0] == "skipped" and "prefix" in why["/prod/outside"][1]
    assert why["/staging/invalid"] == ("skipped", "invalid label")
    assert why["/staging/api"][0] == "nothing" and "1.3.0" in why["/staging/api"][1]
    assert why["/staging/newest"][0] == "nothing" and "main-2" in why["/staging/newest"][1]
    assert why["/staging/unreachable"][0] == "skipped", why
    assert "unreachable" in why["/staging/unreachable"][1], why
    errors = d.metrics().get(
        'autodeploy_reconcile_registry_errors_total{registry="%s"}' % dead, 0)
    assert errors >= 2
    assert "cannot ask the registry" in d.log_text()


def test_reconcile_api_previews_and_runs_a_cycle_for_the_admin(daemon, registry, marathon,
                                                               tmp_path):
    reg = registry("open")
    r = reg.addr
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    pushed(reg, tmp_path, "team/app", "main-2", "2026-03-01T11:00:00Z")
    emu = marathon([app_on_main(r)])
    d = start_daemon(daemon, emu, "--reconcile-interval", "0", "--admin-token", ADMIN)
    status, plan = api(d, "GET", "/v1/reconcile")
    assert status == 200, plan
    assert plan["apps"] == [{"id": "/staging/app", "image": "%s/team/app:main-1" % r,
                             "action": "deploy", "new_image": "%s/team/app:main-2" % r,
                             "reason": "main-2 is newer than main-1, which the app runs"}], plan
    assert plan["requests"]["tags_list"] == 1
    assert api(d, "GET", "/v1/reconcile?dry_run=0")[0] == 400
    assert api(d, "POST", "/v1/reconcile", token=None)[0] == 401
    assert api(d, "POST", "/v1/reconcile", token="wrong")[0] == 401
    assert patches(emu, "/staging/app") == []  # previews change nothing; 0 turns the loop off
    status, body = api(d, "POST", "/v1/reconcile")
    assert status == 202, body
    runs(emu, "/staging/app", "%s/team/app:main-2" % r)


class SilentRegistry:
    """Accepts connections and never answers."""

    def __init__(self):
        self.srv = socket.socket()
        self.srv.bind(("127.0.0.1", 0))
        self.srv.listen(16)
        self.held = []
        self.host = "127.0.0.1:%d" % self.srv.getsockname()[1]
        threading.Thread(target=self._hold, daemon=True).start()

    def _hold(self):
        while True:
            try:
                self.held.append(self.srv.accept()[0])
            except OSError:
                return

    def close(self):
        self.srv.close()
        for c in self.held:
            c.close()


def stops_at_once(d):
    t0 = time.monotonic()
    assert d.stop(timeout=20) == 0
    assert time.monotonic() - t0 < 5, time.monotonic() - t0


def test_a_registry_that_never_answers_does_not_hold_up_the_stop(daemon, marathon):
    """A reconcile cycle waiting on a registry that accepted the connection and went silent
    (--registry-timeout 60s) ends at once when autodeployd is asked to stop; so does a
    GET /v1/reconcile preview waiting on it."""
    reg = SilentRegistry()
    try:
        emu = marathon([app("/staging/app", "%s/team/app:main-1" % reg.host,
                            pattern="team/app:main-*", instances=1)])
        d = start(daemon, emu, "--registry-timeout", "60s")
        wait_for(lambda: reg.held, timeout=30, what="the cycle asking the silent registry")
        stops_at_once(d)
        d = start_daemon(daemon, emu, "--reconcile-interval", "0", "--registry-timeout", "60s")
        n = len(reg.held)
        answers = []

        def preview():
            try:
                answers.append(d.request("GET", "/v1/reconcile", timeout=60).status)
            except Exception as e:  # noqa: BLE001 - the stop closes the connection unanswered
                answers.append(e)
        threading.Thread(target=preview, daemon=True).start()
        wait_for(lambda: len(reg.held) > n, timeout=30, what="the preview asking the registry")
        stops_at_once(d)
    finally:
        reg.close()


def test_a_reload_of_the_interval_applies_to_the_wait_under_way(daemon, registry, marathon,
                                                                 tmp_path):
    """--reconcile-interval 1h, reloaded to 1s: the next cycle comes within seconds, not after
    the hour's wait that had begun."""
    reg = registry("open")
    pushed(reg, tmp_path, "team/app", "main-1", "2026-03-01T10:00:00Z")
    emu = marathon([app_on_main(reg.addr)])
    cfg = tmp_path / "autodeploy.json"
    cfg.write_text(json.dumps({"reconcile-interval": "1h"}))
    d = start_daemon(daemon, emu, "--config", str(cfg))

    def reload(interval):
        n = sum(1 for r in d.logs() if r.get("msg") == "configuration reloaded")
        cfg.write_text(json.dumps({"reconcile-interval": interval}))
        d.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: sum(1 for r in d.logs() if r.get("msg") == "configuration reloaded")
                 > n, what="reload")
    reload("1s")
    wait_cycles(d, 2, timeout=15)
