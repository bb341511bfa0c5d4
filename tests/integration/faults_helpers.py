"""Shared assertions of the fault-injection suite (test_faults_*.py).

Every fault test ends with the same three checks, in the words of the issue: no crash, no
duplicate deploy, and every accepted push ends visibly as deployed, skipped with a reason, or
failed and reported. The helpers below are those checks, plus a few small tools (admin pause,
the number of app versions Marathon stored, raw sockets).
"""
import json
import socket

from conftest import wait_for
from deploy_helpers import TERMINAL, app_state, emu_get, records

SUCCESS = {"succeeded", "unchanged", "dry_run"}
ADMIN = "faults-admin-token"
AUTH = {"Authorization": "Bearer " + ADMIN}


def assert_alive(d):
    """The process still runs and still answers /healthz."""
    assert d.proc.poll() is None, "autodeployd died: " + d.log_text()[-2000:]
    r = d.request("GET", "/healthz", timeout=5)
    assert r.status == 200 and r.json() == {"status": "ok"}


def assert_all_terminal(d, app_id=None):
    """Every deployment record is in a terminal state; those that are not a success carry a
    reason. Returns the records (newest first)."""
    recs = records(d, app_id)
    for r in recs:
        assert r["state"] in TERMINAL, r
        if r["state"] not in SUCCESS:
            assert r["reason"], r
    return recs


def wait_terminal(d, app_id=None, n=1, timeout=12):
    """Waits until there are at least n records (of app_id, or of any app), all terminal."""
    def done():
        recs = records(d, app_id)
        return recs if len(recs) >= n and all(r["state"] in TERMINAL for r in recs) else None
    return wait_for(done, timeout=timeout, what=f"{n} terminal record(s) of {app_id or 'any app'}")


def versions(emu, app_id):
    """How many versions Marathon stored for the app: 1 + the deployments that changed it.
    The count a duplicate deploy would raise."""
    return len(app_state(emu, app_id)["versions"])


def image_of(emu, app_id):
    return app_state(emu, app_id)["definition"]["container"]["docker"]["image"]


def digest_label(emu, app_id):
    return app_state(emu, app_id)["definition"]["labels"].get("autodeploy.digest")


def deployments_started(emu, app_id):
    """deployment_info events of plans that touch app_id (every deployment Marathon began)."""
    out = []
    for e in emu.get_events():
        if e.get("eventType") != "deployment_info":
            continue
        plan = e.get("plan") or {}
        blob = json.dumps(plan)
        if app_id in blob:
            out.append(e)
    return out


def emu_deployments(emu):
    return emu_get(emu, "/v2/deployments")


def pause(d):
    r = d.request("POST", "/v1/pause", headers=AUTH)
    assert r.status == 200 and r.json()["paused"] is True


def resume(d):
    r = d.request("POST", "/v1/resume", headers=AUTH)
    assert r.status == 200 and r.json()["paused"] is False


def log_msgs(d):
    return [rec.get("msg", "") for rec in d.logs()]


def raw_http(port, data, timeout=5, read=65536):
    """Sends raw bytes on a fresh connection and returns what came back (b'' if closed)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                c = s.recv(read)
            except (ConnectionResetError, socket.timeout):
                break
            if not c:
                break
            chunks.append(c)
            if b"\r\n\r\n" in b"".join(chunks):
                head, _, rest = b"".join(chunks).partition(b"\r\n\r\n")
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        if len(rest) >= int(line.split(b":", 1)[1]):
                            return b"".join(chunks)
        return b"".join(chunks)
    finally:
        s.close()


def status_of(raw):
    if not raw.startswith(b"HTTP/1."):
        return None
    return int(raw.split(b" ", 2)[1])
