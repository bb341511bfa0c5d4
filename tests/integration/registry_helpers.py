"""The real registry for tests that talk to it with authentication: Debian's docker-registry
(distribution 2.8) on 127.0.0.1:<free port> in one of three auth modes, with a token server
(tests/registry/token_server.py) and a fault proxy (tests/registry/fault_proxy.py) to put in
front of it. Images come from OCI layouts (oci_layout.py, oci_images.py), pushed with skopeo.

    from registry_helpers import registry, token_server, fault_proxy  # noqa: F401 (fixtures)

    def test_x(registry, tmp_path):
        reg = registry("token")                 # or "open", "htpasswd"
        img = write_image(str(tmp_path / "oci"), "main-1", created="2026-01-01T00:00:00Z")
        reg.push(str(tmp_path / "oci"), "main-1", "team/app:main-1")  # as user ci (push+pull)
        reg.digest("team/app:main-1", creds=("deployer", "deployer-password"))
        proxy = reg.proxy()                     # a FaultProxy in front; stopped with reg

Modes:
  open      no auth (GET /v2/ answers 200).
  htpasswd  `auth: htpasswd` with bcrypt entries made by `htpasswd -B -b` (apache2-utils); users
            {name: password}, default ci / deployer. Basic auth only: every valid user may do
            everything (htpasswd has no per-user rights, so "pull-only" needs token mode).
  token     `auth: token` trusting a TokenServer: one is made (RSA key and self-signed
            certificate from openssl in the registry's workdir; token_header "kid" or "x5c";
            key_type "rsa" or "ec") unless token_server= is given (then it is not stopped here).
            users {name: (password, grants)} (token_server.DEFAULT_USERS: ci push+pull+delete,
            deployer pull only).
Notifications: notify_url=... sends the registry's events there with `Authorization: Bearer
<token>` (token=, as in test_registry.py); notify_url=None (the default) configures none;
notify_disabled=True writes the endpoint with `disabled: true` (the registry sends nothing).

Registry methods (creds: (user, password); left out: the registry's default pusher, "ci" in
the auth modes; None: anonymous):
  push(layout, ref, dest, *skopeo_args, creds=, addr=) -> the digest skopeo pushed
      (raises PushError with skopeo's message, e.g. on 401/denied)
  digest(ref) -> Docker-Content-Digest of HEAD manifests (None when 404)
  retag(ref, tag) -> the same manifest under another tag (API PUT, no skopeo)
  manifest(ref) -> (dict, media type, digest); config(ref, arch=None) -> the config blob (dict);
  created(ref) -> its "created" (None when missing)
  tags(repo, n=None) -> every tag (following Link pages); tag_pages(repo, n) -> the pages
      (distribution 2.8 ignores n and last: one page, every tag, in storage order, not sorted;
      proxy().paginate_tags() makes pages with Link as distribution 3 / Hub / GHCR do)
  catalog() -> repositories
  delete_manifest(repo, digest) -> DELETE by digest (also drops every tag naming it)
  restart() -> killed and started again, same address and storage (notifications queued in
      memory are lost)
  delete_tag(repo, tag) -> drops one tag, manifest kept (on disk: distribution 2.8 answers a
      DELETE by tag with 400 DIGEST_INVALID; the registry sends no event for it)
  api(creds=, addr=) -> a RegistryClient (HTTP API with the Basic/Bearer challenge dance)
  proxy() -> a started FaultProxy in front of this registry (stopped by stop())
  stop()
"""
import base64
import hashlib
import http.client
import json
import os
import re
import shutil
import subprocess
import sys
import urllib.parse

import pytest

from conftest import ROOT, free_port, wait_for

sys.path.insert(0, os.path.join(ROOT, "tests", "registry"))
from fault_proxy import FaultProxy  # noqa: E402
from token_server import DEFAULT_USERS, TokenServer, make_signing_cert  # noqa: E402

NOTIFY_TOKEN = "registry-hook-token"
DEFAULT_PASSWORDS = {name: pw for name, (pw, _) in DEFAULT_USERS.items()}  # ci, deployer
MANIFEST_ACCEPT = ", ".join([
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
])
INDEX_TYPES = ("application/vnd.oci.image.index.v1+json",
               "application/vnd.docker.distribution.manifest.list.v2+json")
_DEFAULT = object()


class PushError(Exception):
    """skopeo failed; str() holds its stderr."""


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers          # list of (name, value), repeated names kept
        self.body = body

    def header(self, name, default=None):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return default

    def header_all(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self):
        return json.loads(self.body)

    def __repr__(self):
        return "<Response %d %r>" % (self.status, self.body[:200])


def parse_challenge(value):
    """'Bearer realm="x",service="y",scope="a:b:pull,push"' -> ("bearer", {realm, service, scope}).
    Values may hold commas inside quotes; the scheme is case-insensitive."""
    scheme, _, rest = value.strip().partition(" ")
    params = {k.lower(): v for k, v in re.findall(r'([A-Za-z_]+)="([^"]*)"', rest)}
    return scheme.lower(), params


def next_link(resp):
    """The target of a `Link: <...>; rel="next"` header, or None."""
    for v in resp.header_all("Link"):
        m = re.match(r'\s*<([^>]*)>\s*;\s*rel="?next"?', v)
        if m:
            return m.group(1)
    return None


def _repo_of(path):
    m = re.match(r"^/v2/(.+?)/(manifests|tags|blobs)/", path)
    return m.group(1) if m else None


class RegistryClient:
    """The registry HTTP API over http.client, answering 401 challenges as a client would: Basic
    with the credentials; Bearer by getting a token from the realm (Basic credentials, or none)
    for the challenge's service and scope, cached per scope. token_fetches counts realm calls."""

    def __init__(self, addr, creds=None, timeout=10):
        self.addr = addr
        self.creds = creds
        self.timeout = timeout
        self.tokens = {}
        self.token_fetches = 0
        self.basic = False

    def _basic_header(self):
        user, pw = self.creds
        return "Basic " + base64.b64encode(("%s:%s" % (user, pw)).encode()).decode()

    def _raw(self, method, path, headers, body, addr=None):
        host, _, port = (addr or self.addr).rpartition(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=self.timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            r = conn.getresponse()
            return Response(r.status, r.getheaders(), r.read())
        finally:
            conn.close()

    def fetch_token(self, realm, service=None, scopes=()):
        """GET realm?service=..&scope=.. (Basic when creds); returns the parsed JSON answer."""
        q = []
        if service:
            q.append(("service", service))
        q.extend(("scope", s) for s in scopes)
        split = urllib.parse.urlsplit(realm)
        path = split.path + ("?" + urllib.parse.urlencode(q) if q else "")
        headers = {"Authorization": self._basic_header()} if self.creds else {}
        self.token_fetches += 1
        r = self._raw("GET", path, headers, None, addr=split.netloc)
        if r.status != 200:
            raise AssertionError("token server %s answered %d: %r" % (realm, r.status, r.body[:300]))
        return r.json()

    def _guess_scope(self, method, path):
        repo = _repo_of(path)
        if repo is None:
            return None
        action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method, "pull,push")
        return "repository:%s:%s" % (repo, action)

    def request(self, method, path, headers=None, body=None):
        hdrs = dict(headers or {})
        guess = self._guess_scope(method, path)
        if self.basic and self.creds:
            hdrs["Authorization"] = self._basic_header()
        elif guess in self.tokens:
            hdrs["Authorization"] = "Bearer " + self.tokens[guess]
        r = self._raw(method, path, hdrs, body)
        if r.status != 401:
            return r
        challenge = r.header("WWW-Authenticate")
        if not challenge:
            return r
        scheme, params = parse_challenge(challenge)
        if scheme == "basic":
            if not self.creds or self.basic:
                return r
            self.basic = True
            hdrs["Authorization"] = self._basic_header()
            return self._raw(method, path, hdrs, body)
        if scheme != "bearer" or "realm" not in params:
            return r
        scope = params.get("scope")
        answer = self.fetch_token(params["realm"], params.get("service"), [scope] if scope else [])
        token = answer.get("token") or answer.get("access_token")
        self.tokens[scope or guess] = token
        hdrs["Authorization"] = "Bearer " + token
        return self._raw(method, path, hdrs, body)


class Registry:
    def __init__(self, workdir, mode="open", notify_url=None, token=NOTIFY_TOKEN, users=None,
                 token_server=None, notify_disabled=False, token_header="kid", key_type="rsa",
                 anonymous=(), extra_config="", start_timeout=15):
        if mode not in ("open", "htpasswd", "token"):
            raise ValueError("mode must be open, htpasswd or token")
        self.workdir = str(workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.mode = mode
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.url = "http://" + self.addr
        self.data = os.path.join(self.workdir, "data")
        self.proc = None
        self.log = None
        self.token_server = None
        self._own_token_server = False
        self._proxies = []
        self.users = {}
        # Nothing in the user's own auth files may leak into skopeo.
        self.authfile = os.path.join(self.workdir, "auth.json")
        with open(self.authfile, "w") as f:
            json.dump({"auths": {}}, f)

        auth = ""
        if mode == "htpasswd":
            self.users = dict(DEFAULT_PASSWORDS if users is None else users)
            htfile = os.path.join(self.workdir, "htpasswd")
            for i, (name, pw) in enumerate(self.users.items()):
                subprocess.run(["htpasswd", "-B", "-b", *(["-c"] if i == 0 else []), htfile, name, pw],
                               check=True, capture_output=True, timeout=30, stdin=subprocess.DEVNULL)
            auth = "auth:\n  htpasswd:\n    realm: autodeploy-test-registry\n    path: %s\n" % htfile
        elif mode == "token":
            if token_server is None:
                table = dict(DEFAULT_USERS if users is None else users)
                table = {n: (v, ["pull", "push", "delete", "catalog"]) if isinstance(v, str) else v
                         for n, v in table.items()}
                key, cert = make_signing_cert(os.path.join(self.workdir, "token"), key_type)
                token_server = TokenServer(key, cert, users=table, header=token_header,
                                           anonymous=anonymous).start()
                self._own_token_server = True
            self.token_server = token_server
            self.users = {n: v[0] for n, v in token_server.users.items()}
            auth = token_server.registry_auth_config()
        if mode != "open":
            name = "ci" if "ci" in self.users else next(iter(self.users))
            self.default_creds = (name, self.users[name])
        else:
            self.default_creds = None

        notifications = ""
        if notify_url:
            notifications = """notifications:
  endpoints:
    - name: autodeploy
      url: {url}
      headers:
        Authorization: [Bearer {token}]
      timeout: 2s
      threshold: 3
      backoff: 1s
{disabled}""".format(url=notify_url, token=token,
                     disabled="      disabled: true\n" if notify_disabled else "")
        self.config_path = os.path.join(self.workdir, "registry.yml")
        with open(self.config_path, "w") as f:
            f.write("""version: 0.1
log:
  level: info
storage:
  filesystem:
    rootdirectory: {data}
  delete:
    enabled: true
http:
  addr: {addr}
  secret: autodeploy-test-secret
{auth}{notifications}{extra}""".format(data=self.data, addr=self.addr, auth=auth,
                                      notifications=notifications, extra=extra_config))
        self.log_path = os.path.join(self.workdir, "registry.log")
        self.start_timeout = start_timeout
        try:
            self._launch()
        except BaseException:
            self.stop()
            raise
        self.client = self.api()

    def _launch(self):
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(["docker-registry", "serve", self.config_path], stdout=self.log,
                                     stderr=self.log, stdin=subprocess.DEVNULL)
        wait_for(self._ready, timeout=self.start_timeout, what="docker-registry to answer /v2/")

    def restart(self):
        """Kills the registry (SIGKILL: its in-memory notification queue is lost, as in a crash
        or a pod eviction) and starts it again on the same address and storage."""
        self.proc.kill()
        self.proc.wait()
        self.log.close()
        self._launch()

    # ------------------------------------------------------------ life
    def _ready(self):
        if self.proc.poll() is not None:
            raise AssertionError("docker-registry exited %s:\n%s" % (self.proc.returncode, self.log_text()[-3000:]))
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
        try:
            conn.request("GET", "/v2/")
            return conn.getresponse().status in (200, 401)
        finally:
            conn.close()

    def log_text(self):
        try:
            with open(self.log_path, "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self):
        for p in self._proxies:
            p.stop()
        self._proxies = []
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.log is not None and not self.log.closed:
            self.log.close()
        if self._own_token_server and self.token_server is not None:
            self.token_server.stop()
            self._own_token_server = False

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def proxy(self, **kw):
        """A started FaultProxy in front of this registry; stopped by stop()."""
        p = FaultProxy(self.addr, **kw).start()
        self._proxies.append(p)
        return p

    # ------------------------------------------------------------ the HTTP API
    def _creds(self, creds):
        return self.default_creds if creds is _DEFAULT else creds

    def api(self, creds=_DEFAULT, addr=None):
        return RegistryClient(addr or self.addr, self._creds(creds))

    def _client(self, creds, addr=None):
        if creds is _DEFAULT and addr is None:
            return self.client
        return self.api(creds, addr)

    def request(self, method, path, headers=None, body=None, creds=_DEFAULT):
        return self._client(creds).request(method, path, headers, body)

    @staticmethod
    def _split(ref):
        if "@" in ref:
            repo, _, reference = ref.partition("@")
        else:
            repo, _, reference = ref.rpartition(":")
        return repo, reference

    def head_manifest(self, ref, creds=_DEFAULT, addr=None):
        repo, reference = self._split(ref)
        return self._client(creds, addr).request("HEAD", "/v2/%s/manifests/%s" % (repo, reference),
                                                 {"Accept": MANIFEST_ACCEPT})

    def digest(self, ref, creds=_DEFAULT, addr=None):
        """The Docker-Content-Digest a HEAD of the manifest answers (None: 404)."""
        r = self.head_manifest(ref, creds, addr)
        if r.status == 404:
            return None
        if r.status != 200:
            raise AssertionError("HEAD %s: %d %r" % (ref, r.status, r.header("WWW-Authenticate")))
        return r.header("Docker-Content-Digest")

    def manifest(self, ref, creds=_DEFAULT):
        repo, reference = self._split(ref)
        r = self._client(creds).request("GET", "/v2/%s/manifests/%s" % (repo, reference),
                                        {"Accept": MANIFEST_ACCEPT})
        if r.status != 200:
            raise AssertionError("GET manifest %s: %d %r" % (ref, r.status, r.body[:300]))
        return r.json(), r.header("Content-Type"), r.header("Docker-Content-Digest")

    def retag(self, ref, tag, creds=_DEFAULT):
        """Puts the manifest of ref (repo:tag or repo@digest) under another tag of the same
        repository, byte for byte (same digest), through the API; returns the digest."""
        repo, reference = self._split(ref)
        client = self._client(creds)
        r = client.request("GET", "/v2/%s/manifests/%s" % (repo, reference), {"Accept": MANIFEST_ACCEPT})
        if r.status != 200:
            raise AssertionError("GET manifest %s: %d" % (ref, r.status))
        put = client.request("PUT", "/v2/%s/manifests/%s" % (repo, tag),
                             {"Content-Type": r.header("Content-Type")}, r.body)
        if put.status != 201:
            raise AssertionError("PUT manifest %s:%s: %d %r" % (repo, tag, put.status, put.body[:300]))
        return put.header("Docker-Content-Digest")

    def blob(self, repo, digest, creds=_DEFAULT):
        r = self._client(creds).request("GET", "/v2/%s/blobs/%s" % (repo, digest))
        if r.status != 200:
            raise AssertionError("GET blob %s@%s: %d" % (repo, digest, r.status))
        return r.body

    def config(self, ref, arch=None, creds=_DEFAULT):
        """The image config (dict) of ref; for an index, the child for `arch` (default: the
        first)."""
        repo, _ = self._split(ref)
        m, mtype, _ = self.manifest(ref, creds)
        if mtype in INDEX_TYPES or m.get("manifests"):
            kids = m["manifests"]
            kid = next((k for k in kids if arch is None or k.get("platform", {}).get("architecture") == arch), None)
            if kid is None:
                raise AssertionError("no %s child in %s" % (arch, ref))
            m, _, _ = self.manifest("%s@%s" % (repo, kid["digest"]), creds)
        return json.loads(self.blob(repo, m["config"]["digest"], creds))

    def created(self, ref, arch=None, creds=_DEFAULT):
        return self.config(ref, arch, creds).get("created")

    def tag_pages(self, repo, n=None, creds=_DEFAULT, addr=None, limit=1000):
        """Every page of tags/list (following Link rel="next"), as a list of lists."""
        client = self._client(creds, addr)
        path = "/v2/%s/tags/list" % repo + ("?n=%d" % n if n else "")
        pages = []
        while path and len(pages) < limit:
            r = client.request("GET", path)
            if r.status != 200:
                raise AssertionError("GET %s: %d %r" % (path, r.status, r.body[:300]))
            pages.append(r.json().get("tags") or [])
            link = next_link(r)
            path = urllib.parse.urljoin(path, link) if link else None
        return pages

    def tags(self, repo, n=None, creds=_DEFAULT, addr=None):
        return [t for page in self.tag_pages(repo, n, creds, addr) for t in page]

    def catalog(self, creds=_DEFAULT):
        r = self._client(creds).request("GET", "/v2/_catalog")
        if r.status != 200:
            raise AssertionError("GET /v2/_catalog: %d" % r.status)
        return r.json()["repositories"]

    def delete_manifest(self, repo, digest, creds=_DEFAULT):
        """DELETE /v2/<repo>/manifests/<digest> (202); every tag naming it goes too."""
        r = self._client(creds).request("DELETE", "/v2/%s/manifests/%s" % (repo, digest))
        if r.status != 202:
            raise AssertionError("DELETE %s@%s: %d %r" % (repo, digest, r.status, r.body[:300]))
        return r

    def delete_tag(self, repo, tag):
        """Drops the tag, keeping the manifest (and any other tag of it). Distribution 2.8 has no
        API for this (a DELETE by tag answers 400 DIGEST_INVALID), so the tag's directory goes
        from the storage; the registry reads tags from disk on each request (no cache set)."""
        path = os.path.join(self.data, "docker", "registry", "v2", "repositories", *repo.split("/"),
                            "_manifests", "tags", tag)
        if not os.path.isdir(path):
            raise AssertionError("no tag %s:%s in %s" % (repo, tag, self.data))
        shutil.rmtree(path)

    # ------------------------------------------------------------ skopeo
    def _cred_args(self, flag, creds):
        creds = self._creds(creds)
        if creds is None:
            return ["--%sno-creds" % flag]
        return ["--%screds" % flag, "%s:%s" % creds]

    def push(self, layout, ref, dest, *extra, creds=_DEFAULT, addr=None, timeout=60):
        """skopeo copy oci:<layout>:<ref> docker://<addr>/<dest>; returns the pushed digest."""
        digestfile = os.path.join(self.workdir, "pushed.digest")
        if os.path.exists(digestfile):
            os.unlink(digestfile)
        cmd = ["skopeo", "--insecure-policy", "copy", "--dest-tls-verify=false",
               "--authfile", self.authfile, *self._cred_args("dest-", creds),
               "--digestfile", digestfile, *extra,
               "oci:%s:%s" % (layout, ref), "docker://%s/%s" % (addr or self.addr, dest)]
        r = subprocess.run(cmd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise PushError("skopeo push of %s to %s failed (%d): %s"
                            % (ref, dest, r.returncode, r.stderr.decode("utf-8", "replace").strip()))
        with open(digestfile) as f:
            return f.read().strip()

    def inspect_digest(self, ref, creds=_DEFAULT):
        """sha256 of the raw manifest as skopeo reads it (an independent check of digest())."""
        cmd = ["skopeo", "inspect", "--raw", "--tls-verify=false", "--authfile", self.authfile,
               *self._cred_args("", creds), "docker://%s/%s" % (self.addr, ref)]
        raw = subprocess.run(cmd, check=True, capture_output=True, timeout=30,
                             stdin=subprocess.DEVNULL).stdout
        return "sha256:" + hashlib.sha256(raw).hexdigest()


# ---------------------------------------------------------------- fixtures

@pytest.fixture
def registry(tmp_path):
    """Factory: registry(mode="open"|"htpasswd"|"token", notify_url=None, token=NOTIFY_TOKEN,
    **Registry kwargs) starts one; all (and their token servers and proxies) stop afterwards."""
    made = []

    def start(mode="open", **kw):
        workdir = tmp_path / ("registry-%d" % len(made))
        r = Registry(workdir, mode=mode, **kw)
        made.append(r)
        return r

    yield start
    for r in reversed(made):
        r.stop()


@pytest.fixture
def token_server(tmp_path):
    """Factory: token_server(key_type="rsa", **TokenServer kwargs) -> a started TokenServer with
    a fresh key and certificate; all are stopped afterwards."""
    made = []

    def start(key_type="rsa", **kw):
        key, cert = make_signing_cert(str(tmp_path / ("token-%d" % len(made))), key_type)
        ts = TokenServer(key, cert, **kw).start()
        made.append(ts)
        return ts

    yield start
    for ts in reversed(made):
        ts.stop()


@pytest.fixture
def fault_proxy():
    """Factory: fault_proxy("127.0.0.1:port") -> a started FaultProxy; all stopped afterwards."""
    made = []

    def start(upstream, **kw):
        p = FaultProxy(upstream, **kw).start()
        made.append(p)
        return p

    yield start
    for p in reversed(made):
        p.stop()
