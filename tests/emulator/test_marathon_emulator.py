"""Fidelity tests for the Marathon emulator (tests/emulator/marathon.py).

Each test starts its own emulator on 127.0.0.1 port 0 and talks real HTTP to it.
Run from the repository root: /usr/bin/python3 -m pytest -q tests/emulator
"""

import base64
import copy
import glob
import http.client
import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import marathon  # noqa: E402
from marathon import MarathonEmulator, SelectorError, parse_label_selector, selector_matches  # noqa: E402

FIX = os.path.normpath(os.path.join(HERE, "..", "fixtures", "marathon"))
REAL_APPS = sorted(glob.glob(os.path.join(FIX, "real_apps", "*.json")))
GET_ONLY = {"version", "versionInfo", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy",
            "deployments", "tasks", "lastTaskFailure"}


def fixture(name):
    with open(os.path.join(FIX, name), encoding="utf-8") as f:
        return json.load(f)


@pytest.fixture
def make_emu():
    started = []

    def make(**kw):
        kw.setdefault("deploy_seconds", 0.2)
        kw.setdefault("heartbeat_seconds", 0.3)
        e = MarathonEmulator(**kw).start()
        started.append(e)
        return e

    yield make
    for e in started:
        e.stop()


@pytest.fixture
def emu(make_emu):
    return make_emu()


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    @property
    def json(self):
        return json.loads(self.body.decode("utf-8"))


def call(e, method, path, body=None, headers=None, timeout=5):
    conn = http.client.HTTPConnection(e.host, e.port, timeout=timeout)
    hdrs = dict(headers or {})
    data = None
    if body is not None:
        data = body if isinstance(body, (bytes, str)) else json.dumps(body)
        if isinstance(data, str):
            data = data.encode("utf-8")
        hdrs.setdefault("Content-Type", "application/json")
    try:
        conn.request(method, path, body=data, headers=hdrs)
        r = conn.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


# Errors a predicate that talks HTTP may meet while a server comes up or drops a connection:
# "not yet", not a failure (the last one is raised when the time is up).
TRANSIENT = (ConnectionError, http.client.RemoteDisconnected, urllib.error.URLError, socket.timeout,
             TimeoutError)


def wait_until(pred, timeout=3.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            v = pred()
        except TRANSIENT:
            v = None
        if v:
            return v
        time.sleep(step)
    return pred()


def events_of(e, etype):
    return [ev for ev in e.get_events() if ev["eventType"] == etype]


DOCKER_APP = {
    "id": "/svc/web",
    "cmd": "python3 -m http.server 8080",
    "instances": 3,
    "cpus": 0.1,
    "mem": 64,
    "container": {
        "type": "DOCKER",
        "docker": {"image": "strava/web:1", "forcePullImage": True,
                   "parameters": [{"key": "log-driver", "value": "json-file"}]},
        "portMappings": [{"containerPort": 8080, "hostPort": 0, "protocol": "tcp", "name": "http"}],
        "volumes": [{"containerPath": "/data", "hostPath": "/srv/data", "mode": "RW"}],
    },
    "networks": [{"mode": "container/bridge"}],
    "labels": {"autodeploy": "strava/web:master*", "team": "core"},
}


# --------------------------------------------------------------------------- basics

def test_ping_info_leader(emu):
    r = call(emu, "GET", "/ping")
    assert r.status == 200 and r.body.strip() == b"pong"
    info = call(emu, "GET", "/v2/info").json
    assert info["name"] == "marathon" and info["version"].startswith("1.10")
    assert info["leader"] == "127.0.0.1:%d" % emu.port
    assert call(emu, "GET", "/v2/leader").json == {"leader": "127.0.0.1:%d" % emu.port}


def test_keep_alive_with_content_length(emu):
    emu.put_app_direct(DOCKER_APP)
    conn = http.client.HTTPConnection(emu.host, emu.port, timeout=5)
    try:
        for _ in range(3):        # same connection, several requests (libcurl keeps it alive)
            conn.request("GET", "/v2/apps")
            r = conn.getresponse()
            body = r.read()
            assert r.status == 200
            assert int(r.getheader("Content-Length")) == len(body)
            assert r.getheader("Content-Type") == "application/json"
    finally:
        conn.close()


@pytest.mark.parametrize("path", REAL_APPS, ids=[os.path.basename(p) for p in REAL_APPS])
def test_real_app_round_trip(emu, path):
    with open(path, encoding="utf-8") as f:
        sent = json.load(f)
    app_id = "/" + sent["id"].strip("/")
    r = call(emu, "PUT", "/v2/apps" + app_id, sent)
    assert r.status == 201, r.body
    assert r.header("Location").endswith(app_id)
    body = r.json
    assert set(body) == {"version", "deploymentId"}
    assert r.header("Marathon-Deployment-Id") == body["deploymentId"]
    got = call(emu, "GET", "/v2/apps" + app_id).json["app"]
    for key, value in sent.items():
        if key == "id":
            assert got["id"] == app_id
        else:
            assert got[key] == value, key           # odd fields, nulls, deprecated keys, newlines
    assert got["version"] == body["version"]
    assert set(got["versionInfo"]) == {"lastScalingAt", "lastConfigChangeAt"}


def test_fixture_examples_create(emu):
    for name in ("app_definition_legacy_docker.json", "app_docker_bridge_legacy.json",
                 "app_docker_bridge_networks_1.5.json", "app_mesos_ucr_docker.json"):
        app = fixture(name)
        r = call(emu, "PUT", "/v2/apps/" + app["id"].strip("/"), app)
        assert r.status == 201, (name, r.body)


def test_load_group_export_and_id_filter(make_emu):
    from marathon import load_apps
    apps = load_apps([os.path.join(FIX, "group_real_1.5.5_100apps.json")])
    e = make_emu(apps=apps)
    listed = call(e, "GET", "/v2/apps").json["apps"]
    assert len(listed) == 100
    for a in listed:
        assert a["tasksRunning"] == a["instances"] and a["deployments"] == []
    sub = call(e, "GET", "/v2/apps?id=MACTEST").json["apps"]   # case-insensitive substring
    assert sub and all("mactest" in a["id"] for a in sub)


# --------------------------------------------------------------------------- listing / selectors

def test_label_selector_parser():
    labels = {"autodeploy": "strava/foo-service:master*", "env": "prod", "tier": "web"}
    ok = [
        "autodeploy",
        "env==prod",
        "env == prod",
        "env!=qa",
        "env in (prod, qa)",
        "tier notin (db,cache)",
        "env==prod,tier,autodeploy",
        r"autodeploy==strava\/foo-service\:master\*",
        "",
    ]
    for sel in ok:
        assert selector_matches(parse_label_selector(sel), labels), sel
    no = ["missing", "env==qa", "env!=prod", "env in (qa)", "env notin (prod)", "env==prod,missing",
          "missing!=x", "missing notin (x)"]          # != and notin need the key to exist
    for sel in no:
        assert not selector_matches(parse_label_selector(sel), labels), sel
    assert parse_label_selector(r"a\ b==c\,d") == [("a b", "==", ["c,d"])]
    for bad in ["autodeploy==strava/foo", "a in (b", "a==", "a,", "a=b", "==b", "a b"]:
        with pytest.raises(SelectorError):
            parse_label_selector(bad)


def test_list_label_filter_over_http(emu):
    emu.put_app_direct(DOCKER_APP)
    emu.put_app_direct({"id": "/other", "cmd": "sleep 100", "labels": {"team": "infra"}})
    emu.put_app_direct({"id": "/nolabels", "cmd": "sleep 100"})

    def ids(q):
        r = call(emu, "GET", "/v2/apps?" + q)
        assert r.status == 200, r.body
        return [a["id"] for a in r.json["apps"]]

    assert ids("label=autodeploy") == ["/svc/web"]
    assert ids("label=" + urllib.parse.quote(r"autodeploy==strava\/web\:master\*")) == ["/svc/web"]
    assert ids("label=" + urllib.parse.quote("team in (core, infra)")) == ["/other", "/svc/web"]
    assert ids("label=" + urllib.parse.quote("team!=core")) == ["/other"]
    assert ids("label=" + urllib.parse.quote("team==core,autodeploy")) == ["/svc/web"]
    assert ids("label=team&id=OTH") == ["/other"]
    assert ids("cmd=HTTP.SERVER") == ["/svc/web"]
    r = call(emu, "GET", "/v2/apps?label=" + urllib.parse.quote("autodeploy==strava/web:master*"))
    assert r.status == 422
    assert r.json["message"].startswith("Can not parse label selector autodeploy==strava/web:master*")
    assert set(r.json) == {"message"}


def test_list_shape_counts_and_embed(emu):
    emu.put_app_direct(DOCKER_APP)
    a = call(emu, "GET", "/v2/apps").json["apps"][0]
    for k in ("tasksRunning", "tasksStaged", "tasksHealthy", "tasksUnhealthy", "instances", "deployments",
              "version", "versionInfo"):
        assert k in a
    assert a["tasksRunning"] == 3 and a["deployments"] == []
    assert "tasks" not in a
    a = call(emu, "GET", "/v2/apps?embed=apps.tasks&embed=apps.bogus").json["apps"][0]
    assert len(a["tasks"]) == 3 and a["tasks"][0]["state"] == "TASK_RUNNING"
    a = call(emu, "GET", "/v2/apps?embed=apps.nonsense").json["apps"][0]
    assert "tasks" not in a and a["tasksRunning"] == 3


def test_get_single_app_and_404(emu):
    emu.put_app_direct(DOCKER_APP)
    r = call(emu, "GET", "/v2/apps/svc/web")
    assert r.status == 200
    app = r.json["app"]
    assert app["id"] == "/svc/web" and "tasks" in app and app["tasksRunning"] == 3
    r = call(emu, "GET", "/v2/apps/svc/nope")
    assert r.status == 404 and r.json == {"message": "App '/svc/nope' does not exist"}
    r = call(emu, "GET", "/v2/apps//svc//web")
    assert r.status == 200


# --------------------------------------------------------------------------- updates

def test_partial_update_replaces_container_whole(emu):
    """The trap: a body with only docker.image drops portMappings, volumes, parameters..."""
    emu.put_app_direct(DOCKER_APP)
    r = call(emu, "PUT", "/v2/apps/svc/web", {"container": {"docker": {"image": "strava/web:2"}}})
    assert r.status == 200
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["container"] == {"docker": {"image": "strava/web:2"}}
    assert "portMappings" not in app["container"] and "volumes" not in app["container"]
    assert app["instances"] == 3                      # kept: body omitted it
    assert app["labels"] == DOCKER_APP["labels"]      # kept
    assert app["cmd"] == DOCKER_APP["cmd"]


def test_safe_update_keeps_container(emu):
    emu.put_app_direct(DOCKER_APP)
    cont = copy.deepcopy(DOCKER_APP["container"])
    cont["docker"]["image"] = "strava/web:2"
    r = call(emu, "PATCH", "/v2/apps/svc/web", {"container": cont})
    assert r.status == 200
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["container"] == cont
    assert app["instances"] == 3


def test_labels_replaced_whole_and_instances_kept(emu):
    emu.put_app_direct(DOCKER_APP)
    call(emu, "PUT", "/v2/apps/svc/web", {"instances": 7})            # scale, like an autoscaler
    wait_until(lambda: not emu.list_deployments())
    r = call(emu, "PATCH", "/v2/apps/svc/web", {"labels": {"only": "this"}})
    assert r.status == 200
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["labels"] == {"only": "this"}
    assert app["instances"] == 7


def test_partial_update_false_resets_instances(emu):
    emu.put_app_direct(DOCKER_APP)
    body = {k: v for k, v in DOCKER_APP.items() if k not in ("instances", "labels")}
    r = call(emu, "PUT", "/v2/apps/svc/web?partialUpdate=false", body)
    assert r.status == 200
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["instances"] == 1
    assert app["labels"] == {}


def test_put_creates_patch_404(emu):
    r = call(emu, "PATCH", "/v2/apps/new/app", {"cmd": "sleep 10"})
    assert r.status == 404 and r.json == {"message": "App '/new/app' does not exist"}
    assert call(emu, "GET", "/v2/apps/new/app").status == 404
    r = call(emu, "PUT", "/v2/apps/new/app", {"cmd": "sleep 10"})
    assert r.status == 201
    assert r.header("Location") == emu.url + "/new/app"
    assert r.header("Marathon-Deployment-Id") == r.json["deploymentId"]
    app = call(emu, "GET", "/v2/apps/new/app").json["app"]
    assert app["instances"] == 1 and app["id"] == "/new/app"


def test_body_id_is_ignored_path_wins(emu):
    r = call(emu, "PUT", "/v2/apps/right", {"id": "/wrong", "cmd": "sleep 10"})
    assert r.status == 201
    assert call(emu, "GET", "/v2/apps/right").json["app"]["id"] == "/right"
    assert call(emu, "GET", "/v2/apps/wrong").status == 404


def test_validation_errors(emu):
    emu.put_app_direct(DOCKER_APP)
    r = call(emu, "PUT", "/v2/apps/svc/web", {"labels": {"a": "b", "port": 8080}})
    assert r.status == 422
    assert r.json == {"message": "Object is not valid",
                      "details": [{"path": "/labels(port)", "errors": ["error.expected.jsstring"]}]}
    r = call(emu, "PUT", "/v2/apps/svc/web", {"labels": {"on": True}})
    assert r.status == 422 and r.json["details"][0]["path"] == "/labels(on)"
    r = call(emu, "PUT", "/v2/apps/svc/web", b'{"container": ')
    assert r.status == 400 and r.json["message"] == "Invalid JSON"
    r = call(emu, "PUT", "/v2/apps/svc/web", {"version": "2020-01-01T00:00:00.000Z", "instances": 2})
    assert r.status == 422
    assert r.json["message"] == "Object is not valid"
    assert r.json["details"][0]["errors"] == ["The 'version' field may only be combined with the 'id' field."]
    r = call(emu, "PUT", "/v2/apps/Bad_Name", {"cmd": "sleep 10"})
    assert r.status == 422 and r.json["details"][0]["path"] == "/id"
    r = call(emu, "PUT", "/v2/apps/svc/web", {"instances": -1})
    assert r.status == 422
    assert call(emu, "GET", "/v2/apps/svc/web").json["app"]["labels"] == DOCKER_APP["labels"]   # unchanged
    assert not emu.list_deployments()


def test_version_rollback_and_history(emu):
    emu.put_app_direct(DOCKER_APP)
    v1 = call(emu, "GET", "/v2/apps/svc/web").json["app"]["version"]
    cont = copy.deepcopy(DOCKER_APP["container"])
    cont["docker"]["image"] = "strava/web:2"
    call(emu, "PATCH", "/v2/apps/svc/web", {"container": cont})
    wait_until(lambda: not emu.list_deployments())
    versions = call(emu, "GET", "/v2/apps/svc/web/versions").json["versions"]
    assert len(versions) == 2 and versions[-1] == v1
    old = call(emu, "GET", "/v2/apps/svc/web/versions/" + v1).json
    assert old["container"]["docker"]["image"] == "strava/web:1"
    r = call(emu, "PUT", "/v2/apps/svc/web", {"version": v1})
    assert r.status == 200
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["container"]["docker"]["image"] == "strava/web:1"
    assert len(call(emu, "GET", "/v2/apps/svc/web/versions").json["versions"]) == 3
    r = call(emu, "PUT", "/v2/apps/svc/web", {"id": "/svc/web", "version": "1999-01-01T00:00:00.000Z"})
    assert r.status == 404


def test_identical_put_is_a_deployment_without_steps(emu):
    emu.put_app_direct(DOCKER_APP)
    before = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    body = {k: v for k, v in before.items() if k not in GET_ONLY}
    r = call(emu, "PUT", "/v2/apps/svc/web", body)
    assert r.status == 200
    dep_id = r.json["deploymentId"]
    assert call(emu, "GET", "/v2/deployments").json == []
    ok = [e for e in events_of(emu, "deployment_success") if e["id"] == dep_id]
    assert ok and ok[0]["plan"]["steps"] == []
    after = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert after["version"] == before["version"]       # nothing changed, no new app version
    assert after["tasks"] == before["tasks"]           # nothing restarted


# --------------------------------------------------------------------------- deployments

def test_deployment_lifecycle(emu):
    emu.put_app_direct(DOCKER_APP)
    old_tasks = {t["id"] for t in call(emu, "GET", "/v2/apps/svc/web").json["app"]["tasks"]}
    cont = copy.deepcopy(DOCKER_APP["container"])
    cont["docker"]["image"] = "strava/web:2"
    r = call(emu, "PUT", "/v2/apps/svc/web", {"container": cont})
    dep_id = r.json["deploymentId"]
    deps = call(emu, "GET", "/v2/deployments").json
    assert len(deps) == 1
    d = deps[0]
    assert set(d) == {"id", "version", "affectedApps", "affectedPods", "steps", "currentActions",
                      "currentStep", "totalSteps"}
    assert d["id"] == dep_id and d["affectedApps"] == ["/svc/web"] and d["version"] == r.json["version"]
    assert d["steps"] == [{"actions": [{"action": "RestartApplication", "app": "/svc/web"}]}]
    assert d["currentActions"][0]["action"] == "RestartApplication"
    assert d["currentStep"] == 1 and d["totalSteps"] == 1
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["deployments"] == [{"id": dep_id}] and app["tasksStaged"] == 3
    assert wait_until(lambda: call(emu, "GET", "/v2/deployments").json == [], timeout=3)
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["deployments"] == [] and app["tasksRunning"] == 3 and app["tasksStaged"] == 0
    assert not ({t["id"] for t in app["tasks"]} & old_tasks)
    types = [e["eventType"] for e in emu.get_events()
             if e.get("id") == dep_id or e.get("plan", {}).get("id") == dep_id]
    assert types == ["deployment_info", "deployment_step_success", "deployment_success"]
    st = [e["taskStatus"] for e in events_of(emu, "status_update_event")]
    assert st.count("TASK_STAGING") == 3 and st.count("TASK_RUNNING") == 3 and st.count("TASK_KILLED") == 3
    upd = events_of(emu, "status_update_event")[0]
    for k in ("slaveId", "taskId", "taskStatus", "message", "appId", "host", "ipAddresses", "ports",
              "version", "eventType", "timestamp"):
        assert k in upd
    succ = [e for e in events_of(emu, "deployment_success") if e["id"] == dep_id][0]
    assert succ["plan"]["id"] == dep_id and succ["plan"]["version"] == r.json["version"]
    assert succ["plan"]["steps"][0]["actions"][0] == {"action": "RestartApplication", "app": "/svc/web"}
    assert events_of(emu, "api_post_event")[0]["appDefinition"]["id"] == "/svc/web"


def test_create_plan_has_start_and_scale(emu):
    emu.set_behaviour("/new", "hang")
    r = call(emu, "PUT", "/v2/apps/new", {"cmd": "sleep 100", "instances": 2})
    dep = wait_until(lambda: [d for d in call(emu, "GET", "/v2/deployments").json if d["currentStep"] == 2])
    assert dep[0]["steps"] == [{"actions": [{"action": "StartApplication", "app": "/new"}]},
                               {"actions": [{"action": "ScaleApplication", "app": "/new"}]}]
    assert dep[0]["totalSteps"] == 2 and dep[0]["id"] == r.json["deploymentId"]


def test_lock_409_and_force(emu):
    emu.put_app_direct(DOCKER_APP)
    emu.set_behaviour("/svc/web", "hang")
    first = call(emu, "PUT", "/v2/apps/svc/web", {"cmd": "sleep 1"}).json["deploymentId"]
    r = call(emu, "PATCH", "/v2/apps/svc/web", {"instances": 5})
    assert r.status == 409
    assert r.json == {
        "message": "App is locked by one or more deployments. Override with the option '?force=true'. "
                   "View details at '/v2/deployments/<DEPLOYMENT_ID>'.",
        "deployments": [{"id": first}],
    }
    assert call(emu, "GET", "/v2/apps/svc/web").json["app"]["instances"] == 3   # unchanged
    rejected = events_of(emu, "deployment_failed")
    assert len(rejected) == 1 and rejected[0]["id"] != first and "plan" in rejected[0] and "reason" in rejected[0]
    r = call(emu, "PUT", "/v2/apps/svc/web?force=true", {"instances": 5})
    assert r.status == 200
    second = r.json["deploymentId"]
    failed = [e for e in events_of(emu, "deployment_failed") if e["id"] == first]
    assert failed and failed[0]["reason"]
    ids = [d["id"] for d in call(emu, "GET", "/v2/deployments").json]
    assert ids == [second]
    assert call(emu, "GET", "/v2/apps/svc/web").json["app"]["instances"] == 5


def test_too_many_deployments_403(make_emu):
    e = make_emu(max_deployments=1)
    e.set_behaviour(None, "hang")
    assert call(e, "PUT", "/v2/apps/a", {"cmd": "sleep 10"}).status == 201
    r = call(e, "PUT", "/v2/apps/b", {"cmd": "sleep 10"})
    assert r.status == 403 and r.json["message"].startswith("Max number (1) of running deployments")
    assert call(e, "GET", "/v2/apps/b").status == 404


def test_fail_mode(emu):
    emu.put_app_direct(DOCKER_APP)
    emu.set_behaviour("/svc/web", "fail", seconds=0.2, message="Failed to pull image strava/web:bad")
    dep = call(emu, "PUT", "/v2/apps/svc/web", {"cmd": "sleep 2"}).json["deploymentId"]
    assert wait_until(lambda: [e for e in events_of(emu, "deployment_failed") if e["id"] == dep])
    f = [e for e in events_of(emu, "deployment_failed") if e["id"] == dep][0]
    assert f["reason"] == "Failed to pull image strava/web:bad" and f["plan"]["id"] == dep
    assert call(emu, "GET", "/v2/deployments").json == []
    failed = [e for e in events_of(emu, "status_update_event") if e["taskStatus"] == "TASK_FAILED"]
    assert failed and failed[0]["message"] == "Failed to pull image strava/web:bad"
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["lastTaskFailure"]["message"] == "Failed to pull image strava/web:bad"
    assert app["tasksRunning"] == 3          # the old tasks still run


def test_hang_mode_with_task_failures(emu):
    emu.put_app_direct(DOCKER_APP)
    emu.set_behaviour("/svc/web", "hang", seconds=0.1, message="Container exited with status 1")
    dep = call(emu, "PUT", "/v2/apps/svc/web", {"cmd": "sleep 2"}).json["deploymentId"]
    assert wait_until(lambda: len([e for e in events_of(emu, "status_update_event")
                                   if e["taskStatus"] == "TASK_FAILED"]) >= 3)
    assert [d["id"] for d in call(emu, "GET", "/v2/deployments").json] == [dep]   # never fails on its own
    assert not events_of(emu, "deployment_failed") and not events_of(emu, "deployment_success")


def test_behaviour_times_then_default(emu):
    emu.put_app_direct(DOCKER_APP)
    call(emu, "PUT", "/_emu/behaviour/svc/web", {"mode": "fail", "seconds": 0.05, "message": "boom", "times": 1})
    d1 = call(emu, "PUT", "/v2/apps/svc/web", {"cmd": "sleep 3"}).json["deploymentId"]
    assert wait_until(lambda: [e for e in events_of(emu, "deployment_failed") if e["id"] == d1])
    d2 = call(emu, "PUT", "/v2/apps/svc/web", {"cmd": "sleep 4"}).json["deploymentId"]
    assert wait_until(lambda: [e for e in events_of(emu, "deployment_success") if e["id"] == d2])


def test_delete_deployment_rollback_force_and_404(emu):
    emu.put_app_direct(DOCKER_APP)
    emu.set_behaviour("/svc/web", "hang")
    dep = call(emu, "PATCH", "/v2/apps/svc/web", {"cmd": "sleep 9"}).json["deploymentId"]
    r = call(emu, "DELETE", "/v2/deployments/" + dep)
    assert r.status == 200 and set(r.json) == {"deploymentId", "version"}
    rb = r.json["deploymentId"]
    assert rb != dep
    assert [e for e in events_of(emu, "deployment_failed") if e["id"] == dep]
    assert call(emu, "GET", "/v2/apps/svc/web").json["app"]["cmd"] == DOCKER_APP["cmd"]   # restored
    assert wait_until(lambda: [e for e in events_of(emu, "deployment_success") if e["id"] == rb])
    # force: 202, no body, no rollback
    dep2 = call(emu, "PATCH", "/v2/apps/svc/web", {"cmd": "sleep 8"}).json["deploymentId"]
    r = call(emu, "DELETE", "/v2/deployments/%s?force=true" % dep2)
    assert r.status == 202 and r.body == b""
    assert call(emu, "GET", "/v2/deployments").json == []
    assert call(emu, "GET", "/v2/apps/svc/web").json["app"]["cmd"] == "sleep 8"
    r = call(emu, "DELETE", "/v2/deployments/unknown_deployment")
    assert r.status == 404 and r.json == {"message": "DeploymentPlan unknown_deployment does not exist"}


def test_delete_app_terminates(emu):
    emu.put_app_direct(DOCKER_APP)
    r = call(emu, "DELETE", "/v2/apps/svc/web")
    assert r.status == 200 and "deploymentId" in r.json
    assert call(emu, "GET", "/v2/apps/svc/web").status == 404
    assert wait_until(lambda: events_of(emu, "app_terminated_event"))
    assert events_of(emu, "app_terminated_event")[0]["appId"] == "/svc/web"


# --------------------------------------------------------------------------- event stream

class SSE:
    def __init__(self, e, query="", accept="text/event-stream", headers=None):
        self.sock = socket.create_connection((e.host, e.port), timeout=5)
        lines = ["GET /v2/events%s HTTP/1.1" % query, "Host: %s:%d" % (e.host, e.port)]
        if accept is not None:
            lines.append("Accept: " + accept)
        for k, v in (headers or {}).items():
            lines.append("%s: %s" % (k, v))
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.buf = b""
        self.head = None
        self.eof = False
        self._read_head()

    def _fill(self, timeout):
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except socket.timeout:
            return False
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def _read_head(self):
        deadline = time.monotonic() + 5
        while b"\r\n\r\n" not in self.buf and time.monotonic() < deadline and not self.eof:
            self._fill(0.5)
        head, _, rest = self.buf.partition(b"\r\n\r\n")
        self.head = head.decode("latin-1")
        self.buf = rest
        self.status = int(self.head.split(" ")[1])
        self.headers = {}
        for line in self.head.split("\r\n")[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()

    def read_until(self, pred, timeout=3.0):
        deadline = time.monotonic() + timeout
        while not pred(self.buf) and time.monotonic() < deadline and not self.eof:
            self._fill(min(0.2, max(0.01, deadline - time.monotonic())))
        return self.buf

    def frames(self):
        out = []
        for chunk in self.buf.split(b"\r\n\r\n"):
            chunk = chunk.lstrip(b"\r\n")
            if chunk.startswith(b"event: "):
                ev, _, data = chunk.partition(b"\r\n")
                out.append((ev[len(b"event: "):].decode(), json.loads(data[len(b"data: "):])))
        return out

    def close(self):
        self.sock.close()


def test_sse_headers_framing_and_heartbeat(emu):
    s = SSE(emu)
    try:
        assert s.status == 200
        assert s.headers["content-type"] == "text/event-stream;charset=UTF-8"
        assert s.headers["connection"] == "close"
        assert "content-length" not in s.headers and "transfer-encoding" not in s.headers
        s.read_until(lambda b: b"\r\n\r\n" in b)
        assert s.buf.startswith(b"event: event_stream_attached\r\ndata: {")
        first = s.frames()[0]
        assert first[0] == "event_stream_attached" and first[1]["eventType"] == "event_stream_attached"
        # heartbeat: a bare CRLF after a complete frame
        s.read_until(lambda b: b"}\r\n\r\n\r\n" in b, timeout=2)
        assert b"}\r\n\r\n\r\n" in s.buf
        emu.put_app_direct(DOCKER_APP)
        call(emu, "PUT", "/v2/apps/svc/web", {"cmd": "sleep 5"})
        s.read_until(lambda b: b"event: deployment_success" in b, timeout=3)
        raw = s.buf
        assert b"\n" not in raw.replace(b"\r\n", b"")          # no bare LF anywhere: CRLF framing
        assert b"event: deployment_info\r\ndata: {" in raw
        types = [t for t, _ in s.frames()]
        assert "deployment_info" in types and "deployment_success" in types
        assert "status_update_event" in types and "api_post_event" in types
        for t, data in s.frames():
            assert data["eventType"] == t and "timestamp" in data
        info = [d for t, d in s.frames() if t == "deployment_info"][0]
        assert set(info) >= {"plan", "currentStep", "eventType", "timestamp"}
        assert info["currentStep"]["actions"][0]["action"] == "RestartApplication"
    finally:
        s.close()


def test_sse_event_type_filter(emu):
    s = SSE(emu, "?event_type=deployment_success&event_type=deployment_failed")
    try:
        emu.put_app_direct(DOCKER_APP)
        call(emu, "PUT", "/v2/apps/svc/web", {"cmd": "sleep 5"})
        s.read_until(lambda b: b"deployment_success" in b, timeout=3)
        assert {t for t, _ in s.frames()} == {"deployment_success"}
    finally:
        s.close()


def test_sse_wrong_accept_405(emu):
    for accept in ("application/json", None, "text/event-stream, application/json", "*/*"):
        s = SSE(emu, accept=accept)
        try:
            assert s.status == 405, accept
        finally:
            s.close()


def test_sse_cut_and_refuse(emu):
    s = SSE(emu)
    try:
        s.read_until(lambda b: b"event_stream_attached" in b)
        assert call(emu, "GET", "/_emu/streams").json["open"] == 1
        r = call(emu, "POST", "/_emu/streams/cut", {"refuse_seconds": 0.5})
        assert r.json["cut"] == 1
        s.read_until(lambda b: False, timeout=1)
        assert s.eof                                   # server closed the stream
    finally:
        s.close()
    s2 = SSE(emu)
    assert s2.status == 503
    s2.close()
    time.sleep(0.6)
    s3 = SSE(emu)
    try:
        assert s3.status == 200
    finally:
        s3.close()


# --------------------------------------------------------------------------- auth

def test_basic_auth(make_emu):
    e = make_emu(http_credentials="deploy:s3cret")
    for path in ("/v2/apps", "/ping", "/v2/info"):
        r = call(e, "GET", path)
        assert r.status == 401, path
        assert r.header("WWW-Authenticate") == 'basic realm="Mesosphere"'
        assert r.header("Content-Type").startswith("text/html") and b"<html>" in r.body
    s = SSE(e)
    assert s.status == 401
    s.close()
    bad = "Basic " + base64.b64encode(b"deploy:wrong").decode()
    assert call(e, "GET", "/v2/apps", headers={"Authorization": bad}).status == 401
    good = "Basic " + base64.b64encode(b"deploy:s3cret").decode()
    assert call(e, "GET", "/v2/apps", headers={"Authorization": good}).status == 200
    s = SSE(e, headers={"Authorization": good})
    assert s.status == 200
    s.close()
    assert call(e, "GET", "/_emu/requests").status == 200       # control API needs no auth


def test_token_auth(make_emu):
    e = make_emu(token="abc.def")
    r = call(e, "GET", "/v2/apps")
    assert r.status == 401 and "message" in r.json
    r = call(e, "GET", "/v2/apps", headers={"Authorization": "token=nope"})
    assert r.status == 403 and "message" in r.json
    assert call(e, "GET", "/v2/apps", headers={"Authorization": "token=abc.def"}).status == 200


# --------------------------------------------------------------------------- modes

def test_marathon_13_mode(make_emu):
    e = make_emu(marathon_version="1.3")
    e.put_app_direct(DOCKER_APP)
    assert call(e, "GET", "/v2/info").json["version"].startswith("1.3")
    r = call(e, "PATCH", "/v2/apps/svc/web", {"instances": 1})
    assert r.status == 405
    # 1.3 PUT is AppUpdate semantics: top-level merge, partialUpdate unknown (ignored)
    r = call(e, "PUT", "/v2/apps/svc/web?partialUpdate=false", {"cmd": "sleep 5"})
    assert r.status == 200
    app = call(e, "GET", "/v2/apps/svc/web").json["app"]
    assert app["instances"] == 3 and app["cmd"] == "sleep 5" and app["labels"] == DOCKER_APP["labels"]


def test_leader_redirect(make_emu):
    leader = make_emu()
    follower = make_emu(redirect_to=leader.url)
    r = call(follower, "GET", "/v2/apps?label=x")
    assert r.status == 307 and r.header("Location") == leader.url + "/v2/apps?label=x"
    s = SSE(follower)
    assert s.status == 307
    s.close()
    assert call(follower, "GET", "/ping").status == 200


# --------------------------------------------------------------------------- control API

def test_request_log(emu):
    call(emu, "PUT", "/v2/apps/x?force=true", {"cmd": "sleep 10"}, headers={"User-Agent": "autodeployd/0.1"})
    reqs = call(emu, "GET", "/_emu/requests?method=PUT").json["requests"]
    assert len(reqs) == 1
    r = reqs[0]
    assert r["path"] == "/v2/apps/x" and r["query"] == {"force": ["true"]}
    assert r["headers"]["User-Agent"] == "autodeployd/0.1"
    assert json.loads(r["body"]) == {"cmd": "sleep 10"} and r["time"] > 0
    assert all(not q["path"].startswith("/_emu") for q in emu.get_requests())
    call(emu, "DELETE", "/_emu/requests")
    assert emu.get_requests() == []


def test_faults(emu):
    emu.put_app_direct(DOCKER_APP)
    call(emu, "POST", "/_emu/faults", {"method": "GET", "path": "/v2/apps", "count": 2, "status": 503,
                                       "body": {"message": "leader election"}})
    assert call(emu, "GET", "/v2/apps").status == 503
    r = call(emu, "GET", "/v2/apps")
    assert r.status == 503 and r.json == {"message": "leader election"}
    assert call(emu, "GET", "/v2/apps").status == 200
    call(emu, "POST", "/_emu/faults", {"path": "/v2/apps/*", "close": True})
    with pytest.raises((http.client.HTTPException, ConnectionError, OSError)):
        call(emu, "GET", "/v2/apps/svc/web")
    assert call(emu, "GET", "/v2/apps/svc/web").status == 200
    call(emu, "POST", "/_emu/faults", {"method": "GET", "path_regex": "^/v2/info$", "delay": 0.3})
    t0 = time.monotonic()
    assert call(emu, "GET", "/v2/info").status == 200
    assert time.monotonic() - t0 >= 0.3


def test_control_apps_state_and_reset(make_emu):
    e = make_emu(apps=[DOCKER_APP])
    r = call(e, "POST", "/_emu/apps", {"fixture": "13_mlb-nginx-1.5.json"})
    assert r.json["ids"] == ["/nginx"]
    call(e, "PUT", "/v2/apps/svc/web", {"instances": 4})
    state = call(e, "GET", "/_emu/apps/svc/web").json
    assert state["definition"]["instances"] == 4 and len(state["versions"]) == 2
    call(e, "POST", "/_emu/reset")
    assert e.get_requests() == [] and e.get_events() == []
    ids = [a["id"] for a in call(e, "GET", "/v2/apps").json["apps"]]
    assert ids == ["/svc/web"]
    assert call(e, "GET", "/v2/apps/svc/web").json["app"]["instances"] == 3


def test_finish_hanging_deployment_via_control(emu):
    emu.put_app_direct(DOCKER_APP)
    emu.set_behaviour("/svc/web", "hang")
    dep = call(emu, "PUT", "/v2/apps/svc/web", {"cmd": "sleep 6"}).json["deploymentId"]
    r = call(emu, "POST", "/_emu/deployments/%s/finish" % dep, {"result": "success"})
    assert r.json["ok"]
    assert call(emu, "GET", "/v2/deployments").json == []
    assert [e for e in events_of(emu, "deployment_success") if e["id"] == dep]


# --------------------------------------------------------------------------- shell

def test_cli_port_file_and_apps(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen(
        [sys.executable, os.path.join(HERE, "marathon.py"), "--listen", "127.0.0.1:0", "--port-file", str(port_file),
         "--apps", os.path.join(FIX, "real_apps"), "--deploy-seconds", "0.1", "--heartbeat-seconds", "0.5",
         "--list-delay-seconds", "0.25"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert wait_until(port_file.exists, timeout=5)
        port = int(port_file.read_text())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("GET", "/v2/apps?label=HAPROXY_GROUP")
        apps = json.loads(conn.getresponse().read())["apps"]
        conn.request("GET", "/_emu/config")
        config = json.loads(conn.getresponse().read())
        conn.close()
        assert len(apps) >= 5
        assert config["list_delay_seconds"] == 0.25 and config["deploy_seconds"] == 0.1
    finally:
        proc.terminate()
        proc.wait(timeout=5)
    assert proc.returncode == 0
    assert b"listening on" in proc.stderr.read()


# --------------------------------------------------------------------------- sharing the app with other writers

def new_image(image):
    cont = copy.deepcopy(DOCKER_APP["container"])
    cont["docker"]["image"] = image
    return {"container": cont}


def dep_ids(e):
    return [d["id"] for d in call(e, "GET", "/v2/deployments").json]


def test_list_delay_hides_a_new_deployment_but_it_holds_the_lock(make_emu):
    """docs/marathon-api.md: a deployment just accepted may not be listed for a moment (the
    update's answer comes before the deployment manager has it). It is absent from
    /v2/deployments and from the app's `deployments`, yet the app is locked at once."""
    e = make_emu(list_delay_seconds=0.6)
    e.put_app_direct(DOCKER_APP)
    e.set_behaviour("/svc/web", "hang")
    t0 = time.monotonic()
    r = call(e, "PATCH", "/v2/apps/svc/web", new_image("strava/web:2"))
    dep = r.json["deploymentId"]
    assert r.status == 200 and r.header("Marathon-Deployment-Id") == dep
    assert dep_ids(e) == [] and call(e, "GET", "/v2/apps/svc/web").json["app"]["deployments"] == []
    assert call(e, "GET", "/v2/apps").json["apps"][0]["deployments"] == []
    assert e.list_deployments() == [] and [d["id"] for d in e.list_deployments(include_unlisted=True)] == [dep]
    ctl = call(e, "GET", "/_emu/deployments").json["deployments"]
    assert [(d["id"], d["listed"]) for d in ctl] == [(dep, False)]
    locked = call(e, "PATCH", "/v2/apps/svc/web", {"cmd": "sleep 3"})
    assert locked.status == 409 and locked.json["deployments"] == [{"id": dep}]
    assert time.monotonic() - t0 < 0.6, "the checks above must run inside the delay"
    assert wait_until(lambda: dep_ids(e) == [dep], timeout=3)
    assert time.monotonic() - t0 >= 0.6
    assert call(e, "GET", "/v2/apps/svc/web").json["app"]["deployments"] == [{"id": dep}]
    # Settable at run time; 0 lists at once again.
    assert call(e, "PUT", "/_emu/config", {"list_delay_seconds": 0}).json["list_delay_seconds"] == 0
    e.finish_deployment(dep, "success")
    dep2 = call(e, "PATCH", "/v2/apps/svc/web", new_image("strava/web:3")).json["deploymentId"]
    assert dep_ids(e) == [dep2]


def test_list_delay_longer_than_the_deployment_never_lists_it(make_emu):
    e = make_emu(list_delay_seconds=5)
    e.put_app_direct(DOCKER_APP)
    e.set_behaviour("/svc/web", "succeed", seconds=0.2)
    dep = call(e, "PATCH", "/v2/apps/svc/web", new_image("strava/web:2")).json["deploymentId"]
    seen = []
    deadline = time.monotonic() + 1.0
    while time.monotonic() < deadline:
        seen += dep_ids(e)
        time.sleep(0.02)
    assert seen == []
    assert [ev for ev in events_of(e, "deployment_success") if ev["id"] == dep]
    app = call(e, "GET", "/v2/apps/svc/web").json["app"]
    assert app["tasksRunning"] == 3 and {t["version"] for t in app["tasks"]} == {app["version"]}
    assert e.deployment_record(dep)["result"] == "success"


def test_rollback_behaviour_hang_and_slow(emu):
    """DELETE /v2/deployments/{id} starts a revert deployment that can hang or take time like
    any other (docs/marathon-api.md: "rollback accepted" is not "rolled back")."""
    emu.put_app_direct(DOCKER_APP)
    emu.set_behaviour("/svc/web", "hang")
    emu.set_rollback_behaviour("/svc/web", "hang")
    dep = call(emu, "PATCH", "/v2/apps/svc/web", new_image("strava/web:2")).json["deploymentId"]
    r = call(emu, "DELETE", "/v2/deployments/" + dep)
    assert r.status == 200
    rb = r.json["deploymentId"]
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["container"]["docker"]["image"] == "strava/web:1"      # the definition is restored at once
    assert app["deployments"] == [{"id": rb}] and app["tasksStaged"] == 3 and app["tasksRunning"] == 3
    time.sleep(0.5)
    assert dep_ids(emu) == [rb]                                        # the revert hangs
    assert not [ev for ev in events_of(emu, "deployment_success") if ev["id"] == rb]
    rec = emu.deployment_record(rb)
    assert rec["applies_to"] == "rollback" and rec["rollback_of"] == dep and rec["behaviour"]["mode"] == "hang"
    assert emu.deployment_record(dep)["rolled_back_by"] == rb
    assert call(emu, "POST", "/_emu/deployments/%s/finish" % rb, {"result": "success"}).json["ok"]
    assert dep_ids(emu) == []
    # Over the control API: a revert that takes 0.6 s.
    r = call(emu, "PUT", "/_emu/behaviour/svc/web", {"mode": "succeed", "seconds": 0.6, "applies_to": "rollback"})
    assert r.json == {"mode": "succeed", "seconds": 0.6, "message": ""}
    got = call(emu, "GET", "/_emu/behaviour").json
    assert got["rollback_apps"]["/svc/web"]["seconds"] == 0.6 and got["apps"]["/svc/web"]["mode"] == "hang"
    dep2 = call(emu, "PATCH", "/v2/apps/svc/web", new_image("strava/web:3")).json["deploymentId"]
    t0 = time.monotonic()
    rb2 = call(emu, "DELETE", "/v2/deployments/" + dep2).json["deploymentId"]
    assert wait_until(lambda: [ev for ev in events_of(emu, "deployment_success") if ev["id"] == rb2], timeout=3)
    assert time.monotonic() - t0 >= 0.55
    # A failing revert: deployment_failed with the message.
    emu.set_rollback_behaviour("/svc/web", "fail", seconds=0.1, message="no offers", times=1)
    dep3 = call(emu, "PATCH", "/v2/apps/svc/web", new_image("strava/web:4")).json["deploymentId"]
    rb3 = call(emu, "DELETE", "/v2/deployments/" + dep3).json["deploymentId"]
    assert wait_until(lambda: [ev for ev in events_of(emu, "deployment_failed")
                               if ev["id"] == rb3 and ev["reason"] == "no offers"])
    # DELETE of the behaviours of one kind leaves the other.
    call(emu, "DELETE", "/_emu/behaviour/svc/web?applies_to=rollback")
    got = call(emu, "GET", "/_emu/behaviour").json
    assert got["rollback_apps"] == {} and "/svc/web" in got["apps"]


def test_rollback_by_patch_is_an_ordinary_deployment(emu):
    """Only a DELETE's revert draws on the rollback behaviour: a PATCH that puts the old image
    back is a normal deployment and follows the app's (deploy) behaviour."""
    emu.put_app_direct(DOCKER_APP)
    emu.set_rollback_behaviour("/svc/web", "hang")
    emu.set_behaviour("/svc/web", "fail", seconds=0.1, message="bad image", times=1)
    d1 = call(emu, "PATCH", "/v2/apps/svc/web", new_image("strava/web:2")).json["deploymentId"]
    assert wait_until(lambda: [ev for ev in events_of(emu, "deployment_failed") if ev["id"] == d1])
    assert emu.deployment_record(d1)["result"] == "failed"
    d2 = call(emu, "PATCH", "/v2/apps/svc/web", new_image("strava/web:1")).json["deploymentId"]
    assert wait_until(lambda: [ev for ev in events_of(emu, "deployment_success") if ev["id"] == d2])
    assert emu.deployment_record(d2)["applies_to"] == "deploy"
    emu.set_behaviour("/svc/web", "hang")
    d3 = call(emu, "PATCH", "/v2/apps/svc/web", new_image("strava/web:2")).json["deploymentId"]
    time.sleep(0.4)
    assert dep_ids(emu) == [d3]


def test_scale_only_change_restarts_nothing(emu):
    """docs/marathon-api.md: a scale keeps running tasks on their old `version`; new tasks get
    the new one; lastScalingAt moves, lastConfigChangeAt does not."""
    emu.put_app_direct(DOCKER_APP)
    before = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    v0 = before["version"]
    old = {t["id"]: t["version"] for t in before["tasks"]}
    r = call(emu, "PUT", "/v2/apps/svc/web", {"instances": 5})
    v1 = r.json["version"]
    dep = r.json["deploymentId"]
    running = call(emu, "GET", "/v2/deployments").json
    assert running[0]["steps"] == [{"actions": [{"action": "ScaleApplication", "app": "/svc/web"}]}]
    assert wait_until(lambda: dep_ids(emu) == [])
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["version"] == v1 != v0
    assert app["versionInfo"] == {"lastScalingAt": v1, "lastConfigChangeAt": before["versionInfo"]["lastConfigChangeAt"]}
    assert app["tasksRunning"] == 5
    tasks = {t["id"]: t["version"] for t in app["tasks"]}
    assert {k: tasks[k] for k in old} == old                          # the running ones kept
    assert sorted(v for k, v in tasks.items() if k not in old) == [v1, v1]
    assert not [e for e in events_of(emu, "status_update_event") if e["taskStatus"] == "TASK_KILLED"]
    assert emu.deployment_record(dep)["kind"] == "scale"
    # Scaling down kills tasks, again without a restart of the rest.
    v2 = call(emu, "PUT", "/v2/apps/svc/web", {"instances": 2}).json["version"]
    assert wait_until(lambda: dep_ids(emu) == [])
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["tasksRunning"] == 2 and set(t["id"] for t in app["tasks"]) <= set(tasks)
    assert app["versionInfo"]["lastScalingAt"] == v2
    assert app["versionInfo"]["lastConfigChangeAt"] == before["versionInfo"]["lastConfigChangeAt"]


def test_forced_update_cancels_and_keeps_the_merged_definition(emu):
    """A forced scale mid-deployment: the running deployment ends deployment_failed "The
    upgrade has been cancelled"; Marathon stored the cancelled deployment's target, so the new
    deployment carries that image plus the new instances (a scale, not a restart)."""
    emu.put_app_direct(DOCKER_APP)
    emu.set_behaviour("/svc/web", "succeed", seconds=3, times=1)
    r1 = call(emu, "PATCH", "/v2/apps/svc/web", new_image("strava/web:2"))
    d1, v1 = r1.json["deploymentId"], r1.json["version"]
    r2 = call(emu, "PUT", "/v2/apps/svc/web?force=true", {"instances": 4})
    assert r2.status == 200
    d2, v2 = r2.json["deploymentId"], r2.json["version"]
    failed = [ev for ev in events_of(emu, "deployment_failed") if ev["id"] == d1]
    assert len(failed) == 1 and failed[0]["reason"] == "The upgrade has been cancelled"
    steps = [ev for ev in events_of(emu, "deployment_step_failure") if ev["plan"]["id"] == d1]
    assert len(steps) == 1
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["container"]["docker"]["image"] == "strava/web:2" and app["instances"] == 4
    assert app["deployments"] == [{"id": d2}]
    assert app["versionInfo"] == {"lastScalingAt": v2, "lastConfigChangeAt": v1}
    assert emu.deployment_record(d2)["kind"] == "scale"
    assert wait_until(lambda: dep_ids(emu) == [])
    app = call(emu, "GET", "/v2/apps/svc/web").json["app"]
    assert app["tasksRunning"] == 4
    hist = call(emu, "GET", "/_emu/apps/svc/web").json["versions"]
    assert [h["app"]["instances"] for h in hist] == [3, 3, 4]
    assert hist[-1]["app"]["container"]["docker"]["image"] == "strava/web:2"


def test_who_created_and_who_cancelled_each_deployment(emu):
    emu.put_app_direct(DOCKER_APP)
    emu.set_behaviour("/svc/web", "hang")
    ua_bot, ua_ops = {"User-Agent": "autodeployd/0.1.0"}, {"User-Agent": "ops-cli/2.0"}
    r = call(emu, "PATCH", "/v2/apps/svc/web", new_image("strava/web:2"), headers=ua_bot)
    mine = r.json["deploymentId"]
    r = call(emu, "PUT", "/v2/apps/svc/web?force=true", {"instances": 4}, headers=ua_ops)
    theirs = r.json["deploymentId"]
    c = emu.cancellations()
    assert len(c) == 1 and c[0]["deployment"] == mine and c[0]["replaced_by"] == theirs
    assert c[0]["created_by"]["user_agent"] == "autodeployd/0.1.0" and c[0]["created_by"]["method"] == "PATCH"
    assert c[0]["cancelled_by"]["user_agent"] == "ops-cli/2.0" and c[0]["cancelled_by"]["force"] is True
    assert c[0]["cancelled_by"]["query"] == {"force": ["true"]}
    assert c[0]["reason"] == "The upgrade has been cancelled"
    # An operator's DELETE of a deployment: it is cancelled by that request, whose revert it created.
    r = call(emu, "DELETE", "/v2/deployments/" + theirs, headers=ua_bot)
    rb = r.json["deploymentId"]
    hist = {d["id"]: d for d in call(emu, "GET", "/_emu/deployments/history").json["deployments"]}
    assert hist[theirs]["result"] == "cancelled" and hist[theirs]["rolled_back_by"] == rb
    assert hist[theirs]["cancelled_by"]["method"] == "DELETE"
    assert hist[rb]["created_by"]["user_agent"] == "autodeployd/0.1.0" and hist[rb]["rollback_of"] == theirs
    assert hist[mine]["created_by"]["seq"] < hist[theirs]["created_by"]["seq"]
    over_http = call(emu, "GET", "/_emu/cancellations").json["cancellations"]
    assert [x["deployment"] for x in over_http] == [mine, theirs]
    # The request log says what each request did.
    reqs = {r["seq"]: r for r in emu.get_requests()}
    put = reqs[hist[theirs]["created_by"]["seq"]]
    assert put["status"] == 200 and put["deployment_created"] == theirs and put["deployments_cancelled"] == [mine]
    assert put["app_labels"] == DOCKER_APP["labels"]
    dele = reqs[hist[rb]["created_by"]["seq"]]
    assert dele["deployment_created"] == rb and dele["deployments_cancelled"] == [theirs]
    # A 409 creates nothing; a deployment begun by the control API or ended by the emulator
    # itself (fail mode) has no request behind it.
    r = call(emu, "PATCH", "/v2/apps/svc/web", {"cmd": "sleep 7"})
    assert r.status == 409
    rejected = [q for q in emu.get_requests() if q["seq"] == max(reqs) + 1][0]
    assert rejected["status"] == 409 and rejected["deployment_created"] is None
    emu.finish_deployment(rb, "failed", "given up")
    assert emu.deployment_record(rb)["result"] == "failed" and emu.deployment_record(rb)["cancelled_by"] is None
    # The audit survives a reset.
    call(emu, "POST", "/_emu/reset")
    assert emu.deployment_history() == [] and emu.get_requests() == []
    reqs, deps = emu.audit()
    assert mine in deps and theirs in deps and len(reqs) >= 4


def test_faults_by_user_agent_and_after_an_event(emu):
    emu.put_app_direct(DOCKER_APP)
    f = emu.add_fault({"method": "GET", "path": "/v2/apps/svc/web", "user_agent": "autodeployd/",
                       "after_event": "deployment_failed", "status": 503, "body": {"message": "later"}})
    bot = {"User-Agent": "autodeployd/0.1.0"}
    assert call(emu, "GET", "/v2/apps/svc/web", headers=bot).status == 200       # not armed yet
    emu.set_behaviour("/svc/web", "fail", seconds=0.05, message="x", times=1)
    call(emu, "PATCH", "/v2/apps/svc/web", {"cmd": "sleep 2"})
    assert wait_until(lambda: events_of(emu, "deployment_failed"))
    assert call(emu, "GET", "/v2/apps/svc/web").status == 200                    # another client
    r = call(emu, "GET", "/v2/apps/svc/web", headers=bot)
    assert r.status == 503 and r.json == {"message": "later"}
    assert len(f.hits) == 1 and f.count == 0
    hit = [q for q in emu.get_requests() if q["seq"] == f.hits[0]][0]
    assert hit["fault"]["user_agent"] == "autodeployd/" and hit["status"] == 503
    assert call(emu, "GET", "/v2/apps/svc/web", headers=bot).status == 200


def test_every_emulator_is_registered():
    marathon.take_created()
    e = MarathonEmulator()
    assert marathon.take_created() == [e] and marathon.take_created() == []
