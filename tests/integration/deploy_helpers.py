"""Helpers for the deployer's integration tests: the Marathon emulator in-process, app
definitions, registry push bodies, and waiting on autodeployd's /v1/deployments."""
import datetime
import hashlib
import json
import os
import sys
import urllib.request

import pytest

from conftest import ROOT, wait_for

sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))
from marathon import MarathonEmulator  # noqa: E402

# Record states (issue 11's contract): these end a record; queued, updating, locked, deploying
# and rolling_back do not.
TERMINAL = {"succeeded", "failed", "timed_out", "rolled_back", "rollback_failed", "cancelled",
            "superseded", "skipped", "unchanged", "dry_run", "interrupted"}
NON_TERMINAL = {"queued", "updating", "locked", "deploying", "rolling_back"}
AUTODEPLOYD_UA = "autodeployd/"


def digest(seed):
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


def app(app_id, image, pattern="strava/foo-service:master*", labels=None, instances=2, **extra):
    definition = {
        "id": app_id,
        "cmd": "sleep 1000",
        "instances": instances,
        "cpus": 0.1,
        "mem": 64,
        "container": {
            "type": "DOCKER",
            "docker": {"image": image, "network": "BRIDGE", "forcePullImage": False,
                       "portMappings": [{"containerPort": 80, "hostPort": 0, "protocol": "tcp"}],
                       "parameters": [{"key": "log-driver", "value": "journald"}]},
            "volumes": [{"containerPath": "/data", "hostPath": "/srv/data", "mode": "RW"}],
        },
        "labels": {"autodeploy": pattern, "team": "payments", **(labels or {})},
    }
    definition.update(extra)
    return definition


_seq = [0]
_BASE = datetime.datetime(2026, 11, 25, 10, 0, 0)


def push(repo="strava/foo-service", tag="master-2", dig=None, host="127.0.0.1:5000",
         ts=None, pusher="ci-bot", event_id=None):
    _seq[0] += 1
    n = _seq[0]
    ev = {
        "id": event_id or f"00000000-0000-4000-8000-{n:012d}",
        # Strictly increasing across the whole run: a later push is never "older".
        "timestamp": ts or (_BASE + datetime.timedelta(seconds=n)).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": "push",
        "target": {"mediaType": "application/vnd.oci.image.manifest.v1+json", "size": 464,
                   "digest": dig or digest(f"{repo}:{tag}:{n}"), "length": 464,
                   "repository": repo, "url": "http://x/v2/x", "tag": tag},
        "request": {"id": "r", "addr": "127.0.0.1:1", "host": host, "method": "PUT",
                    "useragent": "skopeo/1.9.3"},
        "actor": {"name": pusher} if pusher else {},
        "source": {"addr": "vm:5000", "instanceID": "i"},
    }
    return json.dumps({"events": [ev]}).encode(), ev


def envelope(*events):
    """One registry notification carrying several events (each from push(...)[1]), in order."""
    return json.dumps({"events": list(events)}).encode()


@pytest.fixture
def marathon():
    made = []

    def start(apps=(), **kw):
        kw.setdefault("deploy_seconds", 0.3)
        kw.setdefault("heartbeat_seconds", 0.5)
        emu = MarathonEmulator(apps=list(apps), **kw).start()
        made.append(emu)
        return emu

    yield start
    for emu in made:
        emu.stop()


def emu_get(emu, path):
    with urllib.request.urlopen(emu.url + path, timeout=5) as r:
        return json.loads(r.read())


def emu_call(emu, method, path, body=None, user_agent=None):
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if user_agent:
        headers["User-Agent"] = user_agent
    req = urllib.request.Request(emu.url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(req, timeout=5) as r:
        raw = r.read()
        return json.loads(raw) if raw else None


def operator_call(emu, method, path, body=None, user_agent="marathon-ui/1.10 (an operator)"):
    """A write by someone else than autodeployd (an operator, an autoscaler): its own
    User-Agent, so the emulator's history tells the writers apart."""
    return emu_call(emu, method, path, body, user_agent=user_agent)


def app_state(emu, app_id):
    return emu_get(emu, "/_emu/apps" + app_id)


def writes(emu, app_id=None):
    """Every request that could change an app (PUT/PATCH/POST/DELETE on /v2/apps...)."""
    out = []
    for r in emu.get_requests():
        if r["method"] in ("PUT", "PATCH", "POST", "DELETE") and r["path"].startswith("/v2/apps"):
            if app_id is None or r["path"] == "/v2/apps" + app_id:
                out.append(r)
    return out


def by_autodeployd(req_or_dep):
    """True for a request (emulator request log) or deployment (emulator history) that came
    from autodeployd, by its User-Agent."""
    if "created_by" in req_or_dep:
        c = req_or_dep["created_by"] or {}
        return (c.get("user_agent") or "").startswith(AUTODEPLOYD_UA)
    ua = {k.lower(): v for k, v in req_or_dep["headers"].items()}.get("user-agent", "")
    return ua.startswith(AUTODEPLOYD_UA)


def autodeployd_requests(emu, method=None, path=None):
    """autodeployd's requests to the emulator, oldest first (path ending in * = prefix)."""
    out = []
    for r in emu.get_requests():
        if not by_autodeployd(r) or (method and r["method"] != method):
            continue
        if path and not (r["path"].startswith(path[:-1]) if path.endswith("*") else r["path"] == path):
            continue
        out.append(r)
    return out


def autodeployd_writes(emu, app_id=None):
    """Every request of autodeployd that could change something: PUT/PATCH/POST/DELETE on
    /v2/apps... and DELETE /v2/deployments/... (with app_id: only that app's /v2/apps path,
    plus every deployment DELETE)."""
    out = []
    for r in autodeployd_requests(emu):
        if r["method"] in ("PUT", "PATCH", "POST", "DELETE") and r["path"].startswith("/v2/apps"):
            if app_id is None or r["path"] == "/v2/apps" + app_id:
                out.append(r)
        elif r["method"] == "DELETE" and r["path"].startswith("/v2/deployments/"):
            out.append(r)
    return out


def deployments_by_autodeployd(emu, app_id=None):
    """The emulator's history of deployments autodeployd's requests created, oldest first."""
    return [dep for dep in emu.deployment_history(app_id) if by_autodeployd(dep)]


def wait_deployment_by_autodeployd(emu, app_id, n=1, timeout=10):
    """Waits until autodeployd created n deployments of app_id; returns the n-th (history)."""
    def enough():
        deps = deployments_by_autodeployd(emu, app_id)
        return deps if len(deps) >= n else None
    return wait_for(enough, timeout=timeout, what=f"autodeployd's deployment #{n} of {app_id}")[n - 1]


def records(d, app_id=None):
    recs = d.request("GET", "/v1/deployments").json()["deployments"]
    return [r for r in recs if app_id is None or r["app"] == app_id]


def wait_records(d, app_id, n=1, timeout=15):
    """Waits until app_id has at least n records, all in a terminal state; newest first."""
    def done():
        recs = records(d, app_id)
        return recs if len(recs) >= n and all(r["state"] in TERMINAL for r in recs) else None
    return wait_for(done, timeout=timeout, what=f"{n} finished deployment(s) of {app_id}")


def start_daemon(daemon, emu, *args, env=None):
    urls = emu if isinstance(emu, str) else emu.url
    # A short grace: a test's Marathon may be gone before the daemon is stopped.
    # The pushes these tests make up name no real registry: verification is off unless a test
    # asks for it (test_verify_push.py runs it against the real registry).
    verify = [] if any(str(a).startswith("--verify-push") for a in args) else ["--verify-push", "off"]
    return daemon(args=["--marathon-url", urls, "--poll-interval", "300ms",
                        "--shutdown-grace", "1s", *verify, *args], env=env)
