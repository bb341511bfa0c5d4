"""--verify-push: before a job deploys, it asks the registry the app pulls from which digest the
tag points at now. Real registry (Debian's docker-registry, open, htpasswd and token auth), the
Marathon emulator, autodeployd; notifications are posted by the test with the digests the
registry really stored, or forged ones.
"""
import base64
import json
import socket
import threading
import time

import pytest

from conftest import free_port, wait_for
from deploy_helpers import app, marathon, push, records, start_daemon, writes  # noqa: F401
from oci_images import write_image
from registry_helpers import fault_proxy, registry, token_server  # noqa: F401

USER, PASSWORD = "deployer", "deployer-password"
OPEN = ("queued", "updating", "locked", "deploying", "rolling_back")


def auth_file(tmp_path, host, password=PASSWORD):
    path = tmp_path / "config.json"
    cred = base64.b64encode(("%s:%s" % (USER, password)).encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": cred}}}))
    return str(path)


def pushed(reg, tmp_path, tag, repo="team/app"):
    layout = str(tmp_path / ("oci-" + tag))
    write_image(layout, tag, created="2026-03-01T12:00:00Z", salt=tag)
    return reg.push(layout, tag, "%s:%s" % (repo, tag))


def make_apps(marathon, reg_addr, n=1):
    apps = [app("/staging/app%d" % i, "%s/team/app:main-0" % reg_addr, pattern="team/app:main-*",
                instances=1) for i in range(n)]
    return marathon(apps)


def start(daemon, emu, *args):
    """autodeployd verifying pushes (require, the default, unless args say otherwise)."""
    mode = [] if "--verify-push" in args else ["--verify-push", "require"]
    return start_daemon(daemon, emu, *mode, *args)


def notify(d, reg_addr, tag, digest):
    body, _ = push(repo="team/app", tag=tag, dig=digest, host=reg_addr)
    assert d.post_event(body).status == 202


def ended(d, tag, app_id="/staging/app0", timeout=20):
    def done():
        recs = [r for r in records(d, app_id) if r["tag"] == tag and r["state"] not in OPEN]
        return recs[0] if recs else None
    return wait_for(done, timeout=timeout, what=f"{tag} ended on {app_id}")


def patches(emu):
    return [w for w in writes(emu) if w["method"] == "PATCH"]


@pytest.mark.parametrize("mode", ["open", "htpasswd", "token"])
def test_pushed_tag_deploys_forged_stale_and_deleted_do_not(daemon, registry, marathon, tmp_path,
                                                            mode):
    reg = registry(mode)
    d1 = pushed(reg, tmp_path, "main-1")
    emu = make_apps(marathon, reg.addr)
    auth = [] if mode == "open" else ["--registry-auth", auth_file(tmp_path, reg.addr)]
    d = start(daemon, emu, *auth)
    notify(d, reg.addr, "main-1", d1)
    assert ended(d, "main-1")["state"] == "succeeded"
    # A valid webhook token, a tag never pushed: skipped, reported, nothing written.
    notify(d, reg.addr, "main-9", "sha256:" + "ab" * 32)
    rec = ended(d, "main-9")
    assert rec["state"] == "skipped" and "not in the registry" in rec["reason"], rec
    # The tag moved on since this notification: the push is stale.
    d2 = pushed(reg, tmp_path, "main-2")
    notify(d, reg.addr, "main-2", "sha256:" + "cd" * 32)
    rec = ended(d, "main-2")
    assert rec["state"] == "superseded" and d2 in rec["reason"], rec
    # Deleted since: skipped.
    d3 = pushed(reg, tmp_path, "main-3")
    reg.delete_tag("team/app", "main-3")
    notify(d, reg.addr, "main-3", d3)
    rec = ended(d, "main-3")
    assert rec["state"] == "skipped" and "not in the registry" in rec["reason"], rec
    assert len(patches(emu)) == 1
    # /v1/plan asks the registry too.
    plan = d.request("GET", "/v1/plan?image=%s/team/app:main-1" % reg.addr).json()["apps"][0]
    assert plan["action"] == "deploy" and plan["registry"] == "has it: " + d1, plan
    plan = d.request("GET", "/v1/plan?image=%s/team/app:main-7" % reg.addr).json()["apps"][0]
    assert plan["action"] == "skip" and "not in the registry" in plan["reason"], plan


@pytest.mark.parametrize("mode", ["htpasswd", "token"])
def test_credentials_and_a_wrong_password(daemon, registry, marathon, tmp_path, slack, mode):
    reg = registry(mode)
    d1 = pushed(reg, tmp_path, "main-1")
    emu = make_apps(marathon, reg.addr)
    d = start(daemon, emu, "--registry-auth", auth_file(tmp_path, reg.addr))
    notify(d, reg.addr, "main-1", d1)
    assert ended(d, "main-1")["state"] == "succeeded"
    d.stop()
    secret = "Wr0ng-pa55word-xyz"
    bad = tmp_path / "bad"
    bad.mkdir()
    d = start(daemon, emu, "--registry-auth", auth_file(bad, reg.addr, secret),
                     "--update-timeout", "2s", "--slack-webhook-url", slack.webhook_url)
    d2 = pushed(reg, tmp_path, "main-2")
    notify(d, reg.addr, "main-2", d2)
    rec = ended(d, "main-2")
    assert rec["state"] == "failed" and "refused the credentials" in rec["reason"], rec
    assert len(patches(emu)) == 1
    encoded = base64.b64encode(("%s:%s" % (USER, secret)).encode()).decode()
    seen = d.log_text() + json.dumps(records(d)) + d.request("GET", "/metrics").body.decode()
    wait_for(lambda: any("main-2" in json.dumps(m) for m in slack.messages()), what="Slack told")
    seen += json.dumps(slack.messages())
    assert secret not in seen and encoded not in seen


def test_token_auth_and_one_question_per_push(daemon, registry, marathon, fault_proxy, tmp_path):
    reg = registry("token")
    d1 = pushed(reg, tmp_path, "main-1")
    proxy = fault_proxy(reg.addr)
    emu = make_apps(marathon, proxy.addr, n=4)
    d = start(daemon, emu, "--registry-auth", auth_file(tmp_path, proxy.addr))
    notify(d, proxy.addr, "main-1", d1)
    for i in range(4):
        assert ended(d, "main-1", "/staging/app%d" % i)["state"] == "succeeded"
    # Four apps, one push: the registry was asked once (plus the token dance's first try).
    heads = [r for r in proxy.records() if r["method"] == "HEAD"]
    assert len([r for r in heads if r.get("status") == 200]) == 1, heads
    assert reg.token_server.count(user=USER) == 1


def test_unreachable_registry_require_fails_warn_deploys(daemon, marathon, tmp_path):
    host = "127.0.0.1:%d" % free_port()
    emu = make_apps(marathon, host)
    d = start(daemon, emu, "--update-timeout", "2s", "--registry-timeout", "500ms")
    notify(d, host, "main-1", "sha256:" + "ef" * 32)
    rec = ended(d, "main-1")
    assert rec["state"] == "failed" and "registry unreachable" in rec["reason"], rec
    assert not patches(emu)
    d.stop()
    d = start(daemon, emu, "--update-timeout", "2s", "--registry-timeout", "500ms",
                     "--verify-push", "warn")
    notify(d, host, "main-2", "sha256:" + "12" * 32)
    rec = ended(d, "main-2")
    assert rec["state"] == "succeeded" and "without verification" in rec["reason"], rec
    assert len(patches(emu)) == 1


def test_a_stop_while_the_registry_is_silent_ends_the_job_without_deploying(daemon, marathon,
                                                                           tmp_path):
    """The registry accepted the connection and says nothing (--registry-timeout 60s); a stop
    ends the verifying job at once, reported interrupted, and --verify-push warn does not take
    the abandoned question for a reason to deploy unverified."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(16)
    held = []

    def hold():
        while True:
            try:
                held.append(srv.accept()[0])
            except OSError:
                return
    threading.Thread(target=hold, daemon=True).start()
    host = "127.0.0.1:%d" % srv.getsockname()[1]
    emu = make_apps(marathon, host)
    d = start(daemon, emu, "--registry-timeout", "60s", "--verify-push", "warn")
    try:
        notify(d, host, "main-1", "sha256:" + "ef" * 32)
        wait_for(lambda: held, timeout=20, what="the job asking the silent registry")
        t0 = time.monotonic()
        assert d.stop(timeout=20) == 0
        assert time.monotonic() - t0 < 5, time.monotonic() - t0
        assert not patches(emu)
        assert "deploying anyway" not in d.log_text()
    finally:
        srv.close()
        for c in held:
            c.close()


def test_429_and_5xx_from_the_registry_are_retried(daemon, registry, marathon, fault_proxy,
                                                   tmp_path):
    reg = registry("open")
    d1 = pushed(reg, tmp_path, "main-1")
    proxy = fault_proxy(reg.addr)
    proxy.fail_next(429, count=1, kind="manifest", retry_after=1,
                    headers={"RateLimit-Remaining": "7;w=21600"})
    proxy.fail_next(503, count=1, kind="manifest")
    emu = make_apps(marathon, proxy.addr)
    d = start(daemon, emu)
    notify(d, proxy.addr, "main-1", d1)
    assert ended(d, "main-1")["state"] == "succeeded"
    assert proxy.count(kind="manifest") == 3
    assert d.metrics().get('autodeploy_registry_requests_total{result="retried"}') == 2
    # Docker Hub's pull budget, as the registry last stated it.
    assert d.metrics().get('autodeploy_registry_ratelimit_remaining{registry="%s"}' % proxy.addr) == 7


def test_a_tag_the_registry_has_not_linked_yet_is_asked_again(daemon, registry, marathon,
                                                              fault_proxy, tmp_path):
    """Docker's registry sends the notification before it links the tag (PutManifest:
    manifests.Put notifies, tags.Tag follows): the first question may find no tag. `make demo`
    lost a push to this now and then."""
    reg = registry("open")
    d1 = pushed(reg, tmp_path, "main-1")
    proxy = fault_proxy(reg.addr)
    proxy.fail_next(404, count=1, kind="manifest",
                    body={"errors": [{"code": "MANIFEST_UNKNOWN", "message": "manifest unknown"}]})
    emu = make_apps(marathon, proxy.addr)
    d = start(daemon, emu)
    notify(d, proxy.addr, "main-1", d1)
    assert ended(d, "main-1")["state"] == "succeeded"
    assert proxy.count(kind="manifest") == 2


def test_registry_url_maps_the_apps_registry_host(daemon, registry, marathon, tmp_path):
    """The app pulls from registry.example.com, which autodeployd reaches by another name
    (--registry-url HOST=URL): verification asks that URL."""
    reg = registry("open")
    d1 = pushed(reg, tmp_path, "main-1")
    emu = make_apps(marathon, "registry.example.com")
    d = start(daemon, emu, "--registry-url", "registry.example.com=http://" + reg.addr)
    notify(d, "registry.example.com", "main-1", d1)
    assert ended(d, "main-1")["state"] == "succeeded"
    notify(d, "registry.example.com", "main-5", "sha256:" + "99" * 32)
    rec = ended(d, "main-5")
    assert rec["state"] == "skipped" and "not in the registry" in rec["reason"], rec
