"""Shared helpers for the integration tests: start the real autodeployd binary on an ephemeral
loopback port, talk to it over HTTP, read its JSON log, and stop it.

Every test starts what it needs and stops it; nothing listens anywhere but 127.0.0.1.

Every test also runs under the write guard (autouse fixture `autodeployd_write_guard`, below):
whatever autodeployd sent to any Marathon emulator the test made must keep the rules every
deployer sharing a cluster must keep (no `instances`, no `version` rollback, DELETE only its own
deployments, `force` only when the operator asked). A test that forces on purpose without the
label or --force is marked `@pytest.mark.allow_force`.
"""
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUTODEPLOYD = os.environ.get("AUTODEPLOYD", os.path.join(ROOT, "bin", "autodeployd"))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")

sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))
import marathon as marathon_emulator  # noqa: E402  (the module; deploy_helpers' fixture is `marathon`)


def fixture_bytes(*parts):
    with open(os.path.join(FIXTURES, *parts), "rb") as f:
        return f.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# What a predicate talking HTTP meets while a server starts, restarts or drops a connection:
# "not yet" for wait_for, never a failure by itself (http.client.RemoteDisconnected is a
# ConnectionResetError, socket.timeout a TimeoutError; both listed for clarity).
TRANSIENT_ERRORS = (ConnectionError, ConnectionResetError, ConnectionRefusedError,
                    http.client.RemoteDisconnected, urllib.error.URLError, socket.timeout, TimeoutError)


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    """Polls pred until it returns something true. A transient connection error raised by pred
    counts as "not yet"; when the time is up, the last one is named in the message (and
    chained)."""
    deadline = time.monotonic() + timeout
    last_error = None
    while True:
        try:
            v = pred()
        except TRANSIENT_ERRORS as ex:
            v, last_error = None, ex
        else:
            if v:
                return v
        if time.monotonic() > deadline:
            msg = f"timed out after {timeout}s waiting for {what}"
            if last_error is not None:
                raise AssertionError(f"{msg}; last transient error: {last_error!r}") from last_error
            raise AssertionError(msg)
        time.sleep(interval)


# Every Daemon started in this process (the write guard reads their --force).
DAEMONS = []


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)


class Daemon:
    """A running autodeployd. args are extra flags; the listen address is always loopback:0."""

    def __init__(self, tmp_path, args=(), env=None):
        self.log_path = os.path.join(str(tmp_path), "autodeployd.log")
        self.log_file = open(self.log_path, "wb")
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODEPLOY_")}
        full_env.update(env or {})
        # AUTODEPLOYD_WRAPPER runs the daemon under a tool (valgrind) without changing tests.
        wrapper = os.environ.get("AUTODEPLOYD_WRAPPER", "").split()
        cmd = [*wrapper, AUTODEPLOYD, "--listen", "127.0.0.1:0", *args]
        self.args = list(args)
        self.env = dict(env or {})
        self.config = {}
        DAEMONS.append(self)
        self.proc = subprocess.Popen(cmd, stdout=self.log_file, stderr=self.log_file,
                                     stdin=subprocess.DEVNULL, env=full_env)
        started = wait_for(self._started, timeout=30 if wrapper else 10,
                           what="autodeployd start-up line")
        self.port = int(started["listen"].rsplit(":", 1)[1])
        self.config = json.loads(started["config"])

    def _started(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"autodeployd exited {self.proc.returncode}: {self.log_text()}")
        for rec in self.logs():
            if rec.get("msg") == "autodeployd started":
                return rec
        return None

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def logs(self):
        out = []
        for line in self.log_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"raw": line})
        return out

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return Response(r.status, dict(r.getheaders()), r.read())
        except ConnectionError:
            # A dead daemon is not a transient error for wait_for: say so at once.
            if self.proc.poll() is not None:
                raise AssertionError(f"autodeployd exited {self.proc.returncode}; log tail:\n"
                                     + self.log_text()[-2000:]) from None
            raise
        finally:
            conn.close()

    def post_event(self, body, token=None, content_type="application/vnd.docker.distribution.events.v1+json"):
        headers = {"Content-Type": content_type}
        if token:
            headers["Authorization"] = "Bearer " + token
        return self.request("POST", "/v1/webhooks/registry", body=body, headers=headers)

    def pushes(self):
        return self.request("GET", "/v1/pushes").json()["pushes"]

    def metrics(self):
        text = self.request("GET", "/metrics").body.decode()
        values = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                name, value = line.rsplit(" ", 1)
                values[name] = float(value)
        return values

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("autodeployd did not stop on " + str(sig))
        self.log_file.close()
        return self.proc.returncode


@pytest.fixture
def daemon(tmp_path):
    """Factory: daemon(args=[...], env={...}) starts autodeployd; all are stopped afterwards."""
    started = []

    def start(args=(), env=None):
        workdir = tmp_path / f"autodeployd-{len(started)}"
        workdir.mkdir()
        d = Daemon(workdir, args, env)
        started.append(d)
        return d

    yield start
    problems = []
    for d in started:
        d.stop()
        text = d.log_text()
        # Under `make test SANITIZE=1` a sanitizer report anywhere fails the test that caused it.
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:",
                       "WARNING: ThreadSanitizer"):
            if marker in text:
                problems.append(f"{marker} in {d.log_path}")
        # Under valgrind (AUTODEPLOYD_WRAPPER): any memcheck error or definite leak.
        if re.search(r"==\d+== (Invalid|Conditional jump|Syscall param|Mismatched|.*definitely lost)", text):
            problems.append(f"valgrind memcheck error in {d.log_path}")
        if d.proc.returncode == 99:
            problems.append(f"valgrind exit status 99 in {d.log_path}")
    assert not problems, problems


def run_cli(*args, env=None, timeout=10):
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODEPLOY_")}
    full_env.update(env or {})
    return subprocess.run([AUTODEPLOYD, *args], capture_output=True, text=True, env=full_env,
                          timeout=timeout, stdin=subprocess.DEVNULL)


@pytest.fixture
def slack():
    """A Slack sink (tests/emulator/slack_sink.py) on an ephemeral port."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))
    from slack_sink import SlackSink
    sink = SlackSink().start()
    yield sink
    sink.stop()


# ---------------------------------------------------------------- the write guard

AUTODEPLOYD_UA = "autodeployd/"


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "allow_force: the test makes autodeployd send ?force=true on purpose (without the "
        "autodeploy.force label or --force); the write guard lets such forced writes pass")


def _truthy(v):
    return isinstance(v, str) and v.strip().lower() in ("true", "yes", "1")


def _daemon_forces(d):
    args = [a for a in d.args if isinstance(a, str)]
    if "--force" in args or any(a.startswith("--force=") and _truthy(a.split("=", 1)[1]) for a in args):
        return True
    return d.config.get("force") is True or _truthy(d.env.get("AUTODEPLOY_FORCE"))


def _ua(req):
    for k, v in req["headers"].items():
        if k.lower() == "user-agent":
            return v
    return ""


def _creator(dep):
    c = (dep or {}).get("created_by") or {}
    if c.get("source") != "request":
        return "the emulator (control API)"
    return "%r (%s %s, request #%s)" % (c.get("user_agent"), c.get("method"), c.get("raw_path"), c.get("seq"))


def _by_autodeployd(dep):
    c = (dep or {}).get("created_by") or {}
    return c.get("source") == "request" and (c.get("user_agent") or "").startswith(AUTODEPLOYD_UA)


def write_guard_violations(emu, daemon_forced=False, allow_force=False):
    """The rules autodeployd must keep with any Marathon it shares (docs/marathon-api.md,
    "Sharing the cluster"), checked on everything the emulator ever received from it:
    1. no write (PUT/PATCH/POST on /v2/apps...) carries `instances` (autoscalers own it);
    2. no write carries `version` (a version rollback restores every field of that version,
       `instances` included, undoing every other writer's change since);
    3. it DELETEs only deployments it created itself, never with force, and never an app;
    4. `?force=true` only when the operator asked: the app's label autodeploy.force=true when
       the request arrived, the daemon's --force, or the test's allow_force marker; a forced
       write that cancelled a deployment someone else created is named as such.
    Returns a list of messages (one per broken rule and request)."""
    reqs, deps = emu.audit()
    out = []
    for r in reqs:
        ua = _ua(r)
        if not ua.startswith(AUTODEPLOYD_UA):
            continue
        method, path = r["method"], r["path"]
        where = "%s %s (request #%d, answered %s)" % (method, r["raw_path"], r["seq"], r["status"])
        forced = marathon_emulator.bool_param(r["query"], "force", False)
        if method in ("PUT", "PATCH", "POST") and path.startswith("/v2/apps"):
            try:
                body = json.loads(r["body"]) if r["body"] else None
            except ValueError:
                body = None
            for item in body if isinstance(body, list) else [body]:
                if not isinstance(item, dict):
                    continue
                if "instances" in item:
                    out.append("%s: the body carries \"instances\": %s (autodeployd never writes instances)"
                               % (where, json.dumps(item["instances"])))
                if item.get("version") is not None:
                    out.append("%s: the body carries \"version\": %s (a version rollback restores the whole "
                               "old definition, instances included)" % (where, json.dumps(item["version"])))
        if method == "DELETE" and path.startswith("/v2/deployments/"):
            dep_id = path[len("/v2/deployments/"):]
            dep = deps.get(dep_id)
            if dep is None:
                out.append("%s: DELETE of a deployment this Marathon never created" % where)
            elif not _by_autodeployd(dep):
                out.append("%s: DELETE of deployment %s, created by %s, not by autodeployd"
                           % (where, dep_id, _creator(dep)))
            if forced:
                out.append("%s: DELETE of a deployment with force=true (no revert: the app is left "
                           "half-deployed)" % where)
        if method == "DELETE" and path.startswith("/v2/apps"):
            out.append("%s: autodeployd deleted an app" % where)
        if forced and method != "DELETE":
            label = (r.get("app_labels") or {}).get("autodeploy.force")
            permitted = allow_force or daemon_forced or _truthy(label)
            if not permitted:
                out.append("%s: ?force=true although neither the app's label autodeploy.force=true, "
                           "nor --force, nor @pytest.mark.allow_force asked for it" % where)
                for dep_id in r.get("deployments_cancelled") or []:
                    dep = deps.get(dep_id)
                    if not _by_autodeployd(dep):
                        out.append("%s: that forced write cancelled deployment %s, created by %s"
                                   % (where, dep_id, _creator(dep)))
    return out


class _WriteGuard:
    def __init__(self, item):
        self.item = item
        self.daemons_from = len(DAEMONS)
        self.reported = set()
        marathon_emulator.take_created()        # emulators of earlier tests are not this test's

    def check(self, emus):
        daemons = DAEMONS[self.daemons_from:]
        forced = any(_daemon_forces(d) for d in daemons)
        allow = self.item.get_closest_marker("allow_force") is not None
        new = []
        for emu in emus:
            for msg in write_guard_violations(emu, forced, allow):
                key = (id(emu), msg)
                if key not in self.reported:
                    self.reported.add(key)
                    new.append("[Marathon %s] %s" % (emu.url if emu.server else "?", msg))
        return new


def _guard_message(violations):
    return ("autodeployd write guard (tests/integration/conftest.py): autodeployd broke the rules of a "
            "shared Marathon:\n  " + "\n  ".join(violations))


@pytest.fixture(autouse=True)
def autodeployd_write_guard(request):
    """Checks every Marathon emulator the test made, at the end of the test (failing it) and
    once more after every fixture stopped (an error then, for writes sent after the test body)."""
    guard = _WriteGuard(request.node)
    request.node._autodeployd_write_guard = guard
    yield guard
    late = guard.check(marathon_emulator.take_created())
    del DAEMONS[guard.daemons_from:]
    if late:
        pytest.fail(_guard_message(late), pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    guard = getattr(item, "_autodeployd_write_guard", None)
    if guard is None or call.when != "call":
        return
    rep = outcome.get_result()
    found = guard.check(list(marathon_emulator.CREATED))
    if not found:
        return
    if rep.passed:
        rep.outcome = "failed"
        rep.longrepr = _guard_message(found)
    else:
        rep.sections.append(("autodeployd write guard", _guard_message(found)))
