"""Shared helpers for the integration tests: start the real autodeployd binary on an ephemeral
loopback port, talk to it over HTTP, read its JSON log, and stop it.

Every test starts what it needs and stops it; nothing listens anywhere but 127.0.0.1.
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

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
AUTODEPLOYD = os.environ.get("AUTODEPLOYD", os.path.join(ROOT, "bin", "autodeployd"))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")


def fixture_bytes(*parts):
    with open(os.path.join(FIXTURES, *parts), "rb") as f:
        return f.read()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout=10.0, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


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
        for marker in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
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
