#!/usr/bin/env python3
"""deploy_latency.py: push received -> PATCH sent, autodeployd's own time, with N labelled apps
in the Marathon emulator and tests/bench/timing_proxy.py between autodeployd and the emulator.

    deploy_latency.py gen-apps N FILE
        writes N apps /bench/app-1..N for the emulator's --apps: label autodeploy=
        "bench/app-K:main-*", image registry.example.com/bench/app-K:main-0 (plus the usual
        fields of a real app definition)
    deploy_latency.py run --webhook URL --proxy URL --apps N --pushes P [--warmup W]
                          [--body FILE] [--settle S]
        sends W + P pushes one at a time, each to a different app (repository bench/app-K, new
        tag, new event id); for each waits (bounded, 5 s) for the PATCH of that app, then S
        seconds for the deployment to settle. Prints "DEPLOY key=value ..." (microseconds).

Per push, from the proxy's CLOCK_MONOTONIC timestamps and t0 (this program, just before the
webhook POST is written):
    L = GET /v2/apps?label=... (the listing), G = GET /v2/apps/bench/app-K, P = PATCH, each the
        first of its kind to arrive after t0 (the proxy logs a request once its answer is
        written, so a record that comes late is waited for, up to a second)
    own = (L.t_in - t0) + (G.t_in - L.t_done) + (P.t_in - G.t_done)
        autodeployd's work only: accepting the webhook, queueing, asking for the listing;
        reading the 1,000-app answer, parsing, matching, dispatching, asking for the app;
        reading it, building and sending the PATCH. The emulator's service times
        (L.t_in..L.t_start, G.t_in..G.t_start) are excluded.
    own_hi = the same with t_start instead of t_done: also counts the time the answers take to
        be copied into autodeployd's socket (an upper bound; own is the lower bound).
    total = P.t_in - t0 (what a user sees with this emulator; includes the emulator's time).
"""
import argparse
import http.client
import json
import os
import sys
import time
import urllib.parse


def gen_apps(n, path):
    apps = []
    for k in range(1, n + 1):
        apps.append({
            "id": "/bench/app-%d" % k,
            "cmd": None,
            "instances": 2,
            "cpus": 0.25,
            "mem": 256,
            "disk": 0,
            "env": {"APP_ENV": "bench", "APP_NAME": "app-%d" % k},
            "labels": {"autodeploy": "bench/app-%d:main-*" % k, "team": "bench",
                       "HAPROXY_GROUP": "internal"},
            "container": {
                "type": "DOCKER",
                "docker": {"image": "registry.example.com/bench/app-%d:main-0" % k,
                           "network": "BRIDGE", "forcePullImage": False,
                           "portMappings": [{"containerPort": 8080, "hostPort": 0,
                                             "protocol": "tcp", "name": "http"}]},
                "volumes": [],
            },
            "healthChecks": [{"protocol": "HTTP", "path": "/health", "portIndex": 0,
                              "gracePeriodSeconds": 60, "intervalSeconds": 10,
                              "timeoutSeconds": 5, "maxConsecutiveFailures": 3}],
            "upgradeStrategy": {"minimumHealthCapacity": 1, "maximumOverCapacity": 1},
            "constraints": [["hostname", "UNIQUE"]],
        })
    with open(path, "w") as f:
        json.dump({"apps": apps}, f)


class Client:
    def __init__(self, url):
        u = urllib.parse.urlsplit(url)
        self.host, self.port, self.path = u.hostname, u.port, u.path
        self.conn = http.client.HTTPConnection(self.host, self.port, timeout=30)

    def request(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        return r.status, r.read()


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round((len(xs) - 1) * p)))]


def run(a):
    with open(a.body, encoding="utf-8") as f:
        tmpl = json.load(f)
    hook = Client(a.webhook)
    ctl = Client(a.proxy)
    waiter = Client(a.proxy)
    nonce = "%x" % int(time.time() * 1000)
    # Calibration: how late the proxy stamps t_in after a client starts writing a request
    # (Python client + proxy wake-up): the error bar of each of the three t_in stamps.
    probes = []
    for _ in range(50):
        _, b = ctl.request("GET", "/_proxy/log?since=999999999999")
        seq = json.loads(b)["seq"]
        ts = time.monotonic_ns()
        waiter.request("GET", "/ping")
        _, b = ctl.request("GET", "/_proxy/log?since=%d" % seq)
        recs = [x for x in json.loads(b)["records"] if x["path"] == "/ping"]
        if recs:
            probes.append(recs[0]["t_in"] - ts)
        time.sleep(0.002)
    probe = pct(probes, 0.5) if probes else 0
    rows, failures, first = [], 0, None
    total_pushes = a.warmup + a.pushes
    deadline = time.monotonic() + a.max_seconds
    for i in range(total_pushes):
        if time.monotonic() > deadline:
            break
        k = (i * 337) % a.apps + 1  # distinct apps for i < apps (337 is prime to 1,000)
        ev = json.loads(json.dumps(tmpl))
        e = ev["events"][0]
        e["id"] = "bench-%s-%d" % (nonce, i)
        e["target"]["repository"] = "bench/app-%d" % k
        e["target"]["tag"] = "main-%s-%d" % (nonce, i)
        e["request"]["host"] = "registry.example.com"
        body = json.dumps(ev).encode()
        app_path = "/v2/apps/bench/app-%d" % k
        st, b = ctl.request("GET", "/_proxy/log?since=999999999999")
        seq0 = json.loads(b)["seq"]
        seq_log = max(0, seq0 - 10)  # a late record of the previous push may come after seq0
        # Arm the wait before the push so that the proxy is idle while autodeployd works.
        q = urllib.parse.urlencode({"method": "PATCH", "path": app_path, "since": seq0,
                                    "timeout": 5})
        waiter.conn.putrequest("GET", "/_proxy/wait?" + q)
        waiter.conn.endheaders()
        time.sleep(0.002)
        t0 = time.monotonic_ns()
        st, _ = hook.request("POST", hook.path, body, {
            "Content-Type": "application/vnd.docker.distribution.events.v1+json"})
        r = waiter.conn.getresponse()
        r.read()
        if st != 202 or r.status != 200:
            failures += 1
            continue
        # The proxy logs a request once its answer is written, so on a loaded machine the
        # listing's record can land after the PATCH's (or, late enough, after the next push's
        # log position): look for this push's requests by arrival time, and give a late record
        # a moment to appear.
        for _ in range(100):
            _, b = ctl.request("GET", "/_proxy/log?since=%d" % seq_log)
            recs = [x for x in json.loads(b)["records"] if x["t_in"] >= t0]
            recs.sort(key=lambda x: x["t_in"])
            L = next((x for x in recs if x["method"] == "GET" and
                      x["path"].startswith("/v2/apps?")), None)
            G = next((x for x in recs if x["method"] == "GET" and
                      x["path"].split("?")[0] == app_path), None)
            P = next((x for x in recs if x["method"] == "PATCH" and
                      x["path"].split("?")[0] == app_path), None)
            if L and G and P:
                break
            time.sleep(0.01)
        if not (L and G and P) or not (t0 <= L["t_in"] <= G["t_in"] <= P["t_in"]):
            failures += 1
            continue
        row = {
            "own": (L["t_in"] - t0) + (G["t_in"] - L["t_done"]) + (P["t_in"] - G["t_done"]),
            "own_hi": (L["t_in"] - t0) + (G["t_in"] - L["t_start"]) + (P["t_in"] - G["t_start"]),
            "to_list": L["t_in"] - t0,
            "list_to_get": G["t_in"] - L["t_done"],
            "get_to_patch": P["t_in"] - G["t_done"],
            "emu_list": L["t_start"] - L["t_in"],
            "emu_get": G["t_start"] - G["t_in"],
            "list_bytes": L["bytes"],
            "new_conns": sum(1 for x in (L, G, P) if x["nth_on_connection"] == 1),
            "total": P["t_in"] - t0,
        }
        if i >= a.warmup:
            rows.append(row)
        elif i == 0:
            first = row
        time.sleep(a.settle)
    if not rows:
        print("DEPLOY n=0 failures=%d" % failures)
        return 0
    us = lambda ns: ns / 1000.0
    out = {"n": len(rows), "failures": failures, "apps": a.apps}
    for key in ("own", "own_hi", "to_list", "list_to_get", "get_to_patch", "emu_list", "emu_get",
                "total"):
        xs = [r[key] for r in rows]
        out[key + "_p50_us"] = "%.0f" % us(pct(xs, 0.5))
        out[key + "_p99_us"] = "%.0f" % us(pct(xs, 0.99))
        out[key + "_max_us"] = "%.0f" % us(max(xs))
    out["list_bytes"] = rows[0]["list_bytes"]
    out["new_connections"] = sum(r["new_conns"] for r in rows)
    out["probe_p50_us"] = "%.0f" % us(probe)
    if first:
        out["first_own_us"] = "%.0f" % us(first["own"])
    print("DEPLOY " + " ".join("%s=%s" % kv for kv in out.items()))
    return 0


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    g = sub.add_parser("gen-apps")
    g.add_argument("n", type=int)
    g.add_argument("file")
    r = sub.add_parser("run")
    r.add_argument("--webhook", required=True)
    r.add_argument("--proxy", required=True)
    r.add_argument("--apps", type=int, default=1000)
    r.add_argument("--pushes", type=int, default=200)
    r.add_argument("--warmup", type=int, default=5)
    r.add_argument("--settle", type=float, default=0.1)
    r.add_argument("--max-seconds", type=float, default=90)
    r.add_argument("--body", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                                  "fixtures", "registry", "push_oci_manifest.json"))
    a = ap.parse_args(argv)
    if a.cmd == "gen-apps":
        gen_apps(a.n, a.file)
        return 0
    return run(a)


if __name__ == "__main__":
    sys.exit(main())
