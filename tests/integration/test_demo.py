"""The one-command demo, scripted: examples/demo/demo.sh --scripted starts the real registry, the
Marathon emulator, the Slack sink and autodeployd on loopback, pushes images with skopeo and
checks where they landed (one app waits for approval, which the demo gives through the API). Asserts that it succeeds in bounded time, that every app got its
image (and the semver app refused the new major), that Slack messages went out, and that
nothing it started is left running or listening.
"""
import os
import re
import socket
import subprocess
import time

from conftest import AUTODEPLOYD, ROOT

DEMO = os.path.join(ROOT, "examples", "demo", "demo.sh")


def alive(pid):
    """True if pid runs (a zombie, already dead but not reaped, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def listening(port):
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_demo_scripted_deploys_every_app_and_leaves_nothing_behind(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AUTODEPLOY_")}
    env["AUTODEPLOYD"] = AUTODEPLOYD
    env["TMPDIR"] = str(tmp_path)
    # The web console after the demo, for people to look at (README: "Console").
    shot = os.path.join(ROOT, "build", "console-demo.png")
    if os.path.exists(shot):
        os.unlink(shot)
    env["DEMO_CONSOLE_SHOT"] = shot
    t0 = time.monotonic()
    r = subprocess.run(["sh", DEMO, "--scripted"], capture_output=True, text=True, env=env,
                       timeout=90, stdin=subprocess.DEVNULL, cwd=ROOT)
    took = time.monotonic() - t0
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert took < 60, f"the scripted demo took {took:.1f}s"

    results = re.findall(r"^DEMO app=(\S+) expected=(\S+) actual=(\S+) result=(\S+)$", r.stdout, re.M)
    by_app = {}
    for app, expected, actual, result in results:
        assert result == "ok", out
        by_app.setdefault(app, []).append((expected, actual))
    assert set(by_app) == {"/demo/web", "/demo/api", "/demo/worker", "/demo/billing"}, out
    registry = re.search(r"^DEMO ports .*registry=(\d+)", r.stdout, re.M).group(1)
    host = f"127.0.0.1:{registry}"
    # Each app runs the pushed image: the glob and semver apps moved to the new tag, the
    # mutable-tag app kept its image string but carries the second push's digest.
    (web_exp, web_act), = by_app["/demo/web"]
    assert web_act.startswith(f"{host}/demo/web:main-1a2b3c@sha256:") and web_act == web_exp
    api = dict(by_app["/demo/api"])
    assert api[f"{host}/demo/api:1.3.0"] == f"{host}/demo/api:1.3.0"
    assert api[f"not:{host}/demo/api:2.0.0"] == f"{host}/demo/api:1.3.0"
    (wk_exp, wk_act), = by_app["/demo/worker"]
    assert wk_act.startswith(f"{host}/demo/worker:latest@sha256:") and wk_act == wk_exp
    assert re.search(r"^  console       http://127\.0\.0\.1:\d+/  \(the web console", r.stdout, re.M), out
    with open(shot, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n", "no console screenshot"
    # The approval app deployed only once the demo approved it through the API.
    (bl_exp, bl_act), = by_app["/demo/billing"]
    assert bl_act == bl_exp == f"{host}/demo/billing:release-1"
    assert re.search(r"^    -> approved by demo via api at ", r.stdout, re.M), out
    assert "Approval needed to deploy demo/billing:release-1 to /demo/billing" in r.stdout
    assert re.search(r"^DEMO RESULT ok 5/5 checks passed$", r.stdout, re.M), out
    assert re.search(r"^DEMO deployments succeeded=5$", r.stdout, re.M), out

    # Slack: the sink printed the messages and answered each one.
    m = re.search(r"^DEMO slack messages=(\d+) answered_200=(\d+)$", r.stdout, re.M)
    assert m and int(m.group(1)) >= 4 and m.group(1) == m.group(2), out
    assert "Deployed demo/web:main-1a2b3c to /demo/web" in r.stdout

    # Nothing left behind: every process it reported is gone, every port closed, the
    # temporary directory removed.
    pids = dict(re.findall(r"(\w[\w-]*)=(\d+)", re.search(r"^DEMO pids (.*)$", r.stdout, re.M).group(1)))
    ports = dict(re.findall(r"(\w[\w-]*)=(\d+)", re.search(r"^DEMO ports (.*)$", r.stdout, re.M).group(1)))
    assert set(pids) == set(ports) == {"marathon", "slack", "autodeployd", "registry"}
    for name, pid in pids.items():
        assert not alive(int(pid)), f"{name} (pid {pid}) still running"
    for name, port in ports.items():
        assert not listening(int(port)), f"{name} port {port} still open"
    assert not [p for p in os.listdir(tmp_path) if p.startswith("autodeploy-demo.")]
