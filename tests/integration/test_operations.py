"""Operating autodeployd: readiness, pause/resume, SIGHUP reload (good and bad file), SIGTERM
during a deployment (with and without enough grace), metrics families."""
import json
import signal
import time

from conftest import wait_for
from deploy_helpers import app, marathon, push, records, start_daemon, wait_records, writes  # noqa: F401

IMG = "registry.example.com:5000/strava/foo-service:master-1"
ADMIN = "admin-t0ken"


def test_readyz_follows_marathon(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    d = start_daemon(daemon, emu)
    r = wait_for(lambda: (lambda x: x if x.status == 200 else None)(d.request("GET", "/readyz")),
                 what="ready")
    body = r.json()
    assert body["ready"] is True and body["marathon"] == "reachable"
    wait_for(lambda: d.request("GET", "/readyz").json()["event_stream"] == "attached",
             what="stream attached")
    emu.stop()
    r = wait_for(lambda: (lambda x: x if x.status == 503 else None)(d.request("GET", "/readyz")),
                 timeout=15, what="not ready once Marathon is gone")
    assert r.json()["marathon"] == "unreachable" and r.json()["marathon_error"]
    assert d.request("GET", "/healthz").status == 200  # alive all the same


def test_readyz_without_marathon(daemon):
    d = daemon()
    r = d.request("GET", "/readyz")
    assert r.status == 200 and r.json()["marathon"] == "not configured"


def test_pause_holds_deploys_and_tells_slack(daemon, marathon, slack):
    emu = marathon([app("/staging/foo", IMG)])
    d = start_daemon(daemon, emu, "--admin-token", ADMIN, "--slack-pushes", "none",
                     env={"AUTODEPLOY_SLACK_WEBHOOK_URL": slack.url + "/services/x"})
    auth = {"Authorization": "Bearer " + ADMIN}
    assert d.request("POST", "/v1/pause", headers=auth).status == 200
    assert d.request("GET", "/readyz").json()["paused"] is True
    assert d.post_event(push(tag="master-70")[0]).status == 202
    time.sleep(1.0)
    assert writes(emu) == [] and records(d) == []
    assert d.metrics()["autodeploy_paused"] == 1
    assert d.request("POST", "/v1/resume", headers=auth).status == 200
    assert wait_records(d, "/staging/foo")[0]["state"] == "succeeded"
    wait_for(lambda: len(slack.messages()) >= 4, what="Slack messages")
    texts = [m["json"]["text"] for m in slack.messages()]
    assert texts[0].startswith("Deployments paused") and texts[1].startswith("Deployments resumed")
    assert texts[2].startswith("Deploying") and texts[3].startswith("Deployed")


def test_sighup_reload_good_and_bad_file(daemon, marathon, tmp_path):
    emu = marathon([app("/staging/foo", IMG), app("/prod/foo", IMG)])
    cfg = tmp_path / "autodeploy.json"
    cfg.write_text(json.dumps({"app-prefix": ["/staging/"], "log-level": "info"}))
    d = start_daemon(daemon, emu, "--config", str(cfg))
    d.post_event(push(tag="master-71")[0])
    assert wait_records(d, "/prod/foo")[0]["state"] == "skipped"

    # A good file: the new prefix list applies to the next push, no restart.
    cfg.write_text(json.dumps({"app-prefix": ["/staging/", "/prod/"], "log-level": "debug",
                               "queue-size": 5}))
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any(r.get("msg") == "configuration reloaded" for r in d.logs()),
             what="reload")
    restart = [r for r in d.logs() if "apply only after a restart" in r.get("msg", "")]
    assert restart and "--queue-size" in restart[0]["settings"]
    d.post_event(push(tag="master-72")[0])
    recs = wait_records(d, "/prod/foo", 2)
    assert recs[0]["tag"] == "master-72" and recs[0]["state"] == "succeeded"
    assert any(r.get("level") == "debug" for r in d.logs())  # log level applied live

    # A bad file: refused with the reason, the running configuration stays.
    cfg.write_text('{"app-prefix": "no-slash"')
    d.proc.send_signal(signal.SIGHUP)
    wait_for(lambda: any("reload failed" in r.get("msg", "") for r in d.logs()), what="refusal")
    failed = [r for r in d.logs() if "reload failed" in r.get("msg", "")][0]
    assert str(cfg) in failed["error"]
    assert d.proc.poll() is None
    d.post_event(push(tag="master-73")[0])
    recs = wait_records(d, "/prod/foo", 3)
    assert recs[0]["tag"] == "master-73" and recs[0]["state"] == "succeeded"


def test_sigterm_lets_a_running_deployment_finish(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "succeed", seconds=1.5)
    d = start_daemon(daemon, emu, "--shutdown-grace", "10s")
    d.post_event(push(tag="master-74")[0])
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d)), what="deploying")
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 8
    msgs = [r.get("msg") for r in d.logs()]
    assert "deployment succeeded" in msgs and "stopped" in msgs
    assert msgs.index("deployment succeeded") < msgs.index("stopped")


def test_sigterm_past_the_grace_reports_interrupted(daemon, marathon, slack):
    emu = marathon([app("/staging/foo", IMG)])
    emu.set_behaviour("/staging/foo", "hang", times=1)
    d = start_daemon(daemon, emu, "--shutdown-grace", "500ms", "--slack-pushes", "none",
                     env={"AUTODEPLOY_SLACK_WEBHOOK_URL": slack.url + "/services/x"})
    d.post_event(push(tag="master-75")[0])
    wait_for(lambda: any(r["state"] == "deploying" for r in records(d)), what="deploying")
    wait_for(lambda: len(slack.messages()) >= 1, what="deploying message")
    t0 = time.monotonic()
    assert d.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 6
    logs = d.logs()
    assert any("Marathon goes on with it" in r.get("msg", "") for r in logs)
    texts = [m["json"]["text"] for m in slack.messages()]
    assert any(t.startswith("Stopped following strava/foo-service:master-75") for t in texts), texts
    # Marathon still runs the deployment: autodeployd did not cancel it.
    assert [r for r in emu.get_requests() if r["method"] == "DELETE"] == []


def test_metrics_families_for_operators(daemon, marathon):
    emu = marathon([app("/staging/foo", IMG)])
    d = start_daemon(daemon, emu)
    d.post_event(push(tag="master-76")[0])
    wait_records(d, "/staging/foo")
    text = d.request("GET", "/metrics").body.decode()
    for fam in ("autodeploy_webhook_requests_total", "autodeploy_events_total",
                "autodeploy_queue_depth", "autodeploy_matches_total",
                "autodeploy_deployments_total", "autodeploy_deploy_duration_seconds",
                "autodeploy_marathon_errors_total", "autodeploy_event_stream_connected",
                "autodeploy_build_info", "autodeploy_paused"):
        assert f"# TYPE {fam} " in text, fam
    m = d.metrics()
    assert m['autodeploy_deployments_total{outcome="succeeded"}'] == 1
    assert m["autodeploy_deploy_duration_seconds_count"] == 1
    assert m['autodeploy_deploy_duration_seconds_bucket{le="+Inf"}'] == 1
    assert m["autodeploy_matches_total"] == 1
