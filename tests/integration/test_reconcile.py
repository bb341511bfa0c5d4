"""Reconcile: autodeployd asks the registry what the labelled apps should run, so that a push
whose notification was lost (a registry restart, a misconfigured endpoint, an app that opts in
later) still deploys. Real registry (Debian's docker-registry) with notifications off unless a
test turns them on, the Marathon emulator, autodeployd with --reconcile-interval 2s.
"""
import json
import urllib.error
import urllib.request

import pytest

from conftest import wait_for
from deploy_helpers import app, marathon, push, records, start_daemon, writes  # noqa: F401
from oci_images import write_image
from registry_helpers import fault_proxy, registry  # noqa: F401

ADMIN = "reconcile-admin-token"
INTERVAL = "2s"


def pushed(reg, tmp_path, repo, tag, created, salt=""):
    """Pushes repo:tag (an image built at `created`) with skopeo; returns its digest."""
    layout = str(tmp_path / ("oci-%s-%s%s" % (repo.replace("/", "_"), tag, salt)))
    write_image(layout, tag, created=created, salt=repo + tag + salt)
    return reg.push(layout, tag, "%s:%s" % (repo, tag))


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
    req = urllib.request.Request(d.url + path, method=method, data=b"" if method == "POST" else None,
                                 headers={"Authorization": "Bearer " + token} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


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
        app("/staging/app", "%s/team/app:main-1" % r, pattern="team/app:main-*", instances=1),
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
