"""Approvals (label autodeploy.approve=true) end to end: the daemon, the Marathon emulator and
the Slack sink, which also plays Slack's side of the buttons (signed interaction requests).

One daemon carries most of the story, one app per path: approved through the API (twice:
deployed once), approved through a Slack button (the user recorded), a superseded approval's
old button (nothing deploys), a rejection, an expiry; the refusals of the HTTP side (bad and
missing tokens, GET, bad signature, stale timestamp, replay). A second pair of daemons shares a
state file: a pending approval survives the restart (and, approved during an operator's pause,
deploys at the resume), and the endpoints are off (404/403) without a signing secret and an
admin token."""
import json
import time

from conftest import wait_for
from deploy_helpers import (app, deployments_by_autodeployd, marathon, push,  # noqa: F401
                            records, start_daemon, wait_records)

SECRET = "slack-signing-secret-0123456789abcdef"
TOKEN = "approvals-admin-token-42"
HOOK = "/services/T000/B000/approvals"
REG = "registry.example.com:5000"


def gated(name, timeout=None, **labels):
    if timeout:
        labels["autodeploy.approve-timeout"] = timeout
    return app(f"/prod/{name}", f"{REG}/strava/{name}:master-1", pattern=f"strava/{name}:master*",
               labels={"autodeploy.approve": "true", **labels})


def approvals(d, app_id=None):
    out = d.request("GET", "/v1/approvals").json()["approvals"]
    return [a for a in out if app_id is None or a["app"] == app_id]


def wait_approval(d, app_id, state="pending", not_id=None, timeout=10):
    def found():
        return next((a for a in approvals(d, app_id)
                     if a["state"] == state and a["id"] != not_id), None)
    return wait_for(found, timeout=timeout, what=f"a {state} approval of {app_id}")


def decide(d, approval_id, action, token=TOKEN, body=None, method="POST"):
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = "Bearer " + token
    return d.request(method, f"/v1/approvals/{approval_id}/{action}",
                     body=json.dumps(body).encode() if body is not None else None, headers=headers)


def slack_url(d):
    return f"http://127.0.0.1:{d.port}/v1/slack/interactions"


def slack_texts(sink):
    return [m["json"].get("text", "") for m in sink.messages() if isinstance(m.get("json"), dict)]


def wait_text(sink, needle, timeout=10):
    return wait_for(lambda: next((t for t in slack_texts(sink) if needle in t), None),
                    timeout=timeout, what=f"a Slack message with {needle!r}")


def test_approval_paths(daemon, marathon, slack):
    names = ["api", "web", "old", "exp"]
    emu = marathon([*(gated(n) for n in names[:3]), gated("exp", timeout="1s"),
                    app("/staging/free", f"{REG}/strava/free:master-1",
                        pattern="strava/free:master*")])
    d = start_daemon(daemon, emu, "--admin-token", TOKEN,
                     env={"AUTODEPLOY_SLACK_WEBHOOK_URL": slack.url + HOOK,
                          "AUTODEPLOY_SLACK_SIGNING_SECRET": SECRET})
    for n in [*names, "free"]:
        assert d.post_event(push(repo=f"strava/{n}", tag="master-2", pusher="alice")[0]).status == 202
    pend = {n: wait_approval(d, f"/prod/{n}") for n in names[:3]}
    assert wait_records(d, "/staging/free")[0]["state"] == "succeeded", "an app without the label deploys"
    for n in names[:3]:
        a = pend[n]
        assert len(a["id"]) == 32 and a["image"] == f"{REG}/strava/{n}:master-2"
        assert a["old_image"] == f"{REG}/strava/{n}:master-1" and a["pusher"] == "alice"
        assert a["expires_at"] > a["created_at"] and a["decided_by"] is None
        assert records(d, f"/prod/{n}")[0]["state"] == "awaiting_approval"
    # The channel is asked, with buttons carrying the id.
    wait_text(slack, "Approval needed to deploy strava/api:master-2 to /prod/api")
    asked = next(m["json"] for m in slack.messages()
                 if "Approval needed to deploy strava/api" in m["json"].get("text", ""))
    buttons = asked["blocks"][1]["elements"]
    assert [(b["action_id"], b["value"]) for b in buttons] == [
        ("approve", pend["api"]["id"]), ("reject", pend["api"]["id"])]
    assert not deployments_by_autodeployd(emu, "/prod/api"), "nothing deploys before approval"
    metrics = d.request("GET", "/metrics").body.decode()
    pending = [ln for ln in metrics.splitlines() if ln.startswith("autodeploy_approvals_pending ")]
    assert pending and float(pending[0].split()[1]) >= 3, pending

    # API: no action on GET, refused without or with a wrong token, a bad body.
    api = pend["api"]["id"]
    assert decide(d, api, "approve", method="GET").status == 405
    assert decide(d, api, "approve", token=None).status == 401
    assert decide(d, api, "approve", token="wrong").status == 401
    assert decide(d, api, "approve", body={"via": "slack"}).status == 400
    assert decide(d, "0" * 32, "approve").status == 404
    assert decide(d, api, "launch").status == 404
    # An oversized body is answered 413 on both paths; it is nobody's webhook.
    hooks_413 = d.metrics().get('autodeploy_webhook_requests_total{code="413"}')
    big = decide(d, api, "approve", body={"by": "x" * 70000})
    assert big.status == 413 and big.json()["error"]
    assert slack.interact(slack_url(d), SECRET, api, body=b"payload=" + b"x" * 70000)[0] == 413
    assert d.metrics().get('autodeploy_webhook_requests_total{code="413"}') == hooks_413
    assert "webhook refused" not in d.log_text()
    r = decide(d, api, "approve", body={"by": "carol", "via": "console"})
    assert r.status == 200 and r.json()["state"] == "approved" and r.json()["decided_via"] == "console"
    again = decide(d, api, "approve")
    assert again.status == 409 and "approved" in again.json()["error"]
    rec = wait_records(d, "/prod/api")[0]
    assert rec["state"] == "succeeded" and rec["new_image"] == f"{REG}/strava/api:master-2"
    assert (rec["approval_id"], rec["decided_by"], rec["decided_via"]) == (api, "carol", "console")
    assert len(deployments_by_autodeployd(emu, "/prod/api")) == 1, "approved twice, deployed once"
    wait_text(slack, "Approved deploying strava/api:master-2 to /prod/api by carol (console)")

    # Slack: refused when badly signed, stale or replayed; the user who clicked is recorded.
    web = pend["web"]["id"]
    st, _, _ = slack.interact(slack_url(d), "not-the-secret", web)
    assert st == 401
    st, _, _ = slack.interact(slack_url(d), SECRET, web, timestamp=time.time() - 600)
    assert st == 401
    assert wait_approval(d, "/prod/web")["id"] == web, "still pending after refused clicks"
    st, body, sent = slack.interact(slack_url(d), SECRET, web, user="dave <@U1>")
    assert st == 200 and json.loads(body)["status"] == 200
    st, _, _ = slack.interact(slack_url(d), SECRET, web, body=sent["body"],
                              timestamp=sent["timestamp"], signature=sent["signature"])
    assert st == 401, "a replayed click is refused"
    rec = wait_records(d, "/prod/web")[0]
    assert rec["state"] == "succeeded" and rec["decided_by"] == "dave <@U1>" and rec["decided_via"] == "slack"
    assert len(deployments_by_autodeployd(emu, "/prod/web")) == 1
    t = wait_text(slack, "Approved deploying strava/web:master-2")
    assert "by dave &lt;@" in t and "U1&gt; (slack)" in t and "<@U1>" not in t, t

    # A newer push supersedes: the old button deploys nothing; the new one is rejected.
    old = pend["old"]["id"]
    d.post_event(push(repo="strava/old", tag="master-3")[0])
    new = wait_approval(d, "/prod/old", not_id=old)
    assert new["image"] == f"{REG}/strava/old:master-3"
    assert next(a for a in approvals(d) if a["id"] == old)["state"] == "superseded"
    wait_text(slack, "Superseded: strava/old:master-2 will not deploy to /prod/old")
    st, body, _ = slack.interact(slack_url(d), SECRET, old, user="mallory")
    assert st == 200 and json.loads(body)["status"] == 409
    t = wait_text(slack, "Skipped deploying strava/old:master-2 to /prod/old")
    assert "mallory clicked Approve in Slack" in t and "superseded" in t, t
    st, body, _ = slack.interact(slack_url(d), SECRET, new["id"], action="reject", user="erin")
    assert st == 200 and json.loads(body)["result"]["state"] == "rejected"
    assert decide(d, new["id"], "approve").status == 409
    wait_text(slack, "Rejected deploying strava/old:master-3 to /prod/old by erin (slack)")
    assert wait_for(lambda: records(d, "/prod/old")[0]["state"] == "rejected")
    assert not deployments_by_autodeployd(emu, "/prod/old")

    # The 1 s approval expires on its own, and is reported.
    exp = wait_approval(d, "/prod/exp", state="expired")
    wait_text(slack, "Approval expired: nobody approved deploying strava/exp:master-2")
    assert decide(d, exp["id"], "approve").status == 409
    assert not deployments_by_autodeployd(emu, "/prod/exp")

    # Secrets reach no log and no message.
    everything = d.log_text() + json.dumps(slack.messages())
    assert SECRET not in everything and TOKEN not in everything


def test_restart_keeps_pending_and_off_without_secrets(daemon, marathon, slack, tmp_path):
    emu = marathon([gated("api")])
    state = str(tmp_path / "state.jsonl")
    d = start_daemon(daemon, emu, "--state-file", state)
    # Without --slack-signing-secret the interactivity URL does not exist; without
    # --admin-token approvals cannot be decided over the API.
    st, _, _ = slack.interact(slack_url(d), SECRET, "0" * 32)
    assert st == 404
    d.post_event(push(repo="strava/api", tag="master-2")[0])
    a = wait_approval(d, "/prod/api")
    assert decide(d, a["id"], "approve").status == 403
    assert d.stop() == 0

    d2 = start_daemon(daemon, emu, "--state-file", state, "--admin-token", TOKEN)
    kept = wait_approval(d2, "/prod/api")
    assert kept["id"] == a["id"] and kept["expires_at"] == a["expires_at"]
    # An operator's pause holds the approved push until the resume.
    auth = {"Authorization": "Bearer " + TOKEN}
    assert d2.request("POST", "/v1/pause", headers=auth).status == 200
    assert decide(d2, a["id"], "approve", body={"by": "ops"}).status == 200
    held = records(d2, "/prod/api")[0]
    assert held["state"] == "approved" and "resumed" in held["reason"], held
    assert not deployments_by_autodeployd(emu, "/prod/api")
    assert d2.request("POST", "/v1/resume", headers=auth).status == 200
    rec = wait_records(d2, "/prod/api")[0]
    assert rec["state"] == "succeeded" and rec["decided_by"] == "ops" and rec["decided_via"] == "api"
    assert len(deployments_by_autodeployd(emu, "/prod/api")) == 1
