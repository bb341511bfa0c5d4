#!/usr/bin/env python3
"""reconcile_bench.py: one reconcile cycle over 1,000 labelled apps sharing 200 repositories
(10 tags each) on a local Debian docker-registry: registry requests and wall time, cold (the
first cycle: every tag's created time is asked) and steady (nothing new), and the daemon's peak
RSS.

    reconcile_bench.py --daemon bin/autodeployd [--apps 1000] [--repos 200] [--steady 3]

Starts docker-registry (open, loopback, a temporary directory), fills it through the registry
API (one shared layer mounted into every repository; per tag its own config blob with its own
`created` and its own manifest), starts the Marathon emulator with the apps and autodeployd
(`--reconcile-interval 0`: cycles only when asked), then asks GET /v1/reconcile (a dry cycle:
decides, deploys nothing) once cold and --steady times warm. Repositories: 75 % glob
(`bench/rK:main-*`, tags main-1..main-10), 15 % semver (`semver:bench/rK:^1`, 1.0.0..1.9.0),
10 % exact (`bench/rK:latest` plus 9 other tags). App j uses repository j mod repos and runs
its newest image when j is even, an older one when odd. Prints one line:
    RECONCILE key=value ...
Every process started here is stopped on exit.
"""
import argparse
import hashlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def wait(pred, what, timeout=30):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            if pred():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit("bench: timed out waiting for " + what)


class Reg:
    def __init__(self, port):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.port = port

    def req(self, method, path, body=None, headers=None):
        self.conn.request(method, path, body=body, headers=headers or {})
        r = self.conn.getresponse()
        data = r.read()
        return r.status, r.headers, data

    def blob(self, repo, data, mount_from=None):
        dg = "sha256:" + hashlib.sha256(data).hexdigest()
        if mount_from:
            st, _, _ = self.req("POST", "/v2/%s/blobs/uploads/?mount=%s&from=%s"
                                % (repo, dg, mount_from), b"", {"Content-Length": "0"})
            if st == 201:
                return dg
        st, h, _ = self.req("POST", "/v2/%s/blobs/uploads/" % repo, b"", {"Content-Length": "0"})
        loc = h["Location"]
        if loc.startswith("http"):
            loc = loc.split("/", 3)[3]
            loc = "/" + loc
        sep = "&" if "?" in loc else "?"
        st, _, body = self.req("PUT", "%s%sdigest=%s" % (loc, sep, dg), data,
                               {"Content-Type": "application/octet-stream",
                                "Content-Length": str(len(data))})
        if st != 201:
            raise SystemExit("bench: blob upload %s: %d %s" % (repo, st, body[:200]))
        return dg

    def image(self, repo, tag, created, layer, layer_dg):
        cfg = json.dumps({"created": created, "architecture": "amd64", "os": "linux",
                          "config": {"Labels": {"tag": tag}},
                          "rootfs": {"type": "layers", "diff_ids": [layer_dg]}}).encode()
        cfg_dg = self.blob(repo, cfg)
        man = json.dumps({"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                          "config": {"mediaType": OCI_CONFIG, "digest": cfg_dg, "size": len(cfg)},
                          "layers": [{"mediaType": OCI_LAYER, "digest": layer_dg,
                                      "size": len(layer)}]}).encode()
        st, h, body = self.req("PUT", "/v2/%s/manifests/%s" % (repo, tag), man,
                               {"Content-Type": OCI_MANIFEST, "Content-Length": str(len(man))})
        if st != 201:
            raise SystemExit("bench: manifest %s:%s: %d %s" % (repo, tag, st, body[:200]))
        return h["Docker-Content-Digest"]


def kind(k, repos):
    if k < repos * 75 // 100:
        return "glob"
    return "semver" if k < repos * 90 // 100 else "exact"


def tags_of(kind_):
    if kind_ == "glob":
        return ["main-%d" % i for i in range(1, 11)]
    if kind_ == "semver":
        return ["1.%d.0" % i for i in range(10)]
    return ["latest"] + ["v%d" % i for i in range(1, 10)]


def fill(reg, repos):
    layer = b"bench layer " * 100
    layer_dg = None
    first = None
    digests = {}
    for k in range(repos):
        repo = "bench/r%d" % k
        layer_dg = reg.blob(repo, layer, mount_from=first)
        first = first or repo
        for i, tag in enumerate(tags_of(kind(k, repos))):
            created = "2026-03-01T%02d:%02d:00Z" % (i, k % 60)
            digests[(repo, tag)] = reg.image(repo, tag, created, layer, layer_dg)
    return digests


def apps(n, repos, host, digests):
    out = []
    for j in range(n):
        k = j % repos
        kd = kind(k, repos)
        tags = tags_of(kd)
        repo = "bench/r%d" % k
        if kd == "glob":
            pattern, tag = "%s:main-*" % repo, tags[-1] if j % 2 == 0 else tags[3]
        elif kd == "semver":
            pattern, tag = "semver:%s:^1" % repo, tags[-1] if j % 2 == 0 else tags[3]
        else:
            pattern, tag = "%s:latest" % repo, "latest"
        labels = {"autodeploy": pattern, "team": "bench"}
        if kd == "exact":
            labels["autodeploy.digest"] = digests[(repo, "latest")]
        out.append({"id": "/bench/app-%d" % j, "cmd": "sleep 1000", "instances": 1, "cpus": 0.1,
                    "mem": 64, "labels": labels,
                    "container": {"type": "DOCKER", "docker": {
                        "image": "%s/%s:%s" % (host, repo, tag), "network": "BRIDGE",
                        "forcePullImage": False}}})
    return out


def get_json(port, path, headers=None, timeout=300):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    c.request("GET", path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    if r.status != 200:
        raise SystemExit("bench: GET %s: %d %s" % (path, r.status, body[:300]))
    return json.loads(body)


def hwm_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--daemon", default=os.path.join(ROOT, "bin", "autodeployd"))
    ap.add_argument("--apps", type=int, default=1000)
    ap.add_argument("--repos", type=int, default=200)
    ap.add_argument("--steady", type=int, default=3)
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="autodeploy-reconcile-bench.")
    procs = []
    try:
        rport = free_port()
        with open(os.path.join(work, "registry.yml"), "w") as f:
            f.write("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n"
                    "    rootdirectory: %s/data\nhttp:\n  addr: 127.0.0.1:%d\n" % (work, rport))
        rlog = open(os.path.join(work, "registry.log"), "wb")
        procs.append(subprocess.Popen(["docker-registry", "serve",
                                       os.path.join(work, "registry.yml")],
                                      stdout=rlog, stderr=rlog, stdin=subprocess.DEVNULL))
        wait(lambda: Reg(rport).req("GET", "/v2/")[0] == 200, "docker-registry")
        t0 = time.monotonic()
        digests = fill(Reg(rport), a.repos)
        fill_s = time.monotonic() - t0
        host = "127.0.0.1:%d" % rport
        with open(os.path.join(work, "apps.json"), "w") as f:
            json.dump({"apps": apps(a.apps, a.repos, host, digests)}, f)
        emu_port_file = os.path.join(work, "emu.port")
        procs.append(subprocess.Popen(
            [sys.executable, os.path.join(ROOT, "tests", "emulator", "marathon.py"), "--listen",
             "127.0.0.1:0", "--port-file", emu_port_file, "--apps",
             os.path.join(work, "apps.json"), "--quiet"],
            stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "emu.log"), "wb")))
        wait(lambda: os.path.exists(emu_port_file) and open(emu_port_file).read().strip(),
             "the emulator")
        emu = "http://127.0.0.1:%s" % open(emu_port_file).read().strip()
        dport = free_port()
        dlog = open(os.path.join(work, "autodeployd.log"), "wb")
        d = subprocess.Popen([a.daemon, "--listen", "127.0.0.1:%d" % dport, "--marathon-url", emu,
                              "--reconcile-interval", "0", "--log-level", "warn"],
                             stdout=dlog, stderr=dlog, stdin=subprocess.DEVNULL)
        procs.append(d)
        wait(lambda: get_json(dport, "/healthz", timeout=2), "autodeployd")
        cold = get_json(dport, "/v1/reconcile")
        steady = [get_json(dport, "/v1/reconcile") for _ in range(a.steady)]
        acts = {}
        for x in cold["apps"]:
            acts[x["action"]] = acts.get(x["action"], 0) + 1
        st = sorted(steady, key=lambda p: p["seconds"])[len(steady) // 2]
        n_exact = sum(1 for k in range(a.repos) if kind(k, a.repos) == "exact")
        print("RECONCILE apps=%d repos=%d exact_tags=%d fill_s=%.1f cold_s=%.3f cold_tags=%d "
              "cold_head=%d cold_created=%d steady_s=%.3f steady_tags=%d steady_head=%d "
              "steady_created=%d hwm_kib=%d deploy=%d nothing=%d skipped=%d"
              % (a.apps, a.repos, n_exact, fill_s, cold["seconds"],
                 cold["requests"]["tags_list"], cold["requests"]["head"],
                 cold["requests"]["created"], st["seconds"], st["requests"]["tags_list"],
                 st["requests"]["head"], st["requests"]["created"], hwm_kib(d.pid),
                 acts.get("deploy", 0), acts.get("nothing", 0), acts.get("skipped", 0)))
    finally:
        for p in reversed(procs):
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
