#!/usr/bin/env python3
"""Small helpers for demo.sh (Python 3 standard library only): JSON over HTTP, polling with
time-outs, and the tables the demo prints. Every command exits 0 on success, 1 on failure or
time-out, 2 on a usage error.

  democtl.py free-port
  democtl.py layout DIR
  democtl.py replay-event OUT REGISTRY REPOSITORY TAG
  democtl.py apps MARATHON_URL
  democtl.py wait-deploy AUTODEPLOY_URL MARATHON_URL APP IMAGE DIGEST TIMEOUT
  democtl.py wait-refused AUTODEPLOY_URL MARATHON_URL APP REGISTRY REPOSITORY TAG TIMEOUT
  democtl.py settle-slack AUTODEPLOY_URL SINK_URL TIMEOUT
  democtl.py approve AUTODEPLOY_URL ADMIN_TOKEN APP DIGEST TIMEOUT
  democtl.py summary AUTODEPLOY_URL MARATHON_URL SINK_URL CHECK...

A CHECK is APP=IMAGE[@DIGEST] (the app runs IMAGE, and with DIGEST its autodeploy.digest label
says so) or APP!=IMAGE (the app does not run IMAGE).
"""
import datetime
import json
import os
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

TERMINAL = {"succeeded", "failed", "timed_out", "rolled_back", "superseded", "skipped",
            "unchanged", "dry_run", "interrupted"}


def get_json(url, timeout=2.0):
    with urllib.request.urlopen(url, timeout=timeout) as r:
        return json.load(r)


def try_json(url):
    try:
        return get_json(url)
    except (OSError, ValueError):
        return None


def short(digest):
    if not digest:
        return "-"
    return digest.split(":", 1)[-1][:12]


def poll(pred, timeout, interval=0.1):
    """Calls pred until it returns something true or timeout seconds passed; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def app_state(marathon, app_id):
    j = try_json(marathon + "/v2/apps/" + urllib.parse.quote(app_id.lstrip("/")))
    if not j:
        return None
    app = j.get("app", {})
    image = ((app.get("container") or {}).get("docker") or {}).get("image")
    labels = app.get("labels") or {}
    return {"image": image, "digest": labels.get("autodeploy.digest"),
            "label": labels.get("autodeploy"), "deployments": app.get("deployments") or [],
            "running": app.get("tasksRunning"), "instances": app.get("instances")}


def cmd_free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])
    return 0


def cmd_layout(root):
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "tests", "integration"))
    from oci_layout import write_layout
    write_layout(root, salt=" (autodeploy demo)")
    return 0


def cmd_replay_event(out, registry, repository, tag):
    """A registry notification for a push of repository:tag, as docker-registry sends it, with
    a fresh id and the current time (autodeployd skips pushes older than what an app runs)."""
    now = datetime.datetime.now(datetime.timezone.utc)
    seed = now.strftime("%Y%m%d%H%M%S%f")
    digest = "sha256:" + __import__("hashlib").sha256(seed.encode()).hexdigest()
    ev = {
        "id": "d3m0%s-0000-4000-8000-%s" % (seed[-4:], seed[:12]),
        "timestamp": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "action": "push",
        "target": {
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "size": 464, "digest": digest, "length": 464, "repository": repository,
            "url": "http://%s/v2/%s/manifests/%s" % (registry, repository, digest),
            "tag": tag,
        },
        "request": {"id": "replayed", "addr": "127.0.0.1:1", "host": registry, "method": "PUT",
                    "useragent": "curl (replayed notification)"},
        "actor": {"name": "you"},
        "source": {"addr": registry, "instanceID": "autodeploy-demo"},
    }
    with open(out, "w") as f:
        json.dump({"events": [ev]}, f, indent=2)
        f.write("\n")
    return 0


def cmd_apps(marathon):
    j = try_json(marathon + "/v2/apps")
    if j is None:
        print("  (Marathon emulator not answering)")
        return 1
    rows = [("app", "label autodeploy", "image", "digest")]
    for app in j.get("apps", []):
        image = ((app.get("container") or {}).get("docker") or {}).get("image") or "-"
        labels = app.get("labels") or {}
        rows.append((app["id"], labels.get("autodeploy", "-"), image,
                     short(labels.get("autodeploy.digest"))))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  " + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    return 0


def find_record(autodeploy, app_id, digest):
    j = try_json(autodeploy + "/v1/deployments")
    for d in (j or {}).get("deployments", []):
        if d.get("app") == app_id and d.get("digest") == digest:
            return d
    return None


def previous_digest(marathon, app_id):
    """The autodeploy.digest label of the app's version before the current one."""
    base = marathon + "/v2/apps/" + urllib.parse.quote(app_id.lstrip("/")) + "/versions"
    versions = (try_json(base) or {}).get("versions", [])
    if len(versions) < 2:
        return None
    app = try_json(base + "/" + urllib.parse.quote(versions[1])) or {}
    return (app.get("labels") or {}).get("autodeploy.digest")


def cmd_wait_deploy(autodeploy, marathon, app_id, image, digest, timeout):
    """Waits until autodeployd's deployment of DIGEST to APP ended and Marathon runs it."""
    timeout = float(timeout)
    t0 = time.monotonic()
    rec = poll(lambda: (lambda r: r if r and r.get("state") in TERMINAL else None)(
        find_record(autodeploy, app_id, digest)), timeout)
    if not rec:
        rec = find_record(autodeploy, app_id, digest)
        print("  %s: no finished deployment of %s after %.0fs (autodeployd says: %s)" % (
            app_id, short(digest), timeout, rec.get("state") if rec else "no deployment yet"))
        return 1
    left = max(1.0, timeout - (time.monotonic() - t0))
    st = None
    if rec.get("state") == "succeeded":
        st = poll(lambda: (lambda s: s if s and s["image"] == image and s["digest"] == digest
                           and not s["deployments"] else None)(app_state(marathon, app_id)), left)
    old = rec.get("old_image") or "-"
    if rec.get("state") != "succeeded" or not st:
        now = app_state(marathon, app_id) or {}
        print("  %s: deployment %s (%s); Marathon runs %s @ %s" % (
            app_id, rec.get("state"), rec.get("reason") or "no reason given",
            now.get("image"), short(now.get("digest"))))
        return 1
    if old == image:
        change = "%s  digest %s -> %s" % (image, short(previous_digest(marathon, app_id)),
                                          short(digest))
    else:
        change = "%s -> %s" % (old, image)
    dur = rec.get("duration_s")
    print("  %s: %s  (%s%s, %s/%s tasks running)" % (
        app_id, change, rec["state"], " in %.1fs" % dur if isinstance(dur, (int, float)) else "",
        st.get("running"), st.get("instances")))
    return 0


def cmd_wait_refused(autodeploy, marathon, app_id, registry, repository, tag, timeout):
    """Waits until autodeployd decided on the push of repository:tag, and checks that APP was
    not deployed to; prints autodeployd's reason (from /v1/plan)."""
    def decided():
        j = try_json(autodeploy + "/v1/pushes")
        for p in (j or {}).get("pushes", []):
            if p.get("repository") == repository and p.get("tag") == tag and \
                    p.get("state") not in ("received", "queued"):
                return p
        return None
    push = poll(decided, float(timeout))
    if not push:
        print("  the push of %s:%s did not reach autodeployd in %ss" % (repository, tag, timeout))
        return 1
    ref = "%s/%s:%s" % (registry, repository, tag)
    reason = ""
    plan = try_json(autodeploy + "/v1/plan?image=" + urllib.parse.quote(ref, safe=""))
    for a in (plan or {}).get("apps", []):
        if a.get("id") == app_id:
            reason = a.get("reason") or a.get("action") or ""
    st = app_state(marathon, app_id) or {}
    deployed = find_record(autodeploy, app_id, push.get("digest"))
    if st.get("image") == ref or (deployed and deployed.get("state") not in ("skipped",)):
        print("  %s: %s WAS deployed (it must not be)" % (app_id, ref))
        return 1
    print("  %s: not deployed, still %s  (push %s; %s)" % (app_id, st.get("image"),
                                                         push.get("state"), reason or "-"))
    return 0


def metric(autodeploy, name):
    try:
        with urllib.request.urlopen(autodeploy + "/metrics", timeout=2) as r:
            for line in r.read().decode().splitlines():
                if line.startswith(name + " "):
                    return float(line.split()[-1])
    except (OSError, ValueError):
        pass
    return None


def cmd_settle_slack(autodeploy, sink, timeout):
    """Waits (at most TIMEOUT s) until autodeployd has no Slack message left to send, so that
    one step's messages are printed before the next step starts. autodeployd sends at most one
    message a second (Slack's limit), and takes a message off its queue before waiting its
    turn: so "queue empty and nothing received for QUIET s" means everything went out."""
    quiet = 1.3
    start = time.monotonic()
    deadline = start + float(timeout)
    last, since = -1, start
    while time.monotonic() < deadline:
        j = try_json(sink + "/_sink/messages")
        n = len((j or {}).get("messages", []))
        now = time.monotonic()
        if n != last:
            last, since = n, now
        elif now - since >= quiet and now - start >= quiet and \
                metric(autodeploy, "autodeploy_slack_queue_depth") == 0:
            return 0
        time.sleep(0.1)
    return 0


def cmd_approve(autodeploy, token, app_id, digest, timeout):
    """Waits for the pending approval of DIGEST for APP (label autodeploy.approve=true), shows
    it, and approves it through the API with the admin token, as a person would."""
    def pending():
        j = try_json(autodeploy + "/v1/approvals")
        for a in (j or {}).get("approvals", []):
            if a.get("app") == app_id and a.get("digest") == digest and a.get("state") == "pending":
                return a
        return None
    a = poll(pending, float(timeout))
    if not a:
        print("  %s: no pending approval for %s after %ss" % (app_id, short(digest), timeout))
        return 1
    print("  %s waits for approval %s (until %s):" % (app_id, a["id"], a["expires_at"]))
    print("    %s -> %s, pushed by %s" % (a.get("old_image"), a.get("image"), a.get("pusher") or "-"))
    url = "%s/v1/approvals/%s/approve" % (autodeploy, a["id"])
    print("  approving through the API:")
    print("    curl -sS -X POST -H 'Authorization: Bearer <admin token>' -d '{\"by\":\"demo\"}' %s" % url)
    req = urllib.request.Request(url, data=json.dumps({"by": "demo", "via": "api"}).encode(),
                                 method="POST", headers={"Authorization": "Bearer " + token,
                                                         "Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=5) as r:
            got = json.load(r)
    except (OSError, ValueError) as ex:
        print("  approval failed: %s" % ex)
        return 1
    print("    -> %s by %s via %s at %s" % (got.get("state"), got.get("decided_by"),
                                           got.get("decided_via"), got.get("decided_at")))
    return 0 if got.get("state") == "approved" else 1


def cmd_summary(autodeploy, marathon, sink, checks):
    ok = 0
    for check in checks:
        if "!=" in check:
            app_id, image = check.split("!=", 1)
            st = app_state(marathon, app_id) or {}
            good = bool(st) and st.get("image") != image
            print("DEMO app=%s expected=not:%s actual=%s result=%s" % (
                app_id, image, st.get("image"), "ok" if good else "FAIL"))
        else:
            app_id, want = check.split("=", 1)
            image, _, digest = want.partition("@")
            st = app_state(marathon, app_id) or {}
            good = bool(st) and st.get("image") == image and (not digest or st.get("digest") == digest)
            actual = "%s@%s" % (st.get("image"), st.get("digest")) if digest else st.get("image")
            print("DEMO app=%s expected=%s actual=%s result=%s" % (
                app_id, want, actual, "ok" if good else "FAIL"))
        ok += good
    j = try_json(autodeploy + "/v1/deployments") or {}
    states = {}
    for d in j.get("deployments", []):
        states[d.get("state")] = states.get(d.get("state"), 0) + 1
    print("DEMO deployments %s" % " ".join("%s=%d" % kv for kv in sorted(states.items())))
    msgs = (try_json(sink + "/_sink/messages") or {}).get("messages", [])
    print("DEMO slack messages=%d answered_200=%d" % (
        len(msgs), sum(1 for m in msgs if m.get("status") == 200)))
    print("DEMO RESULT %s %d/%d checks passed" % ("ok" if ok == len(checks) else "FAIL", ok,
                                                  len(checks)))
    return 0 if ok == len(checks) else 1


def main(argv):
    cmds = {
        "free-port": (cmd_free_port, 0), "layout": (cmd_layout, 1),
        "replay-event": (cmd_replay_event, 4), "apps": (cmd_apps, 1),
        "wait-deploy": (cmd_wait_deploy, 6), "wait-refused": (cmd_wait_refused, 7),
        "settle-slack": (cmd_settle_slack, 3), "approve": (cmd_approve, 5),
    }
    if len(argv) >= 5 and argv[0] == "summary":
        return cmd_summary(argv[1], argv[2], argv[3], argv[4:])
    if not argv or argv[0] not in cmds or len(argv) - 1 != cmds[argv[0]][1]:
        sys.stderr.write(__doc__)
        return 2
    return cmds[argv[0]][0](*argv[1:])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
