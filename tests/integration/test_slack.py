"""Slack delivery end to end: the real autodeployd posting to the Slack sink
(tests/emulator/slack_sink.py).

Without --marathon-url every accepted push yields a REPORT_PUSHED report with no matching app,
so with --slack-pushes all each push is one Slack message. These tests check its
exact content, escaping of a hostile pusher, the pacing and retry rules (429 + Retry-After,
500, a hanging or absent Slack), the bounded queue, the --slack-pushes filter, and that the
webhook URL stays out of the logs and the API. The messages of real deployments, in order,
are tested in test_slack_deploy.py; every kind's exact content is pinned in
tests/unit/test_notify.c.
"""
import copy
import json
import os
import sys
import time

import pytest

from conftest import ROOT, fixture_bytes, free_port, run_cli, wait_for

sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))
from slack_sink import SlackSink  # noqa: E402

PUSH = json.loads(fixture_bytes("registry", "push_oci_manifest.json"))
SECRET_PATH = "/services/T0SECRET/B0SECRET/s3cr3tW3bh00kT0k3n"
METRIC = "autodeploy_slack_messages_total"


def hook_url(sink):
    return sink.url + SECRET_PATH


def push_body(n=0, pusher=None):
    """The OCI push fixture, made distinct by n (event id, tag, digest) so that the queue does
    not take it for a duplicate."""
    body = copy.deepcopy(PUSH)
    ev = body["events"][0]
    if n:
        ev["id"] = "%s-%d" % (ev["id"], n)
        ev["target"]["tag"] = "master-abc%03d" % n
        ev["target"]["digest"] = "sha256:" + ("%064x" % n)
    if pusher is not None:
        ev["actor"] = {"name": pusher}
    return json.dumps(body).encode()


def start(daemon, sink, *args, env=None):
    full_env = {"AUTODEPLOY_SLACK_WEBHOOK_URL": hook_url(sink)}
    full_env.update(env or {})
    return daemon(args=list(args), env=full_env)


def metric(d, result):
    return d.metrics().get('%s{result="%s"}' % (METRIC, result), 0)


def expected_pushed(tag="master-abc123", short="0a8f49daa4be", pusher="unknown"):
    summary = "Pushed strava/foo-service:%s (%s)%s: no app deploys it" % (
        tag, short, "" if pusher == "unknown" else " by " + pusher)
    return {
        "text": summary,
        "attachments": [{
            "fallback": summary,
            "color": "#439FE0",
            "title": "Pushed strava/foo-service:" + tag,
            "fields": [
                {"title": "Digest", "value": short, "short": True},
                {"title": "Pushed by", "value": pusher, "short": True},
                {"title": "Registry", "value": "127.0.0.1:5000", "short": True},
                {"title": "Deploys to", "value": "no app", "short": False},
            ],
            "mrkdwn_in": ["text"],
        }],
        "unfurl_links": False,
        "unfurl_media": False,
    }


def test_pushed_message_exact_content(slack, daemon):
    d = start(daemon, slack, "--slack-pushes", "all")
    assert d.post_event(push_body()).status == 202
    msgs = slack.wait_for(1, timeout=5)
    assert len(msgs) == 1
    m = msgs[0]
    assert m["status"] == 200 and m["path"] == SECRET_PATH
    assert m["headers"]["Content-Type"] == "application/json"
    assert m["json"] == expected_pushed()
    wait_for(lambda: metric(d, "sent") == 1, timeout=5, what="sent counted")
    assert metric(d, "retried") == 0 and metric(d, "failed") == 0 and metric(d, "dropped") == 0
    time.sleep(1.2)
    assert len(slack.messages()) == 1, "one message per push"


def test_hostile_pusher_arrives_escaped(slack, daemon):
    d = start(daemon, slack, "--slack-pushes", "all")
    evil = "<!channel> <http://evil|click>"
    assert d.post_event(push_body(pusher=evil)).status == 202
    [m] = slack.wait_for(1, timeout=5)
    escaped = "&lt;!channel&gt; &lt;http://evil|click&gt;"
    assert m["json"] == expected_pushed(pusher=escaped)
    assert "<" not in m["body"] and ">" not in m["body"]


def test_429_retry_after_is_honoured(slack, daemon):
    d = start(daemon, slack, "--slack-pushes", "all")
    slack.fail_next(status=429, retry_after=2, count=1)
    assert d.post_event(push_body()).status == 202
    msgs = slack.wait_for(2, timeout=8)
    assert [m["status"] for m in msgs] == [429, 200]
    assert msgs[0]["body"] == msgs[1]["body"]
    gap = msgs[1]["time"] - msgs[0]["time"]
    assert 2.0 <= gap < 3.5, "retried %.2fs after a 429 with Retry-After: 2" % gap
    wait_for(lambda: metric(d, "sent") == 1, timeout=5, what="sent counted")
    assert metric(d, "retried") == 1 and metric(d, "failed") == 0


def test_500_is_retried_with_backoff_then_sent(slack, daemon):
    d = start(daemon, slack, "--slack-pushes", "all")
    slack.fail_next(status=500, count=2)
    assert d.post_event(push_body()).status == 202
    msgs = slack.wait_for(3, timeout=9)
    assert [m["status"] for m in msgs] == [500, 500, 200]
    gaps = [b["time"] - a["time"] for a, b in zip(msgs, msgs[1:])]
    assert all(g >= 0.95 for g in gaps), "never more than one request per second: %r" % gaps
    assert gaps[1] >= 1.4, "the second retry waits about twice as long: %r" % gaps
    wait_for(lambda: metric(d, "sent") == 1, timeout=5, what="sent counted")
    assert metric(d, "retried") == 2
    assert any(r.get("msg") == "Slack message will be retried" and r.get("status") == "500"
               for r in d.logs())


def test_one_message_per_second(slack, daemon):
    d = start(daemon, slack, "--slack-pushes", "all")
    for n in range(1, 4):
        assert d.post_event(push_body(n)).status == 202
    msgs = slack.wait_for(3, timeout=8)
    assert [m["json"]["attachments"][0]["title"] for m in msgs] == [
        "Pushed strava/foo-service:master-abc%03d" % n for n in range(1, 4)], "in push order"
    gaps = [b["time"] - a["time"] for a, b in zip(msgs, msgs[1:])]
    assert all(g >= 0.95 for g in gaps), gaps


def test_hanging_slack_delays_nothing_and_later_messages_go_through(slack, daemon):
    d = start(daemon, slack, "--slack-pushes", "all", "--slack-timeout", "1s",
              "--slack-retries", "1")
    slack.fail_next(mode="hang", seconds=5, count=2)
    for n in range(1, 4):
        t0 = time.monotonic()
        r = d.post_event(push_body(n))
        assert r.status == 202 and time.monotonic() - t0 < 0.5, "webhook answered fast"
        time.sleep(0.1)
    wait_for(lambda: len([p for p in d.pushes() if p["state"] == "received"]) == 3, timeout=3,
             what="pushes handled while Slack hangs")

    def delivered():
        ok = [m for m in slack.messages() if m["status"] == 200]
        return ok if len(ok) >= 2 else None

    msgs = wait_for(delivered, timeout=9, what="later messages delivered")
    assert [m["json"]["attachments"][0]["title"] for m in msgs] == [
        "Pushed strava/foo-service:master-abc002", "Pushed strava/foo-service:master-abc003"]
    wait_for(lambda: metric(d, "sent") == 2, timeout=3, what="sent counted")
    assert metric(d, "failed") == 1 and metric(d, "retried") == 1
    assert any(r.get("msg") == "Slack message dropped after its last retry" for r in d.logs())


def test_slack_down_does_not_stop_the_daemon(daemon):
    port = free_port()  # nothing listens there
    d = daemon(args=["--slack-pushes", "all", "--slack-retries", "1"],
               env={"AUTODEPLOY_SLACK_WEBHOOK_URL": "http://127.0.0.1:%d%s" % (port, SECRET_PATH)})
    for n in range(1, 3):
        t0 = time.monotonic()
        assert d.post_event(push_body(n)).status == 202
        assert time.monotonic() - t0 < 0.5
    wait_for(lambda: len([p for p in d.pushes() if p["state"] == "received"]) == 2, timeout=3,
             what="pushes handled while Slack is down")
    wait_for(lambda: metric(d, "failed") == 2, timeout=9, what="both messages given up")
    assert metric(d, "sent") == 0 and metric(d, "retried") == 2
    assert SECRET_PATH not in d.log_text()
    assert d.stop() == 0


def test_full_queue_drops_the_oldest(slack, daemon):
    d = start(daemon, slack, "--slack-pushes", "all", "--slack-queue-size", "2",
              "--slack-timeout", "2s", "--slack-retries", "0")
    slack.fail_next(mode="hang", seconds=5, count=1)
    assert d.post_event(push_body(1)).status == 202
    slack.wait_for(1, timeout=3)  # the worker is now stuck on message 1
    for n in range(2, 6):
        assert d.post_event(push_body(n)).status == 202
    wait_for(lambda: metric(d, "dropped") == 2, timeout=3, what="two oldest dropped")
    msgs = slack.wait_for(3, timeout=8)
    assert [m["json"]["attachments"][0]["title"] for m in msgs] == [
        "Pushed strava/foo-service:master-abc%03d" % n for n in (1, 4, 5)]
    wait_for(lambda: metric(d, "sent") == 2, timeout=3, what="sent counted")
    assert metric(d, "failed") == 1
    assert any(r.get("msg") == "Slack queue full: oldest message dropped" for r in d.logs())


def test_pushes_filter(slack, daemon):
    # matched (the default) announces only pushes that deploy somewhere: this one deploys nowhere
    d = start(daemon, slack)
    d2 = start(daemon, slack, "--slack-pushes", "none")
    assert d.post_event(push_body(1)).status == 202
    assert d2.post_event(push_body(2)).status == 202
    for x in (d, d2):
        wait_for(lambda: [p for p in x.pushes() if p["state"] == "received"], timeout=3,
                 what="push handled")
    time.sleep(1.5)
    assert slack.messages() == []
    assert metric(d, "sent") == 0 and metric(d2, "sent") == 0


def test_webhook_url_never_logged_nor_served(slack, daemon, tmp_path):
    secret_file = tmp_path / "slack-url"
    secret_file.write_text(hook_url(slack) + "\n")
    d = daemon(args=["--slack-pushes", "all", "--log-level", "debug"],
               env={"AUTODEPLOY_SLACK_WEBHOOK_URL_FILE": str(secret_file)})
    slack.fail_next(status=500, count=1)
    slack.fail_next(status=404, count=1)  # the retry is refused: a final failure, logged
    assert d.post_event(push_body(1)).status == 202
    assert d.post_event(push_body(2)).status == 202
    msgs = slack.wait_for(3, timeout=8)
    assert [m["status"] for m in msgs] == [500, 404, 200]
    assert msgs[0]["path"] == SECRET_PATH, "the URL was read from the file"
    wait_for(lambda: metric(d, "sent") == 1, timeout=3, what="sent counted")
    assert metric(d, "failed") == 1
    assert any(r.get("msg") == "Slack refused the message; not retried" for r in d.logs())
    d.stop()
    text = d.log_text()
    assert "s3cr3tW3bh00kT0k3n" not in text and "T0SECRET" not in text
    assert any(r.get("msg") == "Slack notifications enabled" and r.get("host") == "127.0.0.1:%d"
               % slack.port for r in d.logs())


def test_api_does_not_show_the_webhook_url(slack, daemon):
    d = start(daemon, slack, "--slack-pushes", "all")
    assert d.post_event(push_body()).status == 202
    slack.wait_for(1, timeout=5)
    for path in ("/v1/pushes", "/metrics", "/healthz"):
        body = d.request("GET", path).body.decode()
        assert "s3cr3tW3bh00kT0k3n" not in body, path
    assert "s3cr3tW3bh00kT0k3n" not in json.dumps(d.config)


def test_shutdown_is_bounded_while_slack_hangs(slack, daemon):
    d = start(daemon, slack, "--slack-pushes", "all", "--slack-timeout", "2s")
    slack.fail_next(mode="hang", seconds=30, count=10)
    for n in range(1, 4):
        assert d.post_event(push_body(n)).status == 202
    slack.wait_for(1, timeout=3)
    t0 = time.monotonic()
    assert d.stop() == 0
    took = time.monotonic() - t0
    assert took < 5, "stopped in %.1fs" % took
    assert any(r.get("msg") in ("Slack messages still queued at exit are dropped",
                                "Slack message dropped: shutting down") for r in d.logs())


def test_unusable_webhook_url_is_refused_without_echoing_it():
    r = run_cli("--listen", "127.0.0.1:0", "--slack-pushes", "all",
                env={"AUTODEPLOY_SLACK_WEBHOOK_URL": "ftp://hooks.example.com" + SECRET_PATH})
    assert r.returncode == 2
    assert "https://" in r.stderr, r.stderr
    assert "T0SECRET" not in r.stdout + r.stderr


def test_shutdown_abandons_a_hanging_request_at_the_flush_deadline(slack, daemon):
    """A request already in flight when SIGTERM arrives is not waited for up to its own
    --slack-timeout (30 s here): it is abandoned when the shutdown's flush time is over."""
    d = start(daemon, slack, "--slack-pushes", "all", "--slack-timeout", "30s")
    slack.fail_next(mode="hang", seconds=40, count=10)
    assert d.post_event(push_body(1)).status == 202
    slack.wait_for(1, timeout=3)  # the request is in flight, Slack silent
    t0 = time.monotonic()
    assert d.stop(timeout=40) == 0
    took = time.monotonic() - t0
    assert took < 5, "stopped in %.1fs" % took
    assert any(r.get("msg") == "Slack message dropped: shutting down" for r in d.logs()), \
        [r.get("msg") for r in d.logs()][-5:]
