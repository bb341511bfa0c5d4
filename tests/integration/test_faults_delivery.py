"""Fault injection around delivery: Slack failing while real deployments run, the registry's
side (the same event delivered again, a flood against a full queue, events out of order), and
autodeployd itself stopped by SIGTERM or killed by SIGKILL in the middle of a deployment.

Each test asserts: no crash (alive, /healthz answers; or a clean exit for the signal tests),
no duplicate deploy (Marathon writes and stored app versions counted), and every accepted push
ends visibly: deployed, skipped with a reason, or failed and reported. test_slack.py covers
Slack's failure modes for push announcements without Marathon, test_slack_deploy.py the exact
messages of real deployments, test_operations.py SIGTERM within and past the grace; these
combine the faults with deployments and restarts.
"""
import http.client
import json
import signal
import threading
import time

import pytest

from conftest import free_port, run_cli, wait_for
from deploy_helpers import (app, digest, marathon, push, records, start_daemon,  # noqa: F401
                            wait_records, writes)
from faults_helpers import (ADMIN, assert_alive, assert_all_terminal, digest_label, image_of,
                            log_msgs, pause, resume, versions, wait_terminal)

IMG = "registry.example.com:5000/strava/foo-service:master-1"
HOOK = "/services/T000/B000/faults"


def slack_metric(d, result):
    return d.metrics().get('autodeploy_slack_messages_total{result="%s"}' % result, 0)


# ------------------------------------------------------------------ Slack

@pytest.mark.parametrize("fault", ["429", "500", "down", "hang"])
def test_slack_fault_never_delays_nor_duplicates_deploys(daemon, marathon, slack, fault):
    """Slack answers 429 + Retry-After, 500s, is down (nothing listens) or hangs while two apps
    deploy. The deployments end on time and once each; Slack's trouble shows only in the
    Slack counters. When Slack recovers (429, 500) every message arrives exactly once, in
    order; when it never does (down, hang) the messages are given up and counted, and
    autodeployd still stops promptly."""
    emu = marathon([app("/staging/a", IMG), app("/staging/b", IMG)])
    hook = slack.url + HOOK
    if fault == "429":
        slack.fail_next(status=429, retry_after=1, count=2)
    elif fault == "500":
        slack.fail_next(status=500, count=2)
    elif fault == "hang":
        slack.fail_next(mode="hang", seconds=8, count=100)
    else:
        hook = "http://127.0.0.1:%d%s" % (free_port(), HOOK)
    d = start_daemon(daemon, emu, "--slack-pushes", "none", "--slack-timeout", "1s",
                     "--slack-retries", "1" if fault in ("down", "hang") else "3",
                     env={"AUTODEPLOY_SLACK_WEBHOOK_URL": hook})
    t0 = time.monotonic()
    assert d.post_event(push(tag="master-2")[0]).status == 202
    for a in ("/staging/a", "/staging/b"):
        assert wait_records(d, a)[0]["state"] == "succeeded"
        assert versions(emu, a) == 2
    assert time.monotonic() - t0 < 4, "deploys waited for Slack"
    assert len(writes(emu)) == 2
    assert_alive(d)
    if fault in ("429", "500"):
        # Deploying + Deployed for each app: four messages, each exactly once.
        def delivered():
            ok = [m for m in slack.messages() if m["status"] == 200]
            return ok if len(ok) >= 4 else None
        ok = wait_for(delivered, timeout=12, what="every Slack message delivered")
        time.sleep(1.2)
        ok = [m["json"]["text"] for m in slack.messages() if m["status"] == 200]
        assert len(ok) == 4 and len(set(ok)) == 4, ok
        for a in ("/staging/a", "/staging/b"):
            mine = [t.split(" ")[0] for t in ok if a in t]
            assert mine == ["Deploying", "Deployed"], ok
        assert slack_metric(d, "retried") == 2 and slack_metric(d, "failed") == 0
    else:
        wait_for(lambda: slack_metric(d, "failed") >= 1, timeout=10, what="a message given up")
        assert slack_metric(d, "sent") == 0
        t1 = time.monotonic()
        assert d.stop() == 0
        assert time.monotonic() - t1 < 5, "stop waited for Slack"


# ------------------------------------------------------------------ the same event again

def test_same_event_three_times_concurrently_and_after_forgetting(daemon, marathon):
    """The registry re-sends an event after a timeout: three deliveries race each other while
    the deployment has not started, three more arrive while it runs. One is accepted, the five
    others are duplicates; one PATCH. Later the duplicate memory has forgotten the event
    (--dedup-size 16, the smallest, and 40 other pushes since): a fourth delivery is accepted again, and Marathon's
    autodeploy.digest label makes it 'unchanged', with no write."""
    emu = marathon([app("/staging/foo", IMG), app("/staging/bar", IMG, pattern="strava/bar:*")])
    emu.set_behaviour("/staging/foo", "succeed", seconds=1.0)
    d = start_daemon(daemon, emu, "--dedup-size", "16")
    body, ev = push(tag="master-3")
    answers = []

    def deliver():
        answers.append(d.post_event(body).json())

    threads = [threading.Thread(target=deliver) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/foo")),
             what="deploying")
    for _ in range(3):
        answers.append(d.post_event(body).json())
    assert sorted(a["accepted"] for a in answers) == [0, 0, 0, 0, 0, 1]
    assert sum(a["duplicate"] for a in answers) == 5
    assert wait_records(d, "/staging/foo")[0]["state"] == "succeeded"
    # Other pushes (matching no app) push the event out of the 16-key memory.
    for n in range(40):
        assert d.post_event(push(repo="strava/other", tag=f"o-{n}")[0]).json()["accepted"] == 1
    wait_for(lambda: all(p["state"] != "received" for p in d.pushes()), what="others handled")
    r = d.post_event(body).json()
    assert r["accepted"] == 1, r
    recs = wait_records(d, "/staging/foo", 2)
    assert recs[0]["state"] == "unchanged" and recs[0]["event_id"] == ev["id"], recs[0]
    assert len(writes(emu, "/staging/foo")) == 1 and versions(emu, "/staging/foo") == 2
    assert_all_terminal(d)
    assert_alive(d)


# ------------------------------------------------------------------ a flood against a full queue

N_APPS = 12
QUEUE = 4
FLOOD = 10000


def _flood_push(i):
    return push(repo=f"flood/app{i}", tag="v2", event_id=f"f100d000-0000-4000-8000-{i:012d}",
                dig=digest(f"flood-{i}"))[0]


def test_ten_thousand_requests_against_a_full_queue(daemon, marathon):
    """12 apps, each deploying flood/appN:*; --queue-size 4, workers paused by an operator.
    Apps 0-3 are accepted and fill the queue. Then 10,000 requests on one persistent
    connection re-deliver the pushes of apps 4-11 in turn (what a registry's retries of 8
    events look like): every one is answered 503 with Retry-After, nothing is queued or
    remembered, the daemon keeps serving. After resume the queue drains; the registry's next
    retries of the 8 deferred pushes are accepted as room appears.

    What is asserted: each of the 12 distinct pushes (12 distinct apps, so nothing may be
    superseded) is deployed exactly once: one PATCH and one new Marathon app version per app,
    a succeeded record per app, and no second record for any app despite ~1,250 deliveries of
    each deferred push; re-sending everything once more is all duplicates."""
    apps = [app(f"/flood/app{i}", f"registry.example.com/flood/app{i}:v1",
                pattern=f"flood/app{i}:*") for i in range(N_APPS)]
    emu = marathon(apps)
    d = start_daemon(daemon, emu, "--queue-size", str(QUEUE), "--admin-token", ADMIN)
    pause(d)
    for i in range(QUEUE):
        assert d.post_event(_flood_push(i)).json()["accepted"] == 1
    bodies = [_flood_push(i) for i in range(QUEUE, N_APPS)]
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    hdrs = {"Content-Type": "application/vnd.docker.distribution.events.v1+json"}
    statuses = {}
    retry_after = set()
    t0 = time.monotonic()
    for n in range(FLOOD):
        conn.request("POST", "/v1/webhooks/registry", body=bodies[n % len(bodies)], headers=hdrs)
        r = conn.getresponse()
        r.read()
        statuses[r.status] = statuses.get(r.status, 0) + 1
        if r.status == 503:
            retry_after.add(r.getheader("Retry-After"))
        assert time.monotonic() - t0 < 25, f"flood too slow: {n} requests"
    conn.close()
    assert statuses == {503: FLOOD}, statuses
    assert len(retry_after) == 1 and int(retry_after.pop()) >= 1
    assert_alive(d)
    m = d.metrics()
    assert m['autodeploy_webhook_requests_total{code="503"}'] == FLOOD
    assert m['autodeploy_events_total{result="deferred"}'] == FLOOD
    assert m["autodeploy_queue_depth"] == QUEUE
    assert writes(emu) == []
    resume(d)
    # The registry keeps retrying each deferred push (in order, one at a time) until accepted.
    pending = list(range(QUEUE, N_APPS))
    deadline = time.monotonic() + 20
    while pending:
        assert time.monotonic() < deadline, f"still deferred: {pending}"
        r = d.post_event(_flood_push(pending[0]))
        if r.status == 202:
            assert r.json()["accepted"] == 1
            pending.pop(0)
        else:
            assert r.status == 503 and r.headers.get("Retry-After")
            time.sleep(0.1)
    for i in range(N_APPS):
        rec = wait_records(d, f"/flood/app{i}")
        assert len(rec) == 1 and rec[0]["state"] == "succeeded", rec
    for i in range(N_APPS):
        assert len(writes(emu, f"/flood/app{i}")) == 1, i
        assert versions(emu, f"/flood/app{i}") == 2, i
        assert image_of(emu, f"/flood/app{i}") == f"registry.example.com/flood/app{i}:v2"
    for i in range(N_APPS):
        assert d.post_event(_flood_push(i)).json()["duplicate"] == 1
    time.sleep(0.5)
    assert len(records(d)) == N_APPS and len(writes(emu)) == N_APPS
    assert_alive(d)


# ------------------------------------------------------------------ events out of order

def test_mutable_tag_moves_delivered_out_of_order(daemon, marathon):
    """`master` moved A (10:00:01) then B (10:00:02); the registry delivers B first, then A
    (a retry after a timeout). B deploys; A is older than what the app runs: skipped with the
    reason, the app keeps B, one write."""
    emu = marathon([app("/staging/foo", "registry.example.com/strava/foo-service:master",
                        pattern="strava/foo-service:master")])
    d = start_daemon(daemon, emu)
    a, b = digest("moved-A"), digest("moved-B")
    d.post_event(push(tag="master", dig=b, ts="2026-11-25T10:00:02Z")[0])
    assert wait_records(d, "/staging/foo")[0]["state"] == "succeeded"
    r = d.post_event(push(tag="master", dig=a, ts="2026-11-25T10:00:01Z")[0])
    assert r.json()["accepted"] == 1  # another digest: a new push for the queue
    recs = wait_records(d, "/staging/foo", 2)
    assert recs[0]["digest"] == a and recs[0]["state"] == "skipped", recs[0]
    assert "older" in recs[0]["reason"]
    assert digest_label(emu, "/staging/foo") == b
    assert len(writes(emu)) == 1 and versions(emu, "/staging/foo") == 2
    assert_alive(d)


def test_envelope_with_events_in_reverse_order(daemon, marathon):
    """One envelope holds three pushes to one app, newest first. The newest deploys; the two
    older ones end superseded or skipped (older than what the app runs), each with a reason;
    the app never goes back to an older tag; one write."""
    emu = marathon([app("/staging/foo", IMG)])
    d = start_daemon(daemon, emu)
    evs = [json.loads(push(tag=f"master-{n}", ts=f"2026-11-25T10:00:0{n}Z")[0])["events"][0]
           for n in (7, 5, 6)]
    r = d.post_event(json.dumps({"events": evs}).encode())
    assert r.json()["accepted"] == 3
    recs = wait_terminal(d, "/staging/foo", n=3)
    by_tag = {x["tag"]: x for x in recs}
    assert by_tag["master-7"]["state"] == "succeeded"
    for t in ("master-5", "master-6"):
        assert by_tag[t]["state"] in ("superseded", "skipped") and by_tag[t]["reason"], by_tag[t]
    assert image_of(emu, "/staging/foo").endswith(":master-7")
    assert len(writes(emu)) == 1
    assert_alive(d)


# ------------------------------------------------------------------ autodeployd itself

def test_sigterm_mid_deploy_with_waiting_and_queued_pushes(daemon, marathon):
    """SIGTERM while /staging/a deploys (longer than --shutdown-grace), a newer push for
    /staging/a waits behind it, and a push for /staging/b sits in the paused queue. Exit 0
    promptly; each of the three is accounted for in the log: interrupted (Marathon goes on),
    skipped ('push again'), dropped from the queue. Marathon finishes the running deployment on
    its own. A restarted daemon given the three events again deploys exactly what was not
    deployed: a1 writes nothing (unchanged, or superseded by a2), a2 and b1 deploy once."""
    emu = marathon([app("/staging/a", IMG, pattern="strava/a:*"),
                    app("/staging/b", IMG, pattern="strava/b:*")])
    emu.set_behaviour("/staging/a", "succeed", seconds=2.5, times=1)
    d = start_daemon(daemon, emu, "--shutdown-grace", "300ms", "--admin-token", ADMIN)
    a1, _ = push(repo="strava/a", tag="a1", ts="2026-11-25T10:00:01Z")
    a2, _ = push(repo="strava/a", tag="a2", ts="2026-11-25T10:00:02Z")
    b1, _ = push(repo="strava/b", tag="b1", ts="2026-11-25T10:00:03Z")
    d.post_event(a1)
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/a")),
             what="a1 deploying")
    d.post_event(a2)
    wait_for(lambda: len(records(d, "/staging/a")) == 2, what="a2 waiting")
    pause(d)
    d.post_event(b1)
    assert d.metrics()["autodeploy_queue_depth"] == 1
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 6
    logs = d.logs()
    assert any(("Marathon goes on with it" in r.get("msg", "") or
                r.get("msg") == "deployment succeeded") and r.get("app") == "/staging/a"
               for r in logs)
    assert any(r.get("msg") == "deployment skipped" and r.get("tag") == "a2"
               and "stopped before deploying" in r.get("reason", "") for r in logs)
    assert any("still queued at exit" in r.get("msg", "") and r.get("tag") == "b1" for r in logs)
    # Marathon finished a1 by itself.
    wait_for(lambda: not emu.list_deployments(), what="a1 finished in Marathon")
    assert image_of(emu, "/staging/a").endswith(":a1")
    assert [r["path"] for r in writes(emu)] == ["/v2/apps/staging/a"]

    d2 = start_daemon(daemon, emu)
    for body in (a1, a2, b1):
        assert d2.post_event(body).json()["accepted"] == 1
    recs = wait_records(d2, "/staging/a", 2)
    by_tag = {r["tag"]: r["state"] for r in recs}
    # a1 is unchanged when its job runs alone, superseded when a2 already waits as the job
    # starts (one push per app deploys: the newest); either way it writes nothing.
    assert by_tag["a2"] == "succeeded" and by_tag["a1"] in ("unchanged", "superseded"), recs
    assert wait_records(d2, "/staging/b")[0]["state"] == "succeeded"
    assert len(writes(emu, "/staging/a")) == 2 and len(writes(emu, "/staging/b")) == 1
    assert versions(emu, "/staging/a") == 3 and versions(emu, "/staging/b") == 2
    assert_alive(d2)


def test_sigterm_honours_a_short_grace(daemon, marathon):
    """A deployment hangs; SIGTERM with --shutdown-grace 300ms must stop within about that
    (2.5 s allowed), report the deployment interrupted, and leave it running in Marathon."""
    emu = marathon([app("/staging/a", IMG, pattern="strava/a:*")])
    emu.set_behaviour("/staging/a", "hang", times=1)
    d = start_daemon(daemon, emu, "--shutdown-grace", "300ms")
    wait_for(lambda: d.metrics().get("autodeploy_event_stream_connected") == 1, what="stream up")
    d.post_event(push(repo="strava/a", tag="a1")[0])
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/a")),
             what="a1 deploying")
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    took = time.monotonic() - t0
    assert any("Marathon goes on with it" in m for m in log_msgs(d))
    assert len(emu.list_deployments()) == 1
    assert took < 2.5, "stopped %.1fs after SIGTERM with --shutdown-grace 300ms" % took


def test_sigkill_and_restart(daemon, marathon):
    """SIGKILL while /staging/a deploys and a push for /staging/b waits in the paused queue.

    Not recovered (all of it lived in memory only): the queue (b1 was accepted with a 202, so
    the registry will not send it again by itself), the duplicate memory, the pushes and
    deployment records (/v1/pushes and /v1/deployments start empty), and the following of the
    running deployment (nobody reports how a1 ends; Marathon finishes it regardless).
    Recovered, from Marathon's own state: the autodeploy.digest label written with the PATCH
    tells a restarted daemon that a1 is already deployed, so when the events are delivered
    again (registry retry, or an operator replaying them) a1 is 'unchanged' with no second
    write, and b1, which never reached Marathon, deploys once."""
    emu = marathon([app("/staging/a", IMG, pattern="strava/a:*"),
                    app("/staging/b", IMG, pattern="strava/b:*")])
    emu.set_behaviour("/staging/a", "succeed", seconds=1.5, times=1)
    d = start_daemon(daemon, emu, "--admin-token", ADMIN)
    a1, _ = push(repo="strava/a", tag="a1")
    b1, _ = push(repo="strava/b", tag="b1")
    d.post_event(a1)
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/a")),
             what="a1 deploying")
    pause(d)
    d.post_event(b1)
    d.proc.kill()
    d.proc.wait(timeout=5)
    assert d.proc.returncode == -signal.SIGKILL
    wait_for(lambda: not emu.list_deployments(), what="Marathon finished a1 by itself")
    assert image_of(emu, "/staging/a").endswith(":a1")

    d2 = start_daemon(daemon, emu)
    assert d2.pushes() == [] and records(d2) == []
    for body in (a1, b1):
        assert d2.post_event(body).json()["accepted"] == 1  # nothing remembered
    assert wait_records(d2, "/staging/a")[0]["state"] == "unchanged"
    assert wait_records(d2, "/staging/b")[0]["state"] == "succeeded"
    assert len(writes(emu, "/staging/a")) == 1 and len(writes(emu, "/staging/b")) == 1
    assert versions(emu, "/staging/a") == 2 and versions(emu, "/staging/b") == 2
    assert_all_terminal(d2)
    assert_alive(d2)


def test_sigkill_and_restart_with_state_file(daemon, marathon, tmp_path):
    """The same crash with --state-file: nothing has to be delivered again. a1 (its deployment
    finished by Marathon while autodeployd was dead) and b1 come back from the file, and so does
    the pause: both wait for an operator to resume; then a1 is found already deployed (no
    second write) and b1 deploys once. A further crash and restart replays nothing."""
    state = str(tmp_path / "state")
    emu = marathon([app("/staging/a", IMG, pattern="strava/a:*"),
                    app("/staging/b", IMG, pattern="strava/b:*")])
    emu.set_behaviour("/staging/a", "succeed", seconds=1.5, times=1)
    d = start_daemon(daemon, emu, "--admin-token", ADMIN, "--state-file", state)
    a1, _ = push(repo="strava/a", tag="a1")
    b1, _ = push(repo="strava/b", tag="b1")
    d.post_event(a1)
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/a")),
             what="a1 deploying")
    pause(d)
    assert d.post_event(b1).status == 202
    d.proc.kill()
    d.proc.wait(timeout=5)
    wait_for(lambda: not emu.list_deployments(), what="Marathon finished a1 by itself")

    d2 = start_daemon(daemon, emu, "--admin-token", ADMIN, "--state-file", state)
    assert sorted(p["tag"] for p in d2.pushes()) == ["a1", "b1"]
    assert all(p["replayed"] for p in d2.pushes())
    assert d2.metrics()["autodeploy_state_pending"] == 2
    assert d2.request("GET", "/readyz").json()["paused"] is True
    time.sleep(0.5)
    assert records(d2) == [] and writes(emu, "/staging/b") == []  # both wait for the resume
    resume(d2)
    assert wait_records(d2, "/staging/a")[0]["state"] == "unchanged"
    assert wait_records(d2, "/staging/b")[0]["state"] == "succeeded"
    assert len(writes(emu, "/staging/a")) == 1 and len(writes(emu, "/staging/b")) == 1
    assert "pushes accepted before the restart and not finished are queued again" in log_msgs(d2)
    wait_for(lambda: d2.metrics()["autodeploy_state_pending"] == 0, what="all done in the file")
    d2.proc.kill()
    d2.proc.wait(timeout=5)

    d3 = start_daemon(daemon, emu, "--admin-token", ADMIN, "--state-file", state)
    time.sleep(1)
    assert d3.pushes() == [] and records(d3) == []
    assert d3.request("GET", "/readyz").json()["paused"] is False
    assert len(writes(emu)) == 2
    assert_alive(d3)


def test_restart_with_state_file_follows_a_deployment_still_running(daemon, marathon, tmp_path):
    """Killed while a 3 s deployment runs, restarted at once: the push comes back from the
    state file, the app already carries its digest and the deployment still runs, so the new
    daemon follows it to its end and reports it succeeded, without writing again."""
    state = str(tmp_path / "state")
    emu = marathon([app("/staging/a", IMG, pattern="strava/a:*")])
    emu.set_behaviour("/staging/a", "succeed", seconds=3, times=1)
    d = start_daemon(daemon, emu, "--state-file", state)
    a1, _ = push(repo="strava/a", tag="a1")
    d.post_event(a1)
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/a")),
             what="a1 deploying")
    d.proc.kill()
    d.proc.wait(timeout=5)
    assert emu.list_deployments()
    d2 = start_daemon(daemon, emu, "--state-file", state)
    rec = wait_records(d2, "/staging/a", timeout=10)[0]
    assert rec["state"] == "succeeded", rec
    assert len(writes(emu, "/staging/a")) == 1
    assert_alive(d2)


def test_sigterm_keeps_queued_pushes_in_the_state_file(daemon, marathon, tmp_path):
    """Pushes waiting in a paused queue at SIGTERM are kept, not dropped: the log says so, and
    the next start (still paused) deploys them once resumed."""
    state = str(tmp_path / "state")
    emu = marathon([app("/staging/a", IMG, pattern="strava/a:*")])
    d = start_daemon(daemon, emu, "--admin-token", ADMIN, "--state-file", state)
    pause(d)
    a1, _ = push(repo="strava/a", tag="a1")
    assert d.post_event(a1).status == 202
    assert d.stop() == 0
    assert "push not deployed yet: kept in the state file for the next start" in log_msgs(d)
    d2 = start_daemon(daemon, emu, "--admin-token", ADMIN, "--state-file", state)
    assert [p["tag"] for p in d2.pushes()] == ["a1"]
    resume(d2)
    assert wait_records(d2, "/staging/a")[0]["state"] == "succeeded"
    assert len(writes(emu)) == 1


def test_unwritable_state_file_is_refused_at_start(marathon, tmp_path):
    """A state file that cannot be written stops the start (exit 2) with the path and the
    reason, rather than accepting pushes it would lose."""
    emu = marathon([app("/staging/a", IMG, pattern="strava/a:*")])
    bad = str(tmp_path / "no" / "such" / "dir" / "state")
    r = run_cli("--listen", "127.0.0.1:0", "--marathon-url", emu.url, "--state-file", bad)
    assert r.returncode == 2, (r.returncode, r.stderr[-500:])
    assert "cannot use the state file" in r.stderr and bad in r.stderr, r.stderr[-500:]


def test_sigkill_while_deployment_hangs_then_restart_does_not_claim_unchanged(daemon, marathon):
    """SIGKILL while a1's deployment hangs in Marathon. After the restart the registry
    delivers a1 again: the app's definition already carries a1's image and digest (Marathon
    stores the target when a deployment starts) but the deployment has not finished. The new
    daemon must not say the app 'already runs this image': it should follow the running
    deployment (here: to --deploy-timeout) or report it as not finished, with a reason."""
    emu = marathon([app("/staging/a", IMG, pattern="strava/a:*")])
    emu.set_behaviour("/staging/a", "hang", times=1)
    d = start_daemon(daemon, emu)
    a1, _ = push(repo="strava/a", tag="a1")
    d.post_event(a1)
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d, "/staging/a")),
             what="a1 deploying")
    d.proc.kill()
    d.proc.wait(timeout=5)
    d2 = start_daemon(daemon, emu, "--deploy-timeout", "1500ms")
    d2.post_event(a1)
    rec = wait_terminal(d2, "/staging/a", timeout=8)[0]
    assert_alive(d2)
    assert len(emu.list_deployments()) == 1  # still hanging
    assert rec["state"] not in ("unchanged", "succeeded"), rec
    assert rec["reason"]
