"""The HTTP surface of autodeployd, end to end against the real binary: webhook answers,
authentication, body limits, back-pressure, duplicates, metrics and the command line."""
import json
import signal
import socket
import time

from conftest import fixture_bytes, run_cli, wait_for

PUSH = fixture_bytes("registry", "push_oci_manifest.json")
PUSH2 = fixture_bytes("registry", "push_manifest_v2s2.json")
PUSH3 = fixture_bytes("registry", "index_push.json")
BLOB = fixture_bytes("registry", "push_blob_layer.json")
TOKEN = "hook-s3cret-value"


def test_health_and_routing(daemon):
    d = daemon()
    r = d.request("GET", "/healthz")
    assert r.status == 200 and r.json() == {"status": "ok"}
    r = d.request("GET", "/nope")
    assert r.status == 404 and "error" in r.json()
    r = d.request("GET", "/v1/webhooks/registry")
    assert r.status == 405 and r.headers.get("Allow") == "POST"
    r = d.request("DELETE", "/metrics")
    assert r.status == 405


def test_accepts_filters_and_counts(daemon):
    d = daemon()
    r = d.post_event(PUSH)
    assert r.status == 202
    assert r.json() == {"accepted": 1, "ignored": 0, "duplicate": 0, "rejected": 0}
    r = d.post_event(BLOB)
    assert r.status == 202 and r.json()["ignored"] == 1
    pushes = wait_for(lambda: [p for p in d.pushes() if p["state"] == "received"], what="push handled")
    assert len(pushes) == 1
    p = pushes[0]
    assert p["repository"] == "strava/foo-service" and p["tag"] == "master-abc123"
    assert p["digest"] == "sha256:0a8f49daa4bed3dedfe82c8acaae7d39486b2dae264c0dbf63cae52d59e5c9e2"
    assert p["registry"] == "127.0.0.1:5000" and p["event_id"] == "73837aee-790b-40e2-85a4-760e415653f3"
    assert p["media_type"] == "application/vnd.oci.image.manifest.v1+json"
    # json and v2 content types are accepted too
    r = d.post_event(PUSH2, content_type="application/json")
    assert r.status == 202 and r.json()["accepted"] == 1
    r = d.post_event(PUSH3, content_type="application/vnd.docker.distribution.events.v2+json; charset=utf-8")
    assert r.status == 202 and r.json()["accepted"] == 1


def test_no_token_warns_at_start(daemon):
    d = daemon()
    # The warning follows the start-up line (slowly under valgrind): wait for it.
    wait_for(lambda: any("no --webhook-token" in rec.get("msg", "") for rec in d.logs()),
             timeout=5, what="the no-token warning")


def test_bearer_token_required_and_never_logged(daemon):
    d = daemon(env={"AUTODEPLOY_WEBHOOK_TOKEN": TOKEN})
    assert d.post_event(PUSH).status == 401
    r = d.post_event(PUSH, token="wrong")
    assert r.status == 401 and r.headers.get("WWW-Authenticate", "").startswith("Bearer")
    assert d.post_event(PUSH, token=TOKEN + "x").status == 401
    assert d.post_event(PUSH, token=TOKEN[:-1]).status == 401
    assert d.pushes() == []
    r = d.post_event(PUSH, token=TOKEN)
    assert r.status == 202 and r.json()["accepted"] == 1
    assert d.config["webhook-token"] == "(set)"
    d.stop()
    assert TOKEN not in d.log_text()
    assert not any("no --webhook-token" in rec.get("msg", "") for rec in d.logs())


def test_malformed_bodies_get_400_and_daemon_keeps_serving(daemon):
    d = daemon()
    for body, words in [(b"not json", "not valid JSON"), (PUSH[:200], "not valid JSON"),
                        (b'{"events": 5}', "events"), (b"[]", "events"), (b"", "empty"),
                        (b'{"events":[]} trailing', "trailing")]:
        r = d.post_event(body)
        assert r.status == 400, body
        assert words in r.json()["error"], (body, r.body)
    r = d.post_event(b'{"events":[' + b'[' * 5000 + b']' * 5000 + b']}')
    assert r.status in (202, 400)
    r = d.post_event(b'{"events":[{"action":"push","actor":{"name":"\xff\xfe"}}]}')
    assert r.status == 202
    assert d.post_event(PUSH).status == 202
    assert d.request("GET", "/healthz").status == 200


def test_wrong_content_type_is_415(daemon):
    d = daemon()
    r = d.post_event(PUSH, content_type="text/plain")
    assert r.status == 415 and "Content-Type" in r.json()["error"]
    assert d.pushes() == []


def test_rejected_event_is_counted_not_queued(daemon):
    d = daemon()
    ev = json.loads(PUSH)
    ev["events"][0]["target"]["tag"] = "<!channel>"
    r = d.post_event(json.dumps(ev).encode())
    assert r.status == 202 and r.json()["rejected"] == 1
    assert d.pushes() == []
    assert d.metrics()['autodeploy_events_total{result="rejected"}'] == 1


def test_oversized_body_gets_413_without_being_read(daemon):
    d = daemon(args=["--max-body-bytes", "4KiB"])
    # Declare 10 MB and send none of it: the answer must come from the headers alone.
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.sendall(b"POST /v1/webhooks/registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Content-Length: 10000000\r\n\r\n")
    t0 = time.monotonic()
    data = s.recv(4096)
    s.close()
    assert data.startswith(b"HTTP/1.1 413"), data
    assert time.monotonic() - t0 < 2
    # A real oversized body through a normal client.
    r = d.post_event(b'{"events":[' + b" " * 5000 + b"]}")
    assert r.status == 413 and "limit" in r.json()["error"]
    # Just under the limit is fine.
    assert d.post_event(PUSH).status == 202
    assert d.metrics()['autodeploy_webhook_requests_total{code="413"}'] >= 2


def test_chunked_body_over_limit_is_cut_off(daemon):
    d = daemon(args=["--max-body-bytes", "4KiB"])
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.sendall(b"POST /v1/webhooks/registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              b"Transfer-Encoding: chunked\r\n\r\n")
    outcome = None
    try:
        for _ in range(64):  # 64 KiB offered, 16 times the limit
            s.sendall(b"400\r\n" + b" " * 1024 + b"\r\n")
            time.sleep(0.005)
        s.settimeout(3)
        data = s.recv(100)
        outcome = "closed" if data == b"" else data
    except (ConnectionResetError, BrokenPipeError):
        outcome = "closed"
    except socket.timeout:
        outcome = "still open"
    s.close()
    assert outcome == "closed", outcome
    assert d.metrics()['autodeploy_webhook_requests_total{code="413"}'] == 1
    assert d.post_event(PUSH).status == 202


def test_duplicates_are_acknowledged_once(daemon):
    d = daemon()
    answers = [d.post_event(PUSH).json() for _ in range(3)]
    assert [a["accepted"] for a in answers] == [1, 0, 0]
    assert [a["duplicate"] for a in answers] == [0, 1, 1]
    # A re-push of the same image (new event id, same repository:tag@digest) is a duplicate too.
    ev = json.loads(PUSH)
    ev["events"][0]["id"] = "0a0a0a0a-0000-4000-8000-000000000001"
    assert d.post_event(json.dumps(ev).encode()).json()["duplicate"] == 1
    # The mutable tag moving to a new digest is not.
    retag = fixture_bytes("registry", "retag_same_tag.json")
    assert d.post_event(retag).json()["accepted"] == 1
    m = d.metrics()
    assert m['autodeploy_events_total{result="accepted"}'] == 2
    assert m['autodeploy_events_total{result="duplicate"}'] == 3


def _distinct_push(i):
    ev = json.loads(PUSH)
    ev["events"][0]["id"] = f"11111111-0000-4000-8000-{i:012d}"
    ev["events"][0]["target"]["tag"] = f"build-{i}"
    return json.dumps(ev).encode()


def test_full_queue_answers_503_and_loses_nothing(daemon):
    admin = "adm1n-t0ken"
    d = daemon(args=["--queue-size", "2", "--admin-token", admin])
    auth = {"Authorization": "Bearer " + admin}
    assert d.request("POST", "/v1/pause").status == 401
    r = d.request("POST", "/v1/pause", headers=auth)
    assert r.status == 200 and r.json()["paused"] is True
    assert d.post_event(_distinct_push(1)).status == 202
    assert d.post_event(_distinct_push(2)).status == 202
    r = d.post_event(_distinct_push(3))
    assert r.status == 503 and int(r.headers["Retry-After"]) >= 1
    assert "queue full" in r.json()["error"]
    assert d.metrics()["autodeploy_queue_depth"] == 2
    assert d.request("GET", "/healthz").status == 200  # still serving
    r = d.request("POST", "/v1/resume", headers=auth)
    assert r.status == 200 and r.json()["paused"] is False
    wait_for(lambda: d.metrics()["autodeploy_queue_depth"] == 0, what="queue drained")
    # The registry retries the refused event byte for byte: now it is accepted, once.
    r = d.post_event(_distinct_push(3))
    assert r.status == 202 and r.json()["accepted"] == 1
    wait_for(lambda: sum(p["state"] == "received" for p in d.pushes()) == 3, what="all three handled")
    assert sorted(p["tag"] for p in d.pushes()) == ["build-1", "build-2", "build-3"]


def test_admin_endpoints_disabled_without_admin_token(daemon):
    d = daemon()
    r = d.request("POST", "/v1/pause", headers={"Authorization": "Bearer x"})
    assert r.status == 403 and "admin-token" in r.json()["error"]


def test_metrics_exposition(daemon):
    d = daemon()
    d.post_event(PUSH)
    d.post_event(b"nope")
    text = d.request("GET", "/metrics").body.decode()
    for family in ("autodeploy_webhook_requests_total", "autodeploy_events_total",
                   "autodeploy_queue_depth", "autodeploy_build_info"):
        assert f"# TYPE {family} " in text, family
    m = d.metrics()
    assert m['autodeploy_webhook_requests_total{code="202"}'] == 1
    assert m['autodeploy_webhook_requests_total{code="400"}'] == 1
    for result in ("accepted", "ignored", "duplicate", "rejected"):
        assert f'autodeploy_events_total{{result="{result}"}}' in m


def test_recent_pushes_are_bounded(daemon):
    d = daemon(args=["--recent-pushes", "3"])
    for i in range(6):
        assert d.post_event(_distinct_push(i)).status == 202
    tags = [p["tag"] for p in d.pushes()]
    assert tags == ["build-5", "build-4", "build-3"]


def test_sigterm_stops_cleanly(daemon):
    d = daemon()
    assert d.stop(signal.SIGTERM) == 0
    msgs = [rec.get("msg") for rec in d.logs()]
    assert "stopped" in msgs


def test_help_and_version():
    r = run_cli("--help")
    assert r.returncode == 0
    for flag in ("--listen", "--webhook-token", "--max-body-bytes", "--queue-size", "--log-level",
                 "--log-format", "--config", "AUTODEPLOY_WEBHOOK_TOKEN"):
        assert flag in r.stdout
    r = run_cli("--version")
    assert r.returncode == 0 and r.stdout.startswith("autodeployd ")


def test_bad_settings_exit_2_with_one_line():
    for args, env, name in [(["--queue-size", "-3"], {}, "--queue-size"),
                            (["--log-format", "yaml"], {}, "--log-format"),
                            ([], {"AUTODEPLOY_MAX_BODY_BYTES": "huge"}, "AUTODEPLOY_MAX_BODY_BYTES"),
                            (["--listen", "127.0.0.1"], {}, "--listen"),
                            (["--bogus", "1"], {}, "--bogus")]:
        r = run_cli(*args, env=env)
        assert r.returncode == 2, (args, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and name in lines[0], r.stderr


def test_secret_value_not_echoed_in_errors(tmp_path):
    r = run_cli("--webhook-token-file", str(tmp_path / "missing"))
    assert r.returncode == 2 and "--webhook-token-file" in r.stderr


def test_precedence_flag_env_file(daemon, tmp_path):
    cfg = tmp_path / "autodeploy.json"
    cfg.write_text(json.dumps({"queue-size": 7, "recent-pushes": 9, "log-level": "debug",
                               "webhook-token": "from-file"}))
    d = daemon(args=["--config", str(cfg), "--recent-pushes", "11"],
               env={"AUTODEPLOY_QUEUE_SIZE": "8"})
    assert d.config["queue-size"] == 8          # env beats file
    assert d.config["recent-pushes"] == 11      # flag beats file
    assert d.config["log-level"] == "debug"     # file beats default
    assert d.config["webhook-token"] == "(set)"
    assert d.post_event(PUSH, token="from-file").status == 202


def test_bad_config_file_exits_2(tmp_path):
    cfg = tmp_path / "bad.json"
    cfg.write_text('{"queue-size": "many"}')
    r = run_cli("--config", str(cfg))
    assert r.returncode == 2 and "--queue-size" in r.stderr and str(cfg) in r.stderr


def test_readme_documents_every_flag():
    """--help and the README's configuration table must not drift apart."""
    import os
    import re
    from conftest import ROOT
    flags = set(re.findall(r"^  (--[a-z-]+)", run_cli("--help").stdout, re.M)) - {"--help", "--version"}
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    missing = sorted(f for f in flags if f"`{f}" not in readme)
    assert not missing, missing
    assert len(flags) > 30
