"""End to end with the real registry: Debian's docker-registry, notifications pointed at a
running autodeployd, images pushed with skopeo from an OCI layout written by the test.

Asserts that exactly the tagged pushes are accepted, once each, with the digests the registry
really stored: a v2s2 push, an OCI push, a multi-arch index (whose untagged children must not
count), a push by digest (ignored), a re-push of the same image (duplicate), a nested
repository, and a mutable tag moved to another image (a new push).
"""
import hashlib
import os
import subprocess
import time
import urllib.request

import pytest

from conftest import free_port, wait_for
from oci_layout import write_layout

TOKEN = "registry-hook-token"

class Registry:
    def __init__(self, workdir, hook_url, token):
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        cfg = os.path.join(workdir, "registry.yml")
        with open(cfg, "w") as f:
            f.write(f"""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {workdir}/data
  delete:
    enabled: true
http:
  addr: {self.addr}
notifications:
  endpoints:
    - name: autodeploy
      url: {hook_url}
      headers:
        Authorization: [Bearer {token}]
      timeout: 2s
      threshold: 3
      backoff: 1s
""")
        self.log = open(os.path.join(workdir, "registry.log"), "wb")
        self.proc = subprocess.Popen(["docker-registry", "serve", cfg], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        wait_for(self._ready, timeout=15, what="registry to answer /v2/")

    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("docker-registry exited")
        try:
            with urllib.request.urlopen(f"http://{self.addr}/v2/", timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def push(self, layout, ref, dest, *extra):
        subprocess.run(["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false", *extra,
                        f"oci:{layout}:{ref}", f"docker://{self.addr}/{dest}"],
                       check=True, capture_output=True, timeout=60)

    def digest(self, ref):
        raw = subprocess.run(["skopeo", "inspect", "--raw", "--tls-verify=false",
                              f"docker://{self.addr}/{ref}"],
                             check=True, capture_output=True, timeout=30).stdout
        return "sha256:" + hashlib.sha256(raw).hexdigest()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@pytest.fixture
def registry(tmp_path):
    made = []

    def start(hook_url, token=TOKEN):
        workdir = tmp_path / f"registry-{len(made)}"
        workdir.mkdir()
        r = Registry(str(workdir), hook_url, token)
        made.append(r)
        return r

    yield start
    for r in made:
        r.stop()


def test_real_registry_pushes_accepted_once_each(daemon, registry, tmp_path):
    d = daemon(args=["--webhook-token", TOKEN])
    reg = registry(f"http://127.0.0.1:{d.port}/v1/webhooks/registry")
    layout = str(tmp_path / "oci")
    write_layout(layout, salt="registry-test")

    reg.push(layout, "v1", "strava/foo-service:master-1", "--format", "v2s2")
    reg.push(layout, "v2", "strava/bar-service:release-2", "--format", "oci")
    reg.push(layout, "multi", "strava/multi-service:latest", "--all", "--format", "oci")
    reg.push(layout, "v1", "a/b/c:nested-1", "--format", "oci")
    expected = {
        ("strava/foo-service", "master-1"): reg.digest("strava/foo-service:master-1"),
        ("strava/bar-service", "release-2"): reg.digest("strava/bar-service:release-2"),
        ("strava/multi-service", "latest"): reg.digest("strava/multi-service:latest"),
        ("a/b/c", "nested-1"): reg.digest("a/b/c:nested-1"),
    }
    # A push by digest has no tag: it must be ignored.
    v2 = expected[("strava/bar-service", "release-2")]
    reg.push(layout, "v2", f"strava/by-digest@{v2}", "--format", "oci")

    def accepted():
        return {(p["repository"], p["tag"]): p for p in d.pushes()}

    wait_for(lambda: len(accepted()) >= 4, timeout=30, what="four tagged pushes")

    # The same image pushed to the same tag again: the registry sends a new event, which is a
    # duplicate; the tag then moved to another image: a new push.
    reg.push(layout, "v1", "strava/foo-service:master-1", "--format", "v2s2")
    wait_for(lambda: d.metrics().get('autodeploy_events_total{result="duplicate"}', 0) >= 1,
             timeout=30, what="the re-push to arrive as a duplicate")
    reg.push(layout, "v2", "strava/foo-service:master-1", "--format", "v2s2")
    moved = reg.digest("strava/foo-service:master-1")
    assert moved != expected[("strava/foo-service", "master-1")]
    wait_for(lambda: len(d.pushes()) == 5, timeout=30, what="the moved tag")
    time.sleep(1.5)  # anything late (a second copy of an event) would show up now

    pushes = d.pushes()
    keys = [(p["repository"], p["tag"], p["digest"]) for p in pushes]
    assert len(keys) == len(set(keys)) == 5, keys
    want = {(r, t, dg) for (r, t), dg in expected.items()}
    want.add(("strava/foo-service", "master-1", moved))
    assert set(keys) == want
    media = {(p["repository"], p["tag"]): p["media_type"] for p in pushes}
    assert media[("strava/foo-service", "master-1")] == "application/vnd.docker.distribution.manifest.v2+json"
    assert media[("strava/bar-service", "release-2")] == "application/vnd.oci.image.manifest.v1+json"
    assert media[("strava/multi-service", "latest")] == "application/vnd.oci.image.index.v1+json"
    for p in pushes:
        assert p["registry"] == reg.addr
        assert p["event_id"]
    m = d.metrics()
    assert m['autodeploy_events_total{result="accepted"}'] == 5
    assert m['autodeploy_events_total{result="ignored"}'] > 5  # blobs, pulls, untagged children
    assert m['autodeploy_events_total{result="rejected"}'] == 0
    assert m.get('autodeploy_webhook_requests_total{code="401"}', 0) == 0


def test_registry_with_wrong_token_retries_until_fixed(daemon, registry, tmp_path):
    """A registry sending the wrong token is refused with 401 every time it retries, and
    nothing it sends is accepted."""
    d = daemon(args=["--webhook-token", TOKEN])
    reg = registry(f"http://127.0.0.1:{d.port}/v1/webhooks/registry", token="wrong-token")
    layout = str(tmp_path / "oci")
    write_layout(layout, salt="wrong-token")
    reg.push(layout, "v1", "strava/foo-service:master-9", "--format", "oci")
    wait_for(lambda: d.metrics().get('autodeploy_webhook_requests_total{code="401"}', 0) >= 2,
             timeout=20, what="the registry to retry after 401")
    assert d.pushes() == []
