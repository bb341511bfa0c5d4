#!/usr/bin/env python3
"""Stateful Marathon emulator for autodeploy's integration tests and demo.

Standard library only (Python 3.11).  Faithful to docs/marathon-api.md (the
1.10 line of mesosphere/marathon); see tests/emulator/README.md for what is
faithful and what is simplified.

Shell:
    python3 tests/emulator/marathon.py --listen 127.0.0.1:0 --port-file /tmp/m.port \
        [--apps FILE_OR_DIR ...] [--http-credentials user:pass] [--token TOKEN] \
        [--marathon-version 1.10|1.3] [--deploy-seconds S] [--heartbeat-seconds S] \
        [--max-deployments N] [--list-delay-seconds S] [--redirect-to URL] [--quiet]

Python:
    from marathon import MarathonEmulator
    emu = MarathonEmulator(apps=[...], deploy_seconds=0.2).start()
    ... emu.url ...
    emu.stop()

Marathon's API lives under /v2, /ping; the emulator's own control API under
/_emu/ (never authenticated, never logged as a Marathon request).
"""

from __future__ import annotations

import argparse
import base64
import copy
import datetime as _dt
import json
import os
import queue
import random
import re
import signal
import socket
import sys
import threading
import time
import urllib.parse
import uuid

import httpbase

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = os.path.normpath(os.path.join(HERE, "..", "fixtures", "marathon"))

# Fields Marathon computes and only ever returns on GET.  `version` is special:
# alone (or with `id`) it is a rollback, with anything else a 422.
GET_ONLY_FIELDS = (
    "versionInfo", "tasksStaged", "tasksRunning", "tasksHealthy", "tasksUnhealthy",
    "deployments", "tasks", "lastTaskFailure", "readinessCheckResults", "taskStats",
)

# Defaults Marathon fills in for an app that does not state them (subset).
APP_DEFAULTS = {
    "instances": 1,
    "cpus": 1,
    "mem": 128,
    "disk": 0,
    "gpus": 0,
    "env": {},
    "labels": {},
    "constraints": [],
    "healthChecks": [],
    "backoffSeconds": 1,
    "backoffFactor": 1.15,
    "maxLaunchDelaySeconds": 300,
    "requirePorts": False,
    "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
    "killSelection": "YOUNGEST_FIRST",
}

# PathId segment rule (state/PathId.scala).
ID_SEGMENT_RE = re.compile(r"^(([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])\.)*([a-z0-9]|[a-z0-9][a-z0-9\-]*[a-z0-9])$")
ID_SEGMENT_MSG = ("must fully match regular expression "
                  "'^(([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])\\.)*([a-z0-9]|[a-z0-9][a-z0-9\\-]*[a-z0-9])|(\\.|\\.\\.)$'")

LOCKED_MSG = ("App is locked by one or more deployments. Override with the option '?force=true'. "
              "View details at '/v2/deployments/<DEPLOYMENT_ID>'.")
CANCELLED_REASON = "The upgrade has been cancelled"
TOO_MANY_MSG = ("Max number ({n}) of running deployments is achieved. Wait for existing deployments to complete "
                "or cancel oneusing force=true parameter. You can increase max deployment number by using "
                "--max_running_deployments parameter but be advised that this can have negative effects on the "
                "performance.")

HTML_401 = """<html>
<head>
<meta http-equiv="Content-Type" content="text/html;charset=ISO-8859-1"/>
<title>Error 401 Unauthorized</title>
</head>
<body><h2>HTTP ERROR 401</h2>
<p>Problem accessing {path}. Reason:
<pre>    Unauthorized</pre></p><hr><a href="http://eclipse.org/jetty">Powered by Jetty:// 9.4.z</a><hr/>
</body>
</html>
"""

HTML_405 = """<html>
<head>
<meta http-equiv="Content-Type" content="text/html;charset=ISO-8859-1"/>
<title>Error 405 HTTP method GET is not supported by this URL</title>
</head>
<body><h2>HTTP ERROR 405</h2>
<p>Problem accessing {path}. Reason:
<pre>    HTTP method GET is not supported by this URL</pre></p><hr><a href="http://eclipse.org/jetty">Powered by Jetty:// 9.4.z</a><hr/>
</body>
</html>
"""


# --------------------------------------------------------------------------- helpers

def iso(t: float) -> str:
    d = _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (d.microsecond // 1000)


class Clock:
    """Millisecond timestamps, strictly increasing (Marathon versions are unique)."""

    def __init__(self):
        self._last = 0
        self._lock = threading.Lock()

    def now(self) -> str:
        with self._lock:
            ms = int(time.time() * 1000)
            if ms <= self._last:
                ms = self._last + 1
            self._last = ms
            return iso(ms / 1000.0)


def jdump(obj) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


class ApiError(Exception):
    def __init__(self, status, body, headers=None):
        super().__init__(str(body))
        self.status = status
        self.body = body
        self.headers = headers or {}


def not_valid(path, error, message="Object is not valid"):
    return ApiError(422, {"message": message, "details": [{"path": path, "errors": [error]}]})


def normalize_id(raw: str) -> str:
    raw = raw.strip()
    parts = [p for p in raw.split("/") if p != ""]
    return "/" + "/".join(parts)


def validate_id(app_id: str):
    if app_id == "/":
        raise not_valid("/id", "Path must contain at least one path element")
    for seg in app_id.strip("/").split("/"):
        if not ID_SEGMENT_RE.match(seg):
            raise not_valid("/id", ID_SEGMENT_MSG)


def bool_param(query, name, default):
    vals = query.get(name)
    if not vals:
        return default
    return vals[-1].strip().lower() == "true"


# --------------------------------------------------------------------------- label selectors

class SelectorError(ValueError):
    pass


_TERM_RE = re.compile(r"(?:\\.|[-A-Za-z0-9_.])+")
_TERM_DESC = "string matching regex '(\\\\.|[-A-Za-z0-9_.])+'"


class _SelectorParser:
    """Mirror of api/v2/LabelSelectorParsers.scala (RegexParsers: whitespace is
    skipped before every token; alternatives backtrack; parseAll)."""

    def __init__(self, text):
        self.s = text
        self.err_pos = -1
        self.err_msg = ""

    def _fail(self, pos, what):
        if pos >= self.err_pos:
            found = "end of source" if pos >= len(self.s) else "'%s'" % self.s[pos]
            self.err_pos, self.err_msg = pos, "%s expected but %s found" % (what, found)
        return None

    def _ws(self, pos):
        while pos < len(self.s) and self.s[pos].isspace():
            pos += 1
        return pos

    def term(self, pos):
        pos = self._ws(pos)
        m = _TERM_RE.match(self.s, pos)
        if not m:
            return self._fail(pos, _TERM_DESC)
        return re.sub(r"\\(.)", r"\1", m.group(0)), m.end()

    def lit(self, pos, text):
        pos = self._ws(pos)
        if self.s.startswith(text, pos):
            return text, pos + len(text)
        return self._fail(pos, "'%s'" % text)

    def regex(self, pos, rx, desc):
        pos = self._ws(pos)
        m = rx.match(self.s, pos)
        if not m:
            return self._fail(pos, desc)
        return m.group(0), m.end()

    _SETOP = re.compile(r"(in|notin)")
    _EQOP = re.compile(r"(==|!=)")

    def set_selector(self, pos):
        r = self.term(pos)
        if not r:
            return None
        key, pos = r
        r = self.regex(pos, self._SETOP, "string matching regex '(in|notin)'")
        if not r:
            return None
        op, pos = r
        r = self.lit(pos, "(")
        if not r:
            return None
        values, pos = self.comma_list(r[1], self.term)
        r = self.lit(pos, ")")
        if not r:
            return None
        return (key, op, values), r[1]

    def eq_selector(self, pos):
        r = self.term(pos)
        if not r:
            return None
        key, pos = r
        r = self.regex(pos, self._EQOP, "string matching regex '(==|!=)'")
        if not r:
            return None
        op, pos = r
        r = self.term(pos)
        if not r:
            return None
        return (key, op, [r[0]]), r[1]

    def selector(self, pos):
        for alt in (self.set_selector, self.eq_selector):
            r = alt(pos)
            if r:
                return r
        r = self.term(pos)
        if not r:
            return None
        return (r[0], "exists", []), r[1]

    def comma_list(self, pos, item):
        """Zero or more items separated by commas, from pos: (values, position after them)."""
        out = []
        r = item(pos)
        while r:
            out.append(r[0])
            pos = r[1]
            c = self.lit(pos, ",")
            r = item(c[1]) if c else None
        return out, pos

    def parse(self):
        out, pos = self.comma_list(0, self.selector)
        end = self._ws(pos)
        if end != len(self.s):
            if self.err_pos < end:
                self.err_pos, self.err_msg = end, "end of input expected"
            raise SelectorError(self.err_msg)
        return out


def parse_label_selector(text: str):
    """Returns a list of (key, op, values); op in exists, ==, !=, in, notin."""
    return _SelectorParser(text).parse()


def selector_matches(selectors, labels) -> bool:
    labels = labels or {}
    for key, op, values in selectors:
        if key not in labels:
            return False
        v = labels[key]
        if op == "==" and v != values[0]:
            return False
        if op == "!=" and v == values[0]:
            return False
        if op == "in" and v not in values:
            return False
        if op == "notin" and v in values:
            return False
    return True


# --------------------------------------------------------------------------- state objects

class App:
    def __init__(self, app_id, definition, version):
        self.id = app_id
        self.definition = definition          # dict as the client sent it (+ defaults), id normalised
        self.version = version
        self.version_info = {"lastScalingAt": version, "lastConfigChangeAt": version}
        self.versions = [(version, copy.deepcopy(definition))]   # full history, oldest first
        self.tasks = []                       # list of task dicts
        self.last_task_failure = None

    def snapshot(self):
        return {"definition": copy.deepcopy(self.definition), "version": self.version,
                "versionInfo": dict(self.version_info)}


class Deployment:
    def __init__(self, dep_id, version, app_id, steps, kind, original, target, behaviour):
        self.id = dep_id
        self.version = version
        self.app_id = app_id
        self.affected_apps = [app_id]
        self.steps = steps                # [[{"action":..,"app":..}], ...]
        self.kind = kind                  # start | scale | restart | stop | none
        self.original = original          # App.snapshot() before, or None (created)
        self.target = target              # App.snapshot() after, or None (deleted)
        self.behaviour = behaviour        # {"mode","seconds","message"}
        self.current_step = 0             # 0 = not started; 1-based while running
        self.started = time.monotonic()
        self.step_started = self.started
        self.new_tasks = []               # task ids launched by this deployment
        self.next_failure = None          # monotonic time of next TASK_FAILED (hang+message)
        self.done = False
        # Bookkeeping for tests (GET /_emu/deployments/history, /_emu/cancellations):
        self.listed_from = self.started   # monotonic: absent from the listings before this
        self.created_wall = time.time()
        self.ended_wall = None
        self.result = "running"           # running | success | failed | cancelled
        self.reason = None
        self.created_by = None            # request summary (see MarathonEmulator._who)
        self.cancelled_by = None          # request summary of the write that cancelled it
        self.replaced_by = None           # id of the forced deployment that cancelled it
        self.rollback_of = None           # for a DELETE's revert: the deployment it reverts
        self.rolled_back_by = None        # id of the revert deployment a DELETE started
        self.applies_to = "deploy"        # which behaviour table it drew from: deploy | rollback

    def listed(self, now=None):
        return (time.monotonic() if now is None else now) >= self.listed_from

    def history_json(self):
        return {
            "id": self.id, "app": self.app_id, "kind": self.kind, "version": self.version,
            "steps": [{"actions": [dict(a) for a in s]} for s in self.steps],
            "behaviour": dict(self.behaviour), "applies_to": self.applies_to,
            "created_at": iso(self.created_wall), "created_time": self.created_wall,
            "listed": self.listed(), "ended_at": iso(self.ended_wall) if self.ended_wall else None,
            "ended_time": self.ended_wall, "result": self.result, "reason": self.reason,
            "created_by": copy.deepcopy(self.created_by), "cancelled_by": copy.deepcopy(self.cancelled_by),
            "replaced_by": self.replaced_by, "rollback_of": self.rollback_of,
            "rolled_back_by": self.rolled_back_by,
        }

    def plan_json(self):
        return {"id": self.id, "steps": [{"actions": [dict(a) for a in s]} for s in self.steps],
                "version": self.version}

    def api_json(self):
        cur = self.steps[self.current_step - 1] if 0 < self.current_step <= len(self.steps) else []
        return {
            "id": self.id,
            "version": self.version,
            "affectedApps": list(self.affected_apps),
            "affectedPods": [],
            "steps": [{"actions": [dict(a) for a in s]} for s in self.steps],
            "currentActions": [dict(a, readinessCheckResults=[]) for a in cur],
            "currentStep": max(self.current_step, 1 if self.steps else 0),
            "totalSteps": len(self.steps),
        }


class _Fault:
    def __init__(self, spec):
        self.method = (spec.get("method") or "").upper() or None
        self.path = spec.get("path")
        self.path_regex = re.compile(spec["path_regex"]) if spec.get("path_regex") else None
        self.count = int(spec.get("count", 1))
        self.status = spec.get("status")
        self.body = spec.get("body")
        self.headers = spec.get("headers") or {}
        self.delay = float(spec.get("delay", 0) or 0)
        self.close = bool(spec.get("close", False))
        self.user_agent = spec.get("user_agent")          # prefix of the request's User-Agent
        self.after_event = spec.get("after_event")        # armed once such an event is published
        self.after_event_id = spec.get("after_event_id")  # ... for this deployment id only
        self.armed = not self.after_event
        self.hits = []                                     # seq of every request it applied to
        self.spec = dict(spec)

    def arm_on(self, event):
        if self.armed or event.get("eventType") != self.after_event:
            return
        if self.after_event_id is not None:
            ids = {event.get("id"), (event.get("plan") or {}).get("id")}
            if self.after_event_id not in ids:
                return
        self.armed = True

    def matches(self, method, path, user_agent=""):
        if self.count <= 0 or not self.armed:
            return False
        if self.method and self.method != method:
            return False
        if self.user_agent is not None and not (user_agent or "").startswith(self.user_agent):
            return False
        if self.path_regex is not None:
            return bool(self.path_regex.search(path))
        if self.path:
            if self.path.endswith("*"):
                return path.startswith(self.path[:-1])
            return path == self.path
        return True


class _Stream:
    def __init__(self, filters, remote):
        self.filters = set(filters)
        self.remote = remote
        self.q = queue.Queue()
        self.closed = False

    def wants(self, event_type):
        return not self.filters or event_type in self.filters


# --------------------------------------------------------------------------- the emulator

# Every MarathonEmulator constructed in this process, in order (tests/integration/conftest.py's
# write guard checks the ones a test created). take_created() empties it.
CREATED: list = []
_CREATED_LOCK = threading.Lock()


def take_created():
    """Returns and forgets every emulator constructed since the last call."""
    with _CREATED_LOCK:
        out = list(CREATED)
        del CREATED[:]
    return out


CONFIG_KEYS = ("max_deployments", "deploy_seconds", "heartbeat_seconds", "marathon_version",
               "redirect_to", "http_credentials", "token", "list_delay_seconds")
BEHAVIOUR_MODES = ("succeed", "hang", "fail")


class MarathonEmulator(httpbase.Owner):
    log_name = "marathon-emu"

    def __init__(self, host="127.0.0.1", port=0, apps=None, http_credentials=None, token=None,
                 marathon_version="1.10", deploy_seconds=1.0, heartbeat_seconds=10.0,
                 max_deployments=100, redirect_to=None, quiet=True, log_stream=None,
                 list_delay_seconds=0.0):
        with _CREATED_LOCK:
            CREATED.append(self)
        self._init_owner(host, port, quiet, threading.RLock())
        self.http_credentials = http_credentials
        self.token = token
        self.marathon_version = str(marathon_version)
        self.deploy_seconds = float(deploy_seconds)
        self.heartbeat_seconds = float(heartbeat_seconds)
        self.max_deployments = int(max_deployments)
        # A deployment just accepted is absent from GET /v2/deployments and from the app's
        # `deployments` for this long (the update's answer comes before the deployment
        # manager lists it); it holds the app's lock from the start all the same.
        self.list_delay_seconds = float(list_delay_seconds)
        self.redirect_to = redirect_to
        self.log_stream = log_stream or sys.stderr
        self.clock = Clock()
        self.initial_apps = [copy.deepcopy(a) for a in (apps or [])]
        self.apps: dict[str, App] = {}
        self.deployments: dict[str, Deployment] = {}
        self.behaviours: dict[str, dict] = {}
        self.default_behaviour = None
        # Behaviours of the revert deployments started by DELETE /v2/deployments/{id}.
        self.rollback_behaviours: dict[str, dict] = {}
        self.default_rollback_behaviour = None
        self.faults: list[_Fault] = []
        self.requests: list[dict] = []
        self.history: dict[str, Deployment] = {}      # every deployment since the last reset
        # Never cleared (not by reset nor DELETE /_emu/requests): what the integration suite's
        # write guard audits.
        self.audit_requests: list[dict] = []
        self.audit_deployments: dict[str, Deployment] = {}
        self._tls = threading.local()                 # the Marathon request this thread serves
        self.events: list[dict] = []
        self.streams: list[_Stream] = []
        self.refuse_streams_until = 0.0
        self.refuse_status = 503
        self.req_seq = 0
        self.framework_id = str(uuid.uuid4()) + "-0000"
        self._stopped_tasks = {}          # deployment id -> tasks of a removed app, killed when it ends
        self._reset_state()

    # ----------------------------------------------------------------- lifecycle (the rest: httpbase.Owner)
    def start(self):
        self._serve(_Handler, "marathon-http", emu=self)
        e = threading.Thread(target=self._engine, name="marathon-engine", daemon=True)
        e.start()
        self._threads.append(e)
        self.log("listening on %s (Marathon %s mode)" % (self.url, self.marathon_version))
        return self

    def _wake(self):
        # The lock is an RLock, which nothing waits on: what blocks at stop is the event streams.
        self.cut_streams()

    # ----------------------------------------------------------------- state
    def _reset_state(self):
        with self.lock:
            for d in list(self.deployments.values()):
                d.done = True
            self.apps.clear()
            self.deployments.clear()
            self.behaviours.clear()
            self.default_behaviour = None
            self.rollback_behaviours.clear()
            self.default_rollback_behaviour = None
            self.faults.clear()
            self.requests.clear()
            self.events.clear()
            self.history.clear()
            self.refuse_streams_until = 0.0
            for a in self.initial_apps:
                self.put_app_direct(a)

    def reset(self):
        self._reset_state()

    def put_app_direct(self, definition):
        """Install an app as already deployed (running tasks, no deployment, no events)."""
        if not isinstance(definition, dict) or "id" not in definition:
            raise ApiError(422, {"message": "app definition needs an id"})
        d = copy.deepcopy(definition)
        version = d.pop("version", None) or self.clock.now()
        vinfo = d.pop("versionInfo", None)
        for k in GET_ONLY_FIELDS:
            d.pop(k, None)
        app_id = normalize_id(str(d["id"]))
        validate_id(app_id)
        self._check_labels(d)
        d["id"] = app_id
        for k, v in APP_DEFAULTS.items():
            d.setdefault(k, copy.deepcopy(v))
        with self.lock:
            app = App(app_id, d, version)
            if isinstance(vinfo, dict):
                app.version_info.update(vinfo)
            app.tasks = [self._new_task(app, "TASK_RUNNING") for _ in range(self._instances(d))]
            self.apps[app_id] = app
        return app

    def _behaviour_tables(self, applies_to):
        if applies_to == "rollback":
            return self.rollback_behaviours, "default_rollback_behaviour"
        if applies_to in (None, "deploy"):
            return self.behaviours, "default_behaviour"
        raise ApiError(400, {"message": "applies_to must be deploy or rollback"})

    def behaviour_for(self, app_id, applies_to="deploy"):
        """The behaviour the app's next deployment gets (consuming one of `times`).
        applies_to="rollback": the revert deployment of a DELETE /v2/deployments/{id}; without
        a rollback behaviour it succeeds after --deploy-seconds."""
        with self.lock:
            table, default_attr = self._behaviour_tables(applies_to)
            b = table.get(app_id)
            if b is not None:
                if b.get("times") is not None:
                    b["times"] -= 1
                    if b["times"] <= 0:
                        del table[app_id]
                return {"mode": b.get("mode", "succeed"), "seconds": float(b.get("seconds", self.deploy_seconds)),
                        "message": b.get("message", "")}
            default = getattr(self, default_attr)
            if default:
                b = default
                return {"mode": b.get("mode", "succeed"), "seconds": float(b.get("seconds", self.deploy_seconds)),
                        "message": b.get("message", "")}
            return {"mode": "succeed", "seconds": self.deploy_seconds, "message": ""}

    def set_behaviour(self, app_id, mode="succeed", seconds=None, message="", times=None, applies_to="deploy"):
        """How the app's next deployments go (app_id None: every app's default).
        applies_to="deploy" (default): deployments of writes (PUT, PATCH, POST, version
        rollbacks, forced updates); "rollback": the revert deployments DELETE
        /v2/deployments/{id} starts."""
        if mode not in BEHAVIOUR_MODES:
            raise ApiError(400, {"message": "mode must be succeed, hang or fail"})
        spec = {"mode": mode, "seconds": self.deploy_seconds if seconds is None else float(seconds),
                "message": message or ""}
        if times is not None:
            spec["times"] = int(times)
        with self.lock:
            table, default_attr = self._behaviour_tables(applies_to)
            if app_id is None:
                setattr(self, default_attr, spec)
            else:
                table[normalize_id(app_id)] = spec
        return spec

    def set_rollback_behaviour(self, app_id, mode="succeed", seconds=None, message="", times=None):
        """set_behaviour(..., applies_to="rollback"): e.g. mode "hang" for a revert that never
        ends, or "succeed" with seconds=S for one that takes S seconds."""
        return self.set_behaviour(app_id, mode, seconds, message, times, applies_to="rollback")

    def clear_behaviours(self, app_id=None, applies_to=None):
        """Forget behaviours: of one app or all (defaults included); of one kind or both."""
        with self.lock:
            for kind in (("deploy", "rollback") if applies_to is None else (applies_to,)):
                table, default_attr = self._behaviour_tables(kind)
                if app_id:
                    table.pop(normalize_id(app_id), None)
                else:
                    table.clear()
                    setattr(self, default_attr, None)

    def add_fault(self, spec):
        with self.lock:
            f = _Fault(spec)
            self.faults.append(f)
            return f

    def get_requests(self):
        with self.lock:
            return copy.deepcopy(self.requests)

    def get_events(self):
        with self.lock:
            return copy.deepcopy(self.events)

    # ----------------------------------------------------------------- who did what
    def _current_request(self):
        return getattr(self._tls, "req", None)

    @staticmethod
    def _who(req):
        """Summary of the Marathon request that created / cancelled a deployment; a deployment
        begun otherwise (control API, the emulator itself) gets {"source": "emulator"}."""
        if req is None:
            return {"source": "emulator"}
        headers = {k.lower(): v for k, v in req["headers"].items()}
        return {"source": "request", "seq": req["seq"], "method": req["method"], "path": req["path"],
                "raw_path": req["raw_path"], "query": copy.deepcopy(req["query"]),
                "user_agent": headers.get("user-agent", ""), "client": req["client"],
                "force": bool_param(req["query"], "force", False)}

    def deployment_history(self, app_id=None):
        """Every deployment since the last reset, oldest first (running and ended), with who
        created it (`created_by`: request seq, method, path, query, user_agent) and, when a
        write ended it, `cancelled_by` (the same) and `replaced_by` / `rolled_back_by`."""
        with self.lock:
            return [d.history_json() for d in self.history.values() if app_id is None or d.app_id == app_id]

    def deployment_record(self, dep_id):
        with self.lock:
            d = self.history.get(dep_id) or self.audit_deployments.get(dep_id)
            return d.history_json() if d else None

    def cancellations(self, app_id=None):
        """Deployments a write ended (a forced update or DELETE /v2/deployments/{id}), oldest
        first: {deployment, app, created_by, cancelled_by, reason, replaced_by, rolled_back_by,
        time}."""
        out = []
        for d in self.deployment_history(app_id):
            if d["result"] != "cancelled":
                continue
            out.append({"deployment": d["id"], "app": d["app"], "created_by": d["created_by"],
                        "cancelled_by": d["cancelled_by"], "reason": d["reason"], "replaced_by": d["replaced_by"],
                        "rolled_back_by": d["rolled_back_by"], "time": d["ended_time"]})
        return out

    def audit(self):
        """(requests, deployments) since the emulator was made, never cleared: what the
        integration suite's write guard checks. Requests carry `status`, `deployment_created`,
        `deployments_cancelled` and `app_labels` (the app's labels when the write arrived)."""
        with self.lock:
            return (copy.deepcopy(self.audit_requests),
                    {k: d.history_json() for k, d in self.audit_deployments.items()})

    # ----------------------------------------------------------------- tasks
    @staticmethod
    def _instances(d):
        n = d.get("instances", 1)
        return n if isinstance(n, int) and n >= 0 else 1

    def _new_task(self, app, state):
        safe = app.id.strip("/").replace("/", "_")
        now = self.clock.now()
        n = random.randint(1, 3)
        nports = max(1, len(app.definition.get("portDefinitions") or []) or 1)
        return {
            "id": "%s.%s" % (safe, uuid.uuid4()),
            "appId": app.id,
            "slaveId": "%s-S%d" % (self.framework_id[:-5], n),
            "host": "agent-%d.emulator.local" % n,
            "state": state,
            "stagedAt": now,
            "startedAt": now if state == "TASK_RUNNING" else None,
            "version": app.version,
            "ports": [random.randint(31000, 32000) for _ in range(nports)],
            "servicePorts": [],
            "ipAddresses": [{"ipAddress": "127.0.0.%d" % (10 + n), "protocol": "IPv4"}],
            "healthCheckResults": [],
            "localVolumes": [],
        }

    def _status_event(self, task, status, message=""):
        self.publish({
            "slaveId": task["slaveId"], "taskId": task["id"], "taskStatus": status, "message": message,
            "appId": task["appId"], "host": task["host"], "ipAddresses": task["ipAddresses"],
            "ports": task["ports"], "version": task["version"], "eventType": "status_update_event",
        })
        cond = {"TASK_STAGING": "Staging", "TASK_RUNNING": "Running", "TASK_FAILED": "Failed",
                "TASK_KILLED": "Killed"}.get(status, status)
        self.publish({
            "instanceId": task["id"], "condition": cond, "runSpecId": task["appId"], "agentId": task["slaveId"],
            "host": task["host"], "runSpecVersion": task["version"], "eventType": "instance_changed_event",
        })

    # ----------------------------------------------------------------- events
    def publish(self, event):
        with self.lock:
            event.setdefault("timestamp", self.clock.now())
            self.events.append(event)
            for f in self.faults:
                f.arm_on(event)
            for s in list(self.streams):
                if s.wants(event["eventType"]):
                    if s.q.qsize() > 1024:
                        s.closed = True         # Marathon drops slow consumers
                        s.q.put(None)
                    else:
                        s.q.put(event)

    def cut_streams(self, refuse_seconds=0.0, refuse_status=503):
        with self.lock:
            n = len(self.streams)
            for s in self.streams:
                s.closed = True
                s.q.put(None)
            self.streams = []
            if refuse_seconds:
                self.refuse_streams_until = time.monotonic() + float(refuse_seconds)
                self.refuse_status = int(refuse_status)
        return n

    # ----------------------------------------------------------------- deployments
    def _running_for(self, app_id):
        return [d for d in self.deployments.values() if app_id in d.affected_apps and not d.done]

    @staticmethod
    def _plan_steps(app_id, before, after):
        if before is None and after is None:
            return [], "none"
        if before is None:
            return [[{"action": "StartApplication", "app": app_id}],
                    [{"action": "ScaleApplication", "app": app_id}]], "start"
        if after is None:
            return [[{"action": "StopApplication", "app": app_id}]], "stop"
        b = dict(before)
        a = dict(after)
        if a == b:
            return [], "none"
        b.pop("instances", None)
        a.pop("instances", None)
        if a == b:
            return [[{"action": "ScaleApplication", "app": app_id}]], "scale"
        return [[{"action": "RestartApplication", "app": app_id}]], "restart"

    def _cancel(self, dep, reason, result=None):
        """End a running deployment as Marathon does on force / DELETE: deployment_failed.
        Ended while serving a Marathon request: result "cancelled" (who did it is recorded);
        otherwise (fail mode, the control API) "failed"."""
        if dep.done:
            return
        dep.done = True
        self.deployments.pop(dep.id, None)
        req = self._current_request()
        dep.result = result or ("cancelled" if req is not None else "failed")
        dep.reason = reason
        dep.ended_wall = time.time()
        if dep.result == "cancelled":
            dep.cancelled_by = self._who(req)
            if req is not None:
                req["deployments_cancelled"].append(dep.id)
        app = self.apps.get(dep.app_id)
        if app is not None:
            for t in list(app.tasks):
                if t["id"] in dep.new_tasks and t["state"] != "TASK_RUNNING":
                    app.tasks.remove(t)
                    self._status_event(t, "TASK_KILLED")
        if 0 < dep.current_step <= len(dep.steps):
            self.publish({"plan": dep.plan_json(), "currentStep": {"actions": dep.steps[dep.current_step - 1]},
                          "eventType": "deployment_step_failure"})
        self.publish({"id": dep.id, "plan": dep.plan_json(), "reason": reason, "eventType": "deployment_failed"})
        self.log("deployment %s for %s cancelled: %s" % (dep.id, dep.app_id, reason))

    def _start_deployment(self, app_id, before_snap, after_snap, force, behaviour=None, apply=None,
                          applies_to="deploy"):
        """Create a deployment (checks lock and limits).  `apply` mutates state once accepted.
        Without `behaviour`, one with steps takes the app's (applies_to: deploy or rollback).
        Returns the Deployment.  Caller holds the lock."""
        before = before_snap["definition"] if before_snap else None
        after = after_snap["definition"] if after_snap else None
        steps, kind = self._plan_steps(app_id, before, after)
        version = self.clock.now()
        dep = Deployment(str(uuid.uuid4()), version, app_id, steps, kind, before_snap, after_snap,
                         behaviour or {"mode": "succeed", "seconds": self.deploy_seconds, "message": ""})
        running = self._running_for(app_id)
        if running and not force:
            # Marathon rejects the plan and still publishes a deployment_failed for it.
            self.publish({"id": dep.id, "plan": dep.plan_json(), "reason": LOCKED_MSG,
                          "eventType": "deployment_failed"})
            raise ApiError(409, {"message": LOCKED_MSG, "deployments": [{"id": d.id} for d in running]})
        if len([d for d in self.deployments.values() if not d.done]) - (len(running) if force else 0) \
                >= self.max_deployments:
            raise ApiError(403, {"message": TOO_MANY_MSG.format(n=self.max_deployments)})
        for d in running:
            self._cancel(d, CANCELLED_REASON)
            d.replaced_by = dep.id
        req = self._current_request()
        dep.created_by = self._who(req)
        dep.applies_to = applies_to
        dep.listed_from = dep.started + max(0.0, self.list_delay_seconds)
        self.history[dep.id] = dep
        self.audit_deployments[dep.id] = dep
        if req is not None:
            req["deployment_created"] = dep.id
        if apply:
            apply(dep)
        self.publish({"groupId": "/", "version": version, "eventType": "group_change_success"})
        if not steps:
            dep.done = True
            dep.result = "success"
            dep.ended_wall = time.time()
            self.publish({"id": dep.id, "plan": dep.plan_json(), "eventType": "deployment_success"})
            return dep
        if behaviour is None:          # consumed only by a deployment that has work to do
            dep.behaviour = self.behaviour_for(app_id, applies_to)
        self.deployments[dep.id] = dep
        self._begin_step(dep, 1)
        self.log("deployment %s for %s started (%s, %s)" % (dep.id, app_id, kind, dep.behaviour["mode"]))
        return dep

    def _begin_step(self, dep, n):
        dep.current_step = n
        dep.step_started = time.monotonic()
        step = dep.steps[n - 1]
        self.publish({"plan": dep.plan_json(), "currentStep": {"actions": [dict(a) for a in step]},
                      "eventType": "deployment_info"})
        action = step[0]["action"]
        app = self.apps.get(dep.app_id)
        if app is None or action in ("StartApplication", "StopApplication"):
            return
        want = self._instances(app.definition)
        if action == "RestartApplication":
            launch = want
        else:  # ScaleApplication
            launch = max(0, want - len(app.tasks))
        for _ in range(launch):
            t = self._new_task(app, "TASK_STAGING")
            app.tasks.append(t)
            dep.new_tasks.append(t["id"])
            self._status_event(t, "TASK_STAGING")
        if dep.behaviour["mode"] == "hang" and dep.behaviour.get("message"):
            dep.next_failure = time.monotonic() + max(dep.behaviour["seconds"], 0.05)

    def _fail_task(self, dep, app, message, relaunch):
        staged = [t for t in app.tasks if t["id"] in dep.new_tasks and t["state"] == "TASK_STAGING"]
        if not staged:
            t = self._new_task(app, "TASK_STAGING")
            app.tasks.append(t)
            dep.new_tasks.append(t["id"])
            staged = [t]
        t = staged[0]
        app.tasks.remove(t)
        self._status_event(t, "TASK_FAILED", message)
        app.last_task_failure = {
            "appId": app.id, "host": t["host"], "message": message, "state": "TASK_FAILED",
            "taskId": t["id"], "timestamp": self.clock.now(), "version": app.version, "slaveId": t["slaveId"],
        }
        if relaunch:
            n = self._new_task(app, "TASK_STAGING")
            app.tasks.append(n)
            dep.new_tasks.append(n["id"])
            self._status_event(n, "TASK_STAGING")

    def _finish_step(self, dep):
        step = dep.steps[dep.current_step - 1]
        action = step[0]["action"]
        app = self.apps.get(dep.app_id)
        if action == "StopApplication":
            old = self._stopped_tasks.pop(dep.id, [])
            for t in old:
                self._status_event(t, "TASK_KILLED")
            self.publish({"appId": dep.app_id, "eventType": "app_terminated_event"})
        elif app is not None and action in ("RestartApplication", "ScaleApplication"):
            want = self._instances(app.definition)
            for t in app.tasks:
                if t["id"] in dep.new_tasks and t["state"] == "TASK_STAGING":
                    t["state"] = "TASK_RUNNING"
                    t["startedAt"] = self.clock.now()
                    self._status_event(t, "TASK_RUNNING")
            if action == "RestartApplication":
                for t in list(app.tasks):
                    if t["id"] not in dep.new_tasks:
                        app.tasks.remove(t)
                        self._status_event(t, "TASK_KILLED")
            excess = len(app.tasks) - want
            for t in list(reversed(app.tasks))[:max(0, excess)]:
                app.tasks.remove(t)
                self._status_event(t, "TASK_KILLED")
        self.publish({"plan": dep.plan_json(), "currentStep": {"actions": [dict(a) for a in step]},
                      "eventType": "deployment_step_success"})
        if dep.current_step < len(dep.steps):
            self._begin_step(dep, dep.current_step + 1)
        else:
            dep.done = True
            dep.result = "success"
            dep.ended_wall = time.time()
            self.deployments.pop(dep.id, None)
            self.publish({"id": dep.id, "plan": dep.plan_json(), "eventType": "deployment_success"})
            self.log("deployment %s for %s succeeded" % (dep.id, dep.app_id))

    def finish_deployment(self, dep_id, result="success", reason=None):
        """Control-API helper: end a (hanging) deployment now."""
        with self.lock:
            dep = self.deployments.get(dep_id)
            if dep is None:
                return False
            if result == "success":
                while not dep.done:
                    self._finish_step(dep)
            else:
                self._cancel(dep, reason or dep.behaviour.get("message") or "deployment failed")
            return True

    def _engine(self):
        while not self._stopping.wait(0.02):
            now = time.monotonic()
            with self.lock:
                for dep in list(self.deployments.values()):
                    if dep.done:
                        continue
                    mode = dep.behaviour["mode"]
                    secs = dep.behaviour["seconds"]
                    per_step = secs / max(1, len(dep.steps))
                    app = self.apps.get(dep.app_id)
                    if mode == "succeed" or dep.kind == "stop":
                        if now - dep.step_started >= per_step:
                            self._finish_step(dep)
                    elif dep.current_step < len(dep.steps):
                        # hang / fail hold the last step (the one that runs tasks); earlier ones pass quickly
                        if now - dep.step_started >= min(per_step, 0.05):
                            self._finish_step(dep)
                    elif mode == "hang":
                        if dep.next_failure is not None and app is not None and now >= dep.next_failure:
                            self._fail_task(dep, app, dep.behaviour["message"], relaunch=True)
                            dep.next_failure = now + max(secs, 0.05)
                    elif mode == "fail":
                        if now - dep.started >= secs:
                            if app is not None:
                                self._fail_task(dep, app, dep.behaviour["message"] or "Task failed", relaunch=False)
                            self._cancel(dep, dep.behaviour["message"] or "Task failed")

    # ----------------------------------------------------------------- validation / merge
    @staticmethod
    def _check_labels(body):
        labels = body.get("labels")
        if labels is None:
            return
        if not isinstance(labels, dict):
            raise not_valid("/labels", "error.expected.jsobject")
        for k, v in labels.items():
            if not isinstance(v, str):
                raise not_valid("/labels(%s)" % k, "error.expected.jsstring")

    def _check_body(self, body):
        if not isinstance(body, dict):
            raise not_valid("/", "error.expected.jsobject")
        self._check_labels(body)
        if "instances" in body and body["instances"] is not None:
            n = body["instances"]
            if not isinstance(n, int) or isinstance(n, bool):
                raise not_valid("/instances", "error.expected.jsnumber")
            if n < 0:
                raise not_valid("/instances", "got %d, expected 0 or more" % n)
        if "cmd" in body and isinstance(body["cmd"], str) and len(body["cmd"]) <= 1:
            raise not_valid("/", "must not be an empty string")
        if body.get("version") is not None:
            others = [k for k, v in body.items() if k not in ("id", "version") and v is not None]
            if others:
                raise not_valid("/", "The 'version' field may only be combined with the 'id' field.")

    @staticmethod
    def _strip_get_only(body):
        return {k: v for k, v in body.items() if k not in GET_ONLY_FIELDS}

    # ----------------------------------------------------------------- API operations
    def app_json(self, app, tasks=False, failure=False):
        d = copy.deepcopy(app.definition)
        d["id"] = app.id
        d["version"] = app.version
        d["versionInfo"] = dict(app.version_info)
        has_hc = bool(app.definition.get("healthChecks"))
        running = [t for t in app.tasks if t["state"] == "TASK_RUNNING"]
        d["tasksStaged"] = len([t for t in app.tasks if t["state"] == "TASK_STAGING"])
        d["tasksRunning"] = len(running)
        d["tasksHealthy"] = len(running) if has_hc else 0
        d["tasksUnhealthy"] = 0
        now = time.monotonic()
        d["deployments"] = [{"id": dep.id} for dep in self._running_for(app.id) if dep.listed(now)]
        if tasks:
            d["tasks"] = [{k: v for k, v in t.items() if v is not None} for t in app.tasks]
        if failure and app.last_task_failure:
            d["lastTaskFailure"] = dict(app.last_task_failure)
        return d

    def list_apps(self, query):
        embed = set()
        for e in query.get("embed", []):
            embed.update(x.strip() for x in e.split(","))
        label = query.get("label", [None])[-1]
        id_f = query.get("id", [None])[-1]
        cmd_f = query.get("cmd", [None])[-1]
        selectors = None
        if label is not None:
            try:
                selectors = parse_label_selector(label)
            except SelectorError as ex:
                raise ApiError(422, {"message": "Can not parse label selector %s. Reason: %s" % (label, ex)})
        with self.lock:
            out = []
            for app in sorted(self.apps.values(), key=lambda a: a.id):
                if id_f is not None and id_f.lower() not in app.id.lower():
                    continue
                if cmd_f is not None:
                    c = app.definition.get("cmd")
                    if not isinstance(c, str) or cmd_f.lower() not in c.lower():
                        continue
                if selectors is not None and not selector_matches(selectors, app.definition.get("labels")):
                    continue
                tasks = "apps.tasks" in embed or "apps.failures" in embed
                failure = "apps.lastTaskFailure" in embed or "apps.failures" in embed
                d = self.app_json(app, tasks=tasks, failure=failure)
                if "apps.readiness" in embed:
                    d["readinessCheckResults"] = []
                out.append(d)
            return {"apps": out}

    def get_app(self, app_id):
        with self.lock:
            app = self.apps.get(app_id)
            if app is None:
                raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
            return {"app": self.app_json(app, tasks=True, failure=True)}

    def update_app(self, method, app_id, raw_body, query, client_ip, uri):
        """PUT / PATCH /v2/apps/{id}.  Returns (status, body, headers)."""
        legacy = self.marathon_version.startswith("1.3")
        force = bool_param(query, "force", False)
        partial = True if (method == "PATCH" or legacy) else bool_param(query, "partialUpdate", True)
        try:
            body = json.loads(raw_body.decode("utf-8") if raw_body else "")
        except (ValueError, UnicodeDecodeError) as ex:
            raise ApiError(400, {"message": "Invalid JSON", "details": str(ex)})
        self._check_body(body)
        body = self._strip_get_only(body)
        validate_id(app_id)
        with self.lock:
            app = self.apps.get(app_id)
            self._note_app_labels(app_id)
            if app is None and method == "PATCH":
                raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
            rollback = body.get("version")
            if rollback is not None:
                if app is None:
                    raise not_valid("/", "AppDefinition must either contain one of 'cmd' or 'args', "
                                         "and/or a 'container'.")
                hist = dict(app.versions)
                if rollback not in hist:
                    raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
                new_def = copy.deepcopy(hist[rollback])
            elif app is not None and partial:
                new_def = copy.deepcopy(app.definition)
                for k, v in body.items():
                    if k in ("id", "version") or v is None:
                        continue        # absent / null: the field keeps its value
                    new_def[k] = copy.deepcopy(v)
            else:
                new_def = {k: copy.deepcopy(v) for k, v in body.items() if k != "version"}
                new_def["id"] = app_id
                for k, v in APP_DEFAULTS.items():
                    new_def.setdefault(k, copy.deepcopy(v))
            new_def["id"] = app_id
            before = app.snapshot() if app else None

            def apply(dep):
                steps_kind = dep.kind
                if app is None:
                    created = App(app_id, new_def, dep.version)
                    self.apps[app_id] = created
                    dep.target = created.snapshot()
                    return
                if steps_kind == "none":
                    return
                if steps_kind == "scale":
                    app.version_info["lastScalingAt"] = dep.version
                else:
                    app.version_info = {"lastScalingAt": dep.version, "lastConfigChangeAt": dep.version}
                app.definition = new_def
                app.version = dep.version
                app.versions.append((dep.version, copy.deepcopy(new_def)))
                dep.target = app.snapshot()

            after = {"definition": new_def}
            dep = self._start_deployment(app_id, before, after, force, apply=apply)
            posted = self.apps.get(app_id)
            if posted is not None:
                posted_def = copy.deepcopy(posted.definition)
                posted_def["version"] = posted.version
                self.publish({"clientIp": client_ip, "uri": uri, "appDefinition": posted_def,
                              "eventType": "api_post_event"})
        headers = {"Marathon-Deployment-Id": dep.id}
        status = 200
        if app is None:
            status = 201
            headers["Location"] = "%s%s" % (self.url, app_id)
        return status, {"version": dep.version, "deploymentId": dep.id}, headers

    def create_app_post(self, raw_body, query, client_ip, uri):
        try:
            body = json.loads(raw_body.decode("utf-8") if raw_body else "")
        except (ValueError, UnicodeDecodeError) as ex:
            raise ApiError(400, {"message": "Invalid JSON", "details": str(ex)})
        self._check_body(body)
        if body.get("version") is not None:
            body.pop("version")
        body = self._strip_get_only(body)
        if not isinstance(body.get("id"), str):
            raise not_valid("/id", "error.path.missing")
        app_id = normalize_id(body["id"])
        validate_id(app_id)
        with self.lock:
            if app_id in self.apps:
                raise ApiError(409, {"message": "An app with id [%s] already exists." % app_id})
            status, _, headers = self.update_app("PUT", app_id, jdump(body), {"force": query.get("force", [])},
                                                 client_ip, uri)
            out = self.app_json(self.apps[app_id])
        return 201, out, headers

    def delete_app(self, app_id, query):
        force = bool_param(query, "force", True)   # DELETE /v2/apps/{id} defaults force=true
        with self.lock:
            app = self.apps.get(app_id)
            if app is None:
                raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
            self._note_app_labels(app_id)

            def apply(dep):
                del self.apps[app_id]
                self._stopped_tasks[dep.id] = list(app.tasks)

            dep = self._start_deployment(app_id, app.snapshot(), None, force,
                                         behaviour={"mode": "succeed", "seconds": self.deploy_seconds, "message": ""},
                                         apply=apply)
        return 200, {"version": dep.version, "deploymentId": dep.id}, {"Marathon-Deployment-Id": dep.id}

    def delete_deployment(self, dep_id, query):
        force = bool_param(query, "force", False)
        with self.lock:
            dep = self.deployments.get(dep_id)
            if dep is None or dep.done:
                raise ApiError(404, {"message": "DeploymentPlan %s does not exist" % dep_id})
            self._note_app_labels(dep.app_id)
            self._cancel(dep, CANCELLED_REASON)
            if force:
                return 202, None, {}
            app_id = dep.app_id
            app = self.apps.get(app_id)
            original = dep.original
            before = app.snapshot() if app else None

            def apply(rb):
                if original is None:
                    if app is not None:
                        del self.apps[app_id]
                        self._stopped_tasks[rb.id] = list(app.tasks)
                    return
                if app is None:
                    restored = App(app_id, copy.deepcopy(original["definition"]), original["version"])
                    restored.version_info = dict(original["versionInfo"])
                    self.apps[app_id] = restored
                    return
                app.definition = copy.deepcopy(original["definition"])
                app.version = original["version"]
                app.version_info = dict(original["versionInfo"])

            after = copy.deepcopy(original) if original else None
            # The revert is a deployment like any other: it follows the app's rollback
            # behaviour (set_rollback_behaviour), by default it succeeds after --deploy-seconds.
            rb = self._start_deployment(app_id, before, after, True, apply=apply, applies_to="rollback")
            rb.rollback_of = dep.id
            dep.rolled_back_by = rb.id
        return 200, {"deploymentId": rb.id, "version": rb.version}, {"Marathon-Deployment-Id": rb.id}

    def _note_app_labels(self, app_id):
        """Records on the request being served the labels the app had when it arrived."""
        req = self._current_request()
        app = self.apps.get(app_id)
        if req is not None and app is not None:
            req["app_labels"] = copy.deepcopy(app.definition.get("labels") or {})

    def list_deployments(self, include_unlisted=False):
        """GET /v2/deployments: running deployments, those still within list_delay_seconds of
        their creation left out (include_unlisted=True: all running ones)."""
        now = time.monotonic()
        with self.lock:
            return [d.api_json() for d in sorted(self.deployments.values(), key=lambda d: d.version)
                    if not d.done and (include_unlisted or d.listed(now))]

    def info(self):
        try:
            with open(os.path.join(FIXTURES, "info.json"), encoding="utf-8") as f:
                info = json.load(f)
        except (OSError, ValueError):
            info = {"name": "marathon", "marathon_config": {}, "zookeeper_config": {}, "http_config": {}}
        leader = "%s:%d" % (self.host, self.port)
        info["version"] = "1.3.13" if self.marathon_version.startswith("1.3") else "1.10.17"
        info["leader"] = leader
        info["elected"] = True
        info["frameworkId"] = self.framework_id
        info.setdefault("marathon_config", {})["max_running_deployments"] = self.max_deployments
        info.setdefault("http_config", {})["http_port"] = self.port
        return info

    # ----------------------------------------------------------------- control API dump
    def app_state(self, app):
        return {
            "id": app.id, "definition": copy.deepcopy(app.definition), "version": app.version,
            "versionInfo": dict(app.version_info),
            "versions": [{"version": v, "app": copy.deepcopy(d)} for v, d in app.versions],
            "tasks": copy.deepcopy(app.tasks), "lastTaskFailure": copy.deepcopy(app.last_task_failure),
        }



# --------------------------------------------------------------------------- HTTP layer

class _Handler(httpbase.Handler):
    server_version = "Jetty(9.4.z)"
    emu: MarathonEmulator = None

    def _send(self, status, body=None, headers=None, content_type="application/json"):
        if isinstance(body, (dict, list)):
            data = jdump(body)
        elif isinstance(body, str):
            data = body.encode("utf-8")
        elif body is None:
            data = b""
        else:
            data = body
        rec = getattr(self, "_rec", None)
        if rec is not None:
            with self.emu.lock:
                if rec["status"] is None:
                    rec["status"] = status
        self.send_response(status)
        hdrs = dict(headers or {})
        if data and not any(k.lower() == "content-type" for k in hdrs):
            hdrs["Content-Type"] = content_type
        for k, v in hdrs.items():
            self.send_header(k, v)
        if status not in (204, 304):
            self.send_header("Content-Length", str(len(data)))
        if self.emu.server is not None and not self.path.startswith("/_emu"):
            self.send_header("X-Marathon-Leader", "http://%s:%d" % (self.emu.host, self.emu.port))
        self.end_headers()
        if data and self.command != "HEAD":
            self.wfile.write(data)
        self.wfile.flush()

    def _json(self, status, body, headers=None):
        self._send(status, body, headers, "application/json")

    def do_GET(self):
        self._dispatch("GET")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_PATCH(self):
        self._dispatch("PATCH")

    def do_POST(self):
        self._dispatch("POST")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def do_HEAD(self):
        self._dispatch("HEAD")

    # ---- dispatch
    def _dispatch(self, method):
        emu = self.emu
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        body = self._read_body()
        self._rec = None
        if path.startswith("/_emu"):
            try:
                self._control(method, path, query, body)
            except ApiError as ex:
                self._json(ex.status, ex.body, ex.headers)
            except Exception as ex:  # pragma: no cover - defensive
                self._json(500, {"message": "emulator control error: %r" % ex})
            return
        with emu.lock:
            emu.req_seq += 1
            rec = {
                "seq": emu.req_seq, "time": time.time(), "method": method, "path": path,
                "raw_path": self.path, "query": query, "raw_query": split.query,
                "headers": {k: v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"), "client": self.client_address[0],
                # Filled in while it is served: the answer's status (None: no answer, e.g. a
                # fault closed the connection), the deployment it created, those it ended,
                # the app's labels when a write arrived, whether a fault applied.
                "status": None, "deployment_created": None, "deployments_cancelled": [],
                "app_labels": None, "fault": None,
            }
            emu.requests.append(rec)
            emu.audit_requests.append(rec)
            self._rec = rec
            fault = None
            ua = self.headers.get("User-Agent") or ""
            for f in emu.faults:
                if f.matches(method, path, ua):
                    f.count -= 1
                    f.hits.append(rec["seq"])
                    rec["fault"] = {k: v for k, v in f.spec.items() if k != "body"}
                    fault = f
                    break
        if fault is not None:
            if fault.delay:
                time.sleep(fault.delay)
            if fault.close:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if fault.status is not None:
                b = fault.body
                ctype = fault.spec.get("content_type") or (
                    "application/json" if isinstance(b, (dict, list)) else "text/plain")
                self._send(int(fault.status), b if b is not None else "", fault.headers, ctype)
                return
        # authentication (applies to every Marathon path, /v2/events and /ping included)
        if not self._authorized(path):
            return
        if emu.redirect_to and path.startswith("/v2/"):
            loc = emu.redirect_to.rstrip("/") + split.path + ("?" + split.query if split.query else "")
            self._send(307, b"", {"Location": loc})
            return
        emu._tls.req = rec
        try:
            self._route(method, path, query, body)
        except ApiError as ex:
            self._json(ex.status, ex.body, ex.headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        except Exception as ex:  # pragma: no cover - defensive
            emu.log("internal error: %r" % ex)
            self._json(500, {"message": "emulator internal error: %r" % ex})
        finally:
            emu._tls.req = None

    def _authorized(self, path):
        emu = self.emu
        if not emu.http_credentials and not emu.token:
            return True
        auth = self.headers.get("Authorization") or ""
        if emu.http_credentials and auth[:6].lower() == "basic ":
            try:
                if base64.b64decode(auth[6:].strip()).decode("utf-8") == emu.http_credentials:
                    return True
            except (ValueError, UnicodeDecodeError):
                pass
        if emu.token and auth.startswith("token="):
            if auth[len("token="):] == emu.token:
                return True
            self._json(403, {"message": "Not Authorized to perform this action!"})
            return False
        if emu.http_credentials:
            self._send(401, HTML_401.format(path=path),
                       {"WWW-Authenticate": 'basic realm="Mesosphere"', "Cache-Control": "must-revalidate,no-cache,no-store"},
                       "text/html;charset=iso-8859-1")
        else:
            self._json(401, {"message": "Invalid username or password."}, {"WWW-Authenticate": "acsjwt"})
        return False

    def _route(self, method, path, query, body):
        emu = self.emu
        legacy = emu.marathon_version.startswith("1.3")
        if path == "/ping" and method in ("GET", "HEAD"):
            self._send(200, "pong\n", {"Cache-Control": "must-revalidate,no-cache,no-store"}, "text/plain;charset=utf-8")
            return
        if path == "/v2/info" and method == "GET":
            self._json(200, emu.info())
            return
        if path == "/v2/leader" and method == "GET":
            self._json(200, {"leader": "%s:%d" % (emu.host, emu.port)})
            return
        if path == "/v2/events":
            if method != "GET":
                raise ApiError(405, {"message": "HTTP 405 Method Not Allowed"})
            self._events(query)
            return
        if path == "/v2/deployments" and method == "GET":
            self._json(200, emu.list_deployments())
            return
        if path.startswith("/v2/deployments/"):
            dep_id = path[len("/v2/deployments/"):]
            if method == "DELETE":
                status, b, h = emu.delete_deployment(dep_id, query)
                self._json(status, b, h)
                return
            raise ApiError(405, {"message": "HTTP 405 Method Not Allowed"}, {"Allow": "DELETE,OPTIONS"})
        if path in ("/v2/apps", "/v2/apps/"):
            if method == "GET":
                self._json(200, emu.list_apps(query))
                return
            if method == "POST":
                status, b, h = emu.create_app_post(body, query, self.client_address[0], self.path)
                self._json(status, b, h)
                return
            raise ApiError(405, {"message": "HTTP 405 Method Not Allowed"})
        if path.startswith("/v2/apps/"):
            rest = path[len("/v2/apps/"):]
            m = re.match(r"^(.*?)/versions(?:/(.+))?$", rest)
            if m and method == "GET":
                app_id = normalize_id(m.group(1))
                with emu.lock:
                    app = emu.apps.get(app_id)
                    if app is None:
                        raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
                    if m.group(2) is None:
                        self._json(200, {"versions": [v for v, _ in reversed(app.versions)]})
                        return
                    hist = dict(app.versions)
                    if m.group(2) not in hist:
                        raise ApiError(404, {"message": "App '%s' does not exist in version %s" % (app_id, m.group(2))})
                    d = copy.deepcopy(hist[m.group(2)])
                    d["version"] = m.group(2)
                self._json(200, d)
                return
            m = re.match(r"^(.*?)/tasks$", rest)
            if m and method == "GET":
                app_id = normalize_id(m.group(1))
                with emu.lock:
                    app = emu.apps.get(app_id)
                    if app is None:
                        raise ApiError(404, {"message": "App '%s' does not exist" % app_id})
                    self._json(200, {"tasks": [{k: v for k, v in t.items() if v is not None} for t in app.tasks]})
                return
            app_id = normalize_id(rest)
            if method == "GET":
                self._json(200, emu.get_app(app_id))
                return
            if method == "PUT" or (method == "PATCH" and not legacy):
                status, b, h = emu.update_app(method, app_id, body, query, self.client_address[0], self.path)
                self._json(status, b, h)
                return
            if method == "DELETE":
                status, b, h = emu.delete_app(app_id, query)
                self._json(status, b, h)
                return
            raise ApiError(405, {"message": "HTTP 405 Method Not Allowed"}, {"Allow": "DELETE,GET,OPTIONS,PUT"})
        raise ApiError(404, {"message": "URI not found: %s" % path})

    # ---- server-sent events (Jetty EventSourceServlet behaviour)
    def _events(self, query):
        emu = self.emu
        accept = self.headers.get_all("Accept") or []
        if not any(a.strip() == "text/event-stream" for a in accept):
            self._send(405, HTML_405.format(path="/v2/events"), {"Allow": "GET"}, "text/html;charset=iso-8859-1")
            return
        with emu.lock:
            refused = time.monotonic() < emu.refuse_streams_until
            status = emu.refuse_status
        if refused:
            if status == 0:
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            self._json(status, {"message": "event stream unavailable (emulator refusing streams)"})
            return
        filters = list(query.get("event_type", []))    # getParameterValues: repeated, no comma split
        remote = self.client_address[0]
        stream = _Stream(filters, remote)
        self.close_connection = True
        # Status line and headers written by hand: no Content-Length, no chunking, Connection: close.
        head = ("HTTP/1.1 200 OK\r\n"
                "Date: %s\r\n"
                "Content-Type: text/event-stream;charset=UTF-8\r\n"
                "Connection: close\r\n"
                "Cache-Control: no-cache\r\n"
                "X-Marathon-Leader: http://%s:%d\r\n"
                "Server: Jetty(9.4.z)\r\n\r\n") % (self.date_time_string(), emu.host, emu.port)
        with emu.lock:
            if self._rec is not None:
                self._rec["status"] = 200
        try:
            self.wfile.write(head.encode("ascii"))
            self.wfile.flush()
        except OSError:
            return
        with emu.lock:
            emu.streams.append(stream)
        emu.log("event stream attached from %s filters=%s" % (remote, filters or "all"))
        emu.publish({"remoteAddress": remote, "eventType": "event_stream_attached"})
        hb = emu.heartbeat_seconds
        next_hb = time.monotonic() + hb
        try:
            while not stream.closed and not emu._stopping.is_set():
                timeout = max(0.0, next_hb - time.monotonic())
                try:
                    ev = stream.q.get(timeout=min(timeout, 0.25))
                except queue.Empty:
                    if time.monotonic() >= next_hb:
                        self.wfile.write(b"\r\n")
                        self.wfile.flush()
                        next_hb = time.monotonic() + emu.heartbeat_seconds
                    continue
                if ev is None:
                    break
                frame = "event: %s\r\ndata: %s\r\n\r\n" % (ev["eventType"], json.dumps(ev, separators=(",", ":")))
                self.wfile.write(frame.encode("utf-8"))
                self.wfile.flush()
        except OSError:
            pass
        finally:
            with emu.lock:
                if stream in emu.streams:
                    emu.streams.remove(stream)
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            emu.log("event stream from %s closed" % remote)

    # ---- control API
    def _control(self, method, path, query, raw):
        emu = self.emu
        body = None
        if raw:
            try:
                body = json.loads(raw.decode("utf-8"))
            except ValueError:
                raise ApiError(400, {"message": "control API: invalid JSON"})
        parts = [p for p in path.split("/") if p][1:]   # drop "_emu"
        head = parts[0] if parts else ""
        rest = "/".join(parts[1:])
        if head == "health":
            self._json(200, {"ok": True})
        elif head == "reset" and method == "POST":
            emu.reset()
            self._json(200, {"ok": True})
        elif head == "apps":
            if method == "GET" and not rest:
                with emu.lock:
                    self._json(200, {"apps": [emu.app_state(a) for a in sorted(emu.apps.values(), key=lambda a: a.id)]})
            elif method == "GET":
                with emu.lock:
                    app = emu.apps.get(normalize_id(rest))
                    if app is None:
                        raise ApiError(404, {"message": "no app %s" % normalize_id(rest)})
                    self._json(200, emu.app_state(app))
            elif method in ("POST", "PUT"):
                items = body if isinstance(body, list) else [body]
                created = []
                for item in items:
                    if isinstance(item, dict) and "fixture" in item:
                        item = load_fixture(item["fixture"])
                    if rest and isinstance(item, dict):
                        item = dict(item, id=normalize_id(rest))
                    created.append(emu.put_app_direct(item).id)
                self._json(200, {"ids": created})
            elif method == "DELETE":
                with emu.lock:
                    if rest:
                        emu.apps.pop(normalize_id(rest), None)
                    else:
                        emu.apps.clear()
                self._json(200, {"ok": True})
            else:
                raise ApiError(405, {"message": "method"})
        elif head == "behaviour":
            app_id = normalize_id(rest) if rest else None
            if method == "GET":
                with emu.lock:
                    self._json(200, {"default": emu.default_behaviour, "apps": copy.deepcopy(emu.behaviours),
                                     "rollback_default": emu.default_rollback_behaviour,
                                     "rollback_apps": copy.deepcopy(emu.rollback_behaviours)})
            elif method in ("PUT", "POST"):
                b = body or {}
                spec = emu.set_behaviour(app_id, b.get("mode", "succeed"), b.get("seconds"), b.get("message", ""),
                                         b.get("times"), applies_to=b.get("applies_to", "deploy"))
                self._json(200, spec)
            elif method == "DELETE":
                emu.clear_behaviours(app_id, query.get("applies_to", [None])[-1])
                self._json(200, {"ok": True})
        elif head == "faults":
            if method in ("POST", "PUT"):
                specs = body if isinstance(body, list) else [body or {}]
                for s in specs:
                    emu.add_fault(s)
                self._json(200, {"ok": True, "added": len(specs)})
            elif method == "GET":
                with emu.lock:
                    self._json(200, {"faults": [dict(f.spec, remaining=f.count) for f in emu.faults if f.count > 0]})
            elif method == "DELETE":
                with emu.lock:
                    emu.faults.clear()
                self._json(200, {"ok": True})
        elif head == "requests":
            if method == "DELETE":
                with emu.lock:
                    emu.requests.clear()
                self._json(200, {"ok": True})
            else:
                reqs = emu.get_requests()
                m = query.get("method", [None])[-1]
                p = query.get("path", [None])[-1]
                since = int(query.get("since", ["0"])[-1] or 0)
                reqs = [r for r in reqs if r["seq"] > since and (not m or r["method"] == m.upper())
                        and (not p or (r["path"].startswith(p[:-1]) if p.endswith("*") else r["path"] == p))]
                self._json(200, {"requests": reqs})
        elif head == "events":
            if method == "DELETE":
                with emu.lock:
                    emu.events.clear()
                self._json(200, {"ok": True})
            else:
                evs = emu.get_events()
                t = query.get("type", [None])[-1]
                if t:
                    evs = [e for e in evs if e["eventType"] == t]
                self._json(200, {"events": evs})
        elif head == "streams":
            if method == "GET":
                with emu.lock:
                    self._json(200, {"open": len(emu.streams)})
            elif method == "POST" and rest == "cut":
                b = body or {}
                n = emu.cut_streams(float(b.get("refuse_seconds", 0) or 0), int(b.get("refuse_status", 503)))
                self._json(200, {"cut": n})
            else:
                raise ApiError(404, {"message": "unknown control path"})
        elif head == "cancellations" and method == "GET":
            self._json(200, {"cancellations": emu.cancellations(query.get("app", [None])[-1])})
        elif head == "deployments":
            if method == "GET" and rest == "history":
                self._json(200, {"deployments": emu.deployment_history(query.get("app", [None])[-1])})
            elif method == "DELETE" and rest == "history":
                with emu.lock:
                    emu.history.clear()
                self._json(200, {"ok": True})
            elif method == "GET" and not rest:
                with emu.lock:
                    out = []
                    now = time.monotonic()
                    for d in emu.deployments.values():
                        j = d.api_json()
                        j["behaviour"] = dict(d.behaviour)
                        j["kind"] = d.kind
                        j["listed"] = d.listed(now)
                        j["applies_to"] = d.applies_to
                        j["created_by"] = copy.deepcopy(d.created_by)
                        j["rollback_of"] = d.rollback_of
                        out.append(j)
                self._json(200, {"deployments": out})
            elif method == "POST" and rest.endswith("/finish"):
                dep_id = rest[:-len("/finish")]
                b = body or {}
                ok = emu.finish_deployment(dep_id, b.get("result", "success"), b.get("reason"))
                self._json(200 if ok else 404, {"ok": ok})
            else:
                raise ApiError(404, {"message": "unknown control path"})
        elif head == "config":
            if method in ("PUT", "POST"):
                b = body or {}
                with emu.lock:
                    for key in CONFIG_KEYS:
                        if key in b:
                            val = b[key]
                            if key == "max_deployments":
                                val = int(val)
                            elif key in ("deploy_seconds", "heartbeat_seconds", "list_delay_seconds"):
                                val = float(val)
                            elif key == "marathon_version":
                                val = str(val)
                            setattr(emu, key, val)
            with emu.lock:
                self._json(200, {k: getattr(emu, k) for k in CONFIG_KEYS})
        else:
            raise ApiError(404, {"message": "unknown control path %s" % path})


# --------------------------------------------------------------------------- loading apps

def load_fixture(name):
    for base in (FIXTURES, os.path.join(FIXTURES, "real_apps")):
        p = os.path.join(base, name)
        if os.path.isfile(p):
            with open(p, encoding="utf-8") as f:
                return json.load(f)
    raise ApiError(404, {"message": "no fixture %s" % name})


def _apps_from_json(doc):
    """Accepts an app, a list of apps, {"apps":[...]} or a group export {"apps","groups"}."""
    out = []
    if isinstance(doc, list):
        for d in doc:
            out.extend(_apps_from_json(d))
    elif isinstance(doc, dict):
        if "apps" in doc or "groups" in doc:
            for a in doc.get("apps") or []:
                out.extend(_apps_from_json(a))
            for g in doc.get("groups") or []:
                out.extend(_apps_from_json(g))
        elif "app" in doc and isinstance(doc["app"], dict):
            out.append(doc["app"])
        elif "id" in doc:
            out.append(doc)
    return out


def load_apps(paths):
    apps = []
    for p in paths:
        files = []
        if os.path.isdir(p):
            files = sorted(os.path.join(p, f) for f in os.listdir(p) if f.endswith(".json"))
        else:
            files = [p]
        for fp in files:
            with open(fp, encoding="utf-8") as f:
                apps.extend(_apps_from_json(json.load(f)))
    return apps


# --------------------------------------------------------------------------- main

def main(argv=None):
    ap = argparse.ArgumentParser(description="Stateful Marathon emulator (see tests/emulator/README.md)")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0 = ephemeral)")
    ap.add_argument("--port-file", help="write the bound port here once listening")
    ap.add_argument("--apps", action="append", default=[], help="app JSON file or directory (repeatable)")
    ap.add_argument("--http-credentials", help="user:pass (Basic auth on every path)")
    ap.add_argument("--token", help="require 'Authorization: token=TOKEN' (DC/OS style)")
    ap.add_argument("--marathon-version", default="1.10", choices=["1.10", "1.3"])
    ap.add_argument("--deploy-seconds", type=float, default=1.0)
    ap.add_argument("--heartbeat-seconds", type=float, default=10.0)
    ap.add_argument("--max-deployments", type=int, default=100)
    ap.add_argument("--list-delay-seconds", type=float, default=0.0,
                    help="a new deployment is absent from GET /v2/deployments and the app's deployments this long")
    ap.add_argument("--redirect-to", help="answer 307 to this leader URL for every /v2/* request")
    ap.add_argument("--quiet", action="store_true", help="do not log requests to stderr")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    emu = MarathonEmulator(host=host or "127.0.0.1", port=int(port), apps=load_apps(args.apps),
                           http_credentials=args.http_credentials, token=args.token,
                           marathon_version=args.marathon_version, deploy_seconds=args.deploy_seconds,
                           heartbeat_seconds=args.heartbeat_seconds, max_deployments=args.max_deployments,
                           redirect_to=args.redirect_to, quiet=args.quiet,
                           list_delay_seconds=args.list_delay_seconds)
    emu.start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % emu.port)
        os.replace(tmp, args.port_file)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
