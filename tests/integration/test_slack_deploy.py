"""What a Slack channel sees for real deployments: the exact messages, in order, for a
successful, a failed, a timed-out and a superseded deploy; a deploy that completes while
Slack is down; hostile task messages escaped; per-app channels."""
import json
import re
import time

import pytest

from conftest import wait_for
from deploy_helpers import app, marathon, push, start_daemon, wait_records  # noqa: F401

IMG = "registry.example.com:5000/strava/foo-service:master-1"
HOOK = "/services/T000/B000/deploytests"


def texts(sink, n, timeout=15):
    wait_for(lambda: len([m for m in sink.messages() if m["status"] == 200]) >= n,
             timeout=timeout, what=f"{n} Slack messages")
    time.sleep(0.3)
    return [m["json"] for m in sink.messages() if m["status"] == 200]


def run(daemon, emu, sink, *args):
    return start_daemon(daemon, emu, "--marathon-ui-url", "http://marathon.example.com",
                        *args, env={"AUTODEPLOY_SLACK_WEBHOOK_URL": sink.url + HOOK})


def test_successful_deploy_messages(daemon, marathon, slack):
    emu = marathon([app("/staging/foo", IMG)])
    d = run(daemon, emu, slack)
    body, ev = push(tag="master-2", pusher="alice")
    d.post_event(body)
    rec = wait_records(d, "/staging/foo")[0]
    short = ev["target"]["digest"][7:19]
    msgs = texts(slack, 3)
    assert [m["text"] for m in msgs[:2]] == [
        f"Pushed strava/foo-service:master-2 ({short}) by alice: will deploy to /staging/foo",
        "Deploying strava/foo-service:master-2 to /staging/foo, pushed by alice",
    ]
    assert re.fullmatch(r"Deployed strava/foo-service:master-2 to /staging/foo in [0-9.]+s",
                        msgs[2]["text"]), msgs[2]["text"]
    deploying = msgs[1]["attachments"][0]
    assert IMG in deploying["text"] and rec["new_image"] in deploying["text"]
    fields = {f["title"]: f["value"] for f in deploying["fields"]}
    assert fields["Deployment"] == rec["deployment_id"] and fields["Instances"] == "2"
    assert deploying["title_link"] == "http://marathon.example.com/ui/#/apps/%2Fstaging%2Ffoo"
    assert msgs[2]["attachments"][0]["color"] != msgs[1]["attachments"][0]["color"]
    assert len(msgs) == 3


def test_failed_deploy_messages_escape_task_message(daemon, marathon, slack):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "fail", seconds=0.3,
                      message="<!channel> crashed, see <http://evil|click>", times=1)
    d = run(daemon, emu, slack)
    d.post_event(push(tag="master-3")[0])
    assert wait_records(d, "/staging/foo")[0]["state"] == "failed"
    msgs = texts(slack, 3)
    assert [m["text"].split(" ")[0] for m in msgs] == ["Pushed", "Deploying", "Failed"]
    raw = json.dumps(msgs[2])
    assert "<!channel>" not in raw and "<http://evil|click>" not in raw
    assert "&lt;!channel&gt;" in raw and "&lt;http://evil|click&gt;" in raw
    fields = {f["title"]: f["value"] for f in msgs[2]["attachments"][0]["fields"]}
    assert "TASK_FAILED" in fields["Last task failure"]


def test_timed_out_deploy_messages(daemon, marathon, slack):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "hang", times=1)
    d = run(daemon, emu, slack, "--deploy-timeout", "1s")
    d.post_event(push(tag="master-4")[0])
    assert wait_records(d, "/staging/foo")[0]["state"] == "timed_out"
    msgs = texts(slack, 3)
    assert msgs[2]["text"].startswith("Timed out deploying strava/foo-service:master-4 to /staging/foo")
    assert "deploy-timeout" in msgs[2]["text"]


def test_refused_rollback_gets_its_own_message(daemon, marathon, slack):
    """The deployment hangs past the timeout and Marathon refuses the rollback: after the
    time-out message comes one that says the rollback was refused, with Marathon's answer and
    both images, so the channel knows the app needs a hand."""
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "hang", times=1)
    emu.add_fault({"method": "DELETE", "path": "/v2/deployments/*", "count": 1, "status": 500,
                   "body": {"message": "leader lost"}})
    d = run(daemon, emu, slack, "--deploy-timeout", "1s", "--rollback-on-failure")
    d.post_event(push(tag="master-5")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "rollback_failed" and "rollback was refused" in rec["reason"], rec
    msgs = texts(slack, 4)
    assert [m["text"].split(" ")[0] for m in msgs] == ["Pushed", "Deploying", "Timed", "Rollback"]
    assert msgs[3]["text"] == ("Rollback of /staging/foo refused: HTTP 500: leader lost; "
                               "it needs a hand"), msgs[3]["text"]
    att = msgs[3]["attachments"][0]
    fields = {f["title"]: f["value"] for f in att["fields"]}
    assert fields["Previous image"] == IMG
    assert rec["new_image"] in fields["Failed image"]
    assert "deploy-timeout" in fields["Why it was rolled back"]
    assert att["color"] == msgs[2]["attachments"][0]["color"]


def test_superseded_push_message(daemon, marathon, slack):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "succeed", seconds=1.5)
    d = run(daemon, emu, slack, "--slack-pushes", "none")
    d.post_event(push(tag="master-10", ts="2026-11-25T10:00:01Z")[0])
    wait_for(lambda: any(r["state"] == "deploying" for r in
                         d.request("GET", "/v1/deployments").json()["deployments"]),
             what="first deployment running")
    d.post_event(push(tag="master-11", ts="2026-11-25T10:00:02Z")[0])
    d.post_event(push(tag="master-12", ts="2026-11-25T10:00:03Z")[0])
    wait_records(d, "/staging/foo", 3, timeout=20)
    msgs = [m["text"] for m in texts(slack, 5, timeout=20)]
    assert msgs[0].startswith("Deploying strava/foo-service:master-10")
    sup = [t for t in msgs if t.startswith("Superseded")]
    assert sup == [f"Superseded: strava/foo-service:master-11 will not deploy to /staging/foo: "
                   f"a newer push (strava/foo-service:master-12) will deploy instead"]
    order = [t.split(" ")[0] + " " + re.search(r"master-\d+", t).group(0) for t in msgs]
    assert order.index("Deployed master-10") < order.index("Deploying master-12") < order.index("Deployed master-12")


def test_deploy_completes_while_slack_is_down(daemon, marathon, slack):
    emu = marathon([app("/staging/foo", IMG)])
    slack.fail_next(status=500, count=1000)
    d = run(daemon, emu, slack)
    t0 = time.monotonic()
    d.post_event(push(tag="master-5")[0])
    rec = wait_records(d, "/staging/foo")[0]
    assert rec["state"] == "succeeded"
    assert time.monotonic() - t0 < 5
    assert d.metrics()['autodeploy_slack_messages_total{result="sent"}'] == 0


def test_app_channel_override(daemon, marathon, slack):
    emu = marathon([app("/staging/foo", IMG, labels={"autodeploy.slack-channel": "#team-foo"})])
    d = run(daemon, emu, slack, "--slack-pushes", "none")
    d.post_event(push(tag="master-6")[0])
    wait_records(d, "/staging/foo")
    msgs = texts(slack, 2)
    assert all(m.get("channel") == "#team-foo" for m in msgs)


def test_replayed_push_is_not_announced_twice(daemon, marathon, slack, tmp_path):
    """A push waiting in a paused queue when autodeployd stops comes back from --state-file,
    and so does the pause, which the channel is told of at the start. After the resume the
    channel hears how the deployment went, and no second 'Pushed'."""
    from faults_helpers import ADMIN, pause, resume
    state = str(tmp_path / "state")
    emu = marathon([app("/staging/foo", IMG)])
    d = run(daemon, emu, slack, "--admin-token", ADMIN, "--state-file", state)
    pause(d)
    d.post_event(push(tag="master-7", pusher="alice")[0])
    assert d.stop() == 0
    before = len(texts(slack, 1))  # the pause message
    d2 = run(daemon, emu, slack, "--admin-token", ADMIN, "--state-file", state)
    resume(d2)
    assert wait_records(d2, "/staging/foo")[0]["state"] == "succeeded"
    msgs = texts(slack, before + 4)[before:]
    assert [m["text"] for m in msgs[:2]] == [
        "Deployments paused by an operator before autodeployd restarted (kept in --state-file)",
        "Deployments resumed by an operator (POST /v1/resume)"]
    assert [m["text"].split(" ")[0] for m in msgs[2:]] == ["Deploying", "Deployed"], \
        [m["text"] for m in msgs]
    assert msgs[2]["text"] == "Deploying strava/foo-service:master-7 to /staging/foo, pushed by alice"


def test_replayed_push_already_deployed_closes_the_story(daemon, marathon, slack, tmp_path):
    """Killed while following a deployment that Marathon then finishes: after the restart the
    push comes back from --state-file and finds the app done. The channel, which saw
    'Deploying' before the crash, is told it ended while autodeployd was stopped."""
    state = str(tmp_path / "state")
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "succeed", seconds=1.5, times=1)
    d = run(daemon, emu, slack, "--state-file", state)
    d.post_event(push(tag="master-8")[0])
    wait_for(lambda: any(m["json"]["text"].startswith("Deploying") for m in slack.messages()
                         if m["status"] == 200), what="Deploying announced")
    d.proc.kill()
    d.proc.wait(timeout=5)
    wait_for(lambda: not emu.list_deployments(), what="Marathon finished it")
    n = len(texts(slack, 2))
    d2 = run(daemon, emu, slack, "--state-file", state)
    assert wait_records(d2, "/staging/foo")[0]["state"] == "unchanged"
    msgs = texts(slack, n + 1)[n:]
    assert len(msgs) == 1 and msgs[0]["text"] == (
        "Skipped deploying strava/foo-service:master-8 to /staging/foo: the app already runs "
        "this image and digest: its deployment ended while autodeployd was stopped"), msgs
