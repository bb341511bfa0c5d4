"""The registry test infrastructure itself: docker-registry in its three auth modes
(registry_helpers.py), the token server (tests/registry/token_server.py), the fault proxy
(tests/registry/fault_proxy.py) and images with chosen creation times (oci_images.py).

No autodeployd here: these prove the parts behave as the registries they stand for, so that
tests of autodeployd's authenticated registry client can trust them.
"""
import base64
import datetime
import http.client
import http.server
import json
import os
import re
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import pytest

from conftest import ROOT, free_port, wait_for
from oci_images import EPOCH, series, write_image, write_index
from registry_helpers import (MANIFEST_ACCEPT, PushError, RegistryClient, fault_proxy,  # noqa: F401
                              next_link, parse_challenge, registry, token_server)

LIBTRUST_KID = re.compile(r"^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$")


def _get(url, headers=None, method="GET"):
    """urllib, returning (status, headers, body) for 2xx and 4xx/5xx alike."""
    req = urllib.request.Request(url, headers=headers or {}, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def _basic(user, password):
    return {"Authorization": "Basic " + base64.b64encode(("%s:%s" % (user, password)).encode()).decode()}


def _jwt_part(token, i):
    part = token.split(".")[i]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_open_registry_push_and_head_digest(registry, tmp_path):
    reg = registry("open")
    layout = str(tmp_path / "oci")
    img = write_image(layout, "main-1", created="2026-03-01T12:00:00Z")
    pushed = reg.push(layout, "main-1", "team/app:main-1")
    # An OCI manifest goes up byte for byte: the digest is the layout's.
    assert pushed == img.digest
    status, headers, body = _get(reg.url + "/v2/team/app/manifests/main-1",
                                 {"Accept": MANIFEST_ACCEPT}, method="HEAD")
    assert status == 200 and body == b""
    assert headers["Docker-Content-Digest"] == img.digest
    assert headers["Content-Type"] == "application/vnd.oci.image.manifest.v1+json"
    assert reg.digest("team/app:main-1") == reg.inspect_digest("team/app:main-1") == img.digest
    assert reg.digest("team/app:nope") is None
    assert reg.tags("team/app") == ["main-1"]


def test_htpasswd_push_needs_the_right_password(registry, tmp_path):
    reg = registry("htpasswd")
    assert reg.users == {"ci": "ci-password", "deployer": "deployer-password"}
    layout = str(tmp_path / "oci")
    img = write_image(layout, "v1")
    assert reg.push(layout, "v1", "team/app:v1", creds=("ci", "ci-password")) == img.digest
    with pytest.raises(PushError, match="(?i)unauthorized|authentication required"):
        reg.push(layout, "v1", "team/app:v2", creds=None)
    with pytest.raises(PushError, match="(?i)unauthorized|authentication required"):
        reg.push(layout, "v1", "team/app:v3", creds=("ci", "wrong"))

    status, headers, _ = _get(reg.url + "/v2/")
    assert status == 401
    assert parse_challenge(headers["WWW-Authenticate"]) == ("basic", {"realm": "autodeploy-test-registry"})
    assert _get(reg.url + "/v2/", _basic("deployer", "nope"))[0] == 401
    assert _get(reg.url + "/v2/", _basic("deployer", "deployer-password"))[0] == 200
    assert reg.digest("team/app:v1", creds=("deployer", "deployer-password")) == img.digest
    assert reg.tags("team/app") == ["v1"]


def test_token_bearer_flow_by_hand(registry, tmp_path):
    """401 challenge -> token from the realm -> 200, with urllib only, as a client does it."""
    reg = registry("token")
    ts = reg.token_server
    layout = str(tmp_path / "oci")
    img = write_image(layout, "main-1")
    assert reg.push(layout, "main-1", "team/app:main-1") == img.digest   # as ci
    ts.reset_counts()

    url = reg.url + "/v2/team/app/manifests/main-1"
    status, headers, _ = _get(url, {"Accept": MANIFEST_ACCEPT}, method="HEAD")
    assert status == 401
    scheme, params = parse_challenge(headers["WWW-Authenticate"])
    assert scheme == "bearer"
    assert params == {"realm": ts.realm, "service": ts.service, "scope": "repository:team/app:pull"}

    query = urllib.parse.urlencode({"service": params["service"], "scope": params["scope"]})
    status, headers, body = _get(params["realm"] + "?" + query, _basic("deployer", "deployer-password"))
    assert status == 200, body
    answer = json.loads(body)
    assert answer["token"] == answer["access_token"]
    assert answer["expires_in"] == 300
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", answer["issued_at"])
    header, claims = _jwt_part(answer["token"], 0), _jwt_part(answer["token"], 1)
    assert header["alg"] == "RS256" and LIBTRUST_KID.match(header["kid"]) and header["kid"] == ts.kid
    assert claims["iss"] == ts.issuer and claims["aud"] == ts.service and claims["sub"] == "deployer"
    assert claims["nbf"] <= claims["iat"] < claims["exp"] and claims["jti"]
    assert claims["access"] == [{"type": "repository", "name": "team/app", "actions": ["pull"]}]

    bearer = {"Authorization": "Bearer " + answer["token"], "Accept": MANIFEST_ACCEPT}
    status, headers, _ = _get(url, bearer, method="HEAD")
    assert status == 200
    assert headers["Docker-Content-Digest"] == img.digest
    status, _, body = _get(reg.url + "/v2/team/app/tags/list", bearer)
    assert status == 200 and json.loads(body)["tags"] == ["main-1"]
    # The token is for team/app only.
    status, headers, _ = _get(reg.url + "/v2/team/other/tags/list", bearer)
    assert status == 401 and 'error="insufficient_scope"' in headers["WWW-Authenticate"]

    # A wrong password is refused by the token server; no credentials get a token that grants
    # nothing (as Docker Hub and Harbor answer for a private repository).
    assert _get(params["realm"] + "?" + query, _basic("deployer", "bad"))[0] == 401
    status, _, body = _get(params["realm"] + "?" + query)
    assert status == 200
    assert _jwt_part(json.loads(body)["token"], 1)["access"] == [
        {"type": "repository", "name": "team/app", "actions": []}]
    status, headers, _ = _get(url, {"Authorization": "Bearer " + json.loads(body)["token"]}, method="HEAD")
    assert status == 401
    assert ts.count() == 3 and ts.count(user="deployer", status=200) == 1 and ts.count(status=401) == 1


def test_token_rights_pull_only_user_and_deletes(registry, tmp_path):
    reg = registry("token")
    ts = reg.token_server
    layout = str(tmp_path / "oci")
    a = write_image(layout, "a")
    b = write_image(layout, "b")
    deployer = ("deployer", "deployer-password")
    with pytest.raises(PushError, match="(?i)denied|unauthorized"):
        reg.push(layout, "a", "team/app:a", creds=deployer)
    # The token server gave the pull-only user a pull token when push was asked for.
    asked = [r for r in ts.requests if r["user"] == "deployer" and r["status"] == 200]
    assert any(g["actions"] == ["pull"] for r in asked for g in r["granted"]
               if "repository:team/app:pull,push" in r["scopes"])
    with pytest.raises(PushError):
        reg.push(layout, "a", "team/app:a", creds=("ci", "wrong"))

    assert reg.push(layout, "a", "team/app:a") == a.digest
    assert reg.push(layout, "b", "team/app:b") == b.digest
    assert reg.retag("team/app:a", "a-too") == a.digest
    assert sorted(reg.tags("team/app", creds=deployer)) == ["a", "a-too", "b"]   # storage order
    assert reg.catalog() == ["team/app"]

    # DELETE needs the "delete" action: deployer has not got it.
    r = reg.request("DELETE", "/v2/team/app/manifests/" + b.digest, creds=deployer)
    assert r.status == 401 and 'scope="repository:team/app:delete"' in r.header("WWW-Authenticate")
    # A tag goes alone (on disk); a manifest deleted by digest takes its tags with it.
    reg.delete_tag("team/app", "a-too")
    assert reg.digest("team/app:a-too") is None and reg.digest("team/app:a") == a.digest
    reg.delete_manifest("team/app", b.digest)
    assert reg.digest("team/app:b") is None
    assert reg.tags("team/app", creds=deployer) == ["a"]


def test_token_x5c_header_and_ec_key_and_what_is_refused(registry, token_server, tmp_path):
    reg = registry("token", token_header="x5c", key_type="ec")
    ts = reg.token_server
    assert ts.alg == "ES256"
    layout = str(tmp_path / "oci")
    img = write_image(layout, "v1")
    assert reg.push(layout, "v1", "team/app:v1") == img.digest
    client = reg.api(("deployer", "deployer-password"))
    assert client.request("HEAD", "/v2/team/app/manifests/v1",
                          {"Accept": MANIFEST_ACCEPT}).header("Docker-Content-Digest") == img.digest
    assert "x5c" in _jwt_part(client.tokens["repository:team/app:pull"], 0)

    url = reg.url + "/v2/team/app/tags/list"
    access = [{"type": "repository", "name": "team/app", "actions": ["pull"]}]

    def status_with(token):
        return _get(url, {"Authorization": "Bearer " + token})[0]

    assert status_with(ts.make_token("x", access, header="kid")[0]) == 200
    assert status_with(ts.make_token("x", access, header="x5c")[0]) == 200
    # distribution 2.8 reads `aud` as one string: an array makes the token malformed.
    assert status_with(ts.make_token("x", access, aud=[ts.service])[0]) == 401
    assert status_with(ts.make_token("x", access, iss="someone-else")[0]) == 401
    assert status_with(ts.make_token("x", access, expires_in=-120)[0]) == 401   # past the 60 s leeway
    # A key whose certificate is not in rootcertbundle, by kid or by x5c.
    foreign = token_server(service=ts.service, issuer=ts.issuer)
    assert status_with(foreign.make_token("x", access, header="kid")[0]) == 401
    assert status_with(foreign.make_token("x", access, header="x5c")[0]) == 401


def test_tags_pagination_follows_link(registry, tmp_path):
    """Debian's docker-registry (distribution 2.8) ignores ?n= and &last= on tags/list: every tag,
    in storage order, no Link. The fault proxy paginates as distribution 3 / Hub / GHCR do."""
    reg = registry("token")
    layout = str(tmp_path / "oci")
    write_image(layout, "t")
    reg.push(layout, "t", "team/app:t1")
    for t in ("t5", "t3", "t2", "t4"):
        reg.retag("team/app:t1", t)
    creds = ("deployer", "deployer-password")
    direct = reg.api(creds).request("GET", "/v2/team/app/tags/list?n=2")
    assert sorted(direct.json()["tags"]) == ["t1", "t2", "t3", "t4", "t5"] and direct.header("Link") is None

    proxy = reg.proxy()
    proxy.paginate_tags()
    client = reg.api(creds, addr=proxy.addr)
    path, pages, links = "/v2/team/app/tags/list?n=2", [], []
    while path:
        r = client.request("GET", path)
        assert r.status == 200
        pages.append(r.json()["tags"])
        link = next_link(r)
        links.append(r.header("Link"))
        path = urllib.parse.urljoin(path, link) if link else None
    assert pages == [["t1", "t2"], ["t3", "t4"], ["t5"]]
    assert links == ['</v2/team/app/tags/list?last=t2&n=2>; rel="next"',
                     '</v2/team/app/tags/list?last=t4&n=2>; rel="next"', None]
    assert client.token_fetches == 1            # one pull token served every page
    assert proxy.count(method="GET", kind="tags") == 4   # the 401 challenge, then 3 pages
    assert reg.tag_pages("team/app", n=2, creds=creds, addr=proxy.addr) == pages
    assert reg.tag_pages("team/app", n=2, creds=creds) == [direct.json()["tags"]]
    # Absolute Link URLs (some registries send them) and a server-side page size.
    proxy.paginate_tags(default_n=3, absolute=True)
    r = client.request("GET", "/v2/team/app/tags/list")
    assert r.json()["tags"] == ["t1", "t2", "t3"]
    assert next_link(r) == "http://%s/v2/team/app/tags/list?last=t3&n=3" % proxy.addr


def test_fault_proxy_429_then_pass_through(registry, tmp_path):
    reg = registry("token")
    layout = str(tmp_path / "oci")
    img = write_image(layout, "v1")
    proxy = reg.proxy()
    # A push through the proxy: chunked uploads, Location headers pointing back at the proxy.
    assert reg.push(layout, "v1", "team/app:v1", addr=proxy.addr) == img.digest
    assert proxy.count(kind="upload") >= 2 and proxy.count(method="PUT", kind="manifest") == 1
    proxy.reset_counts()

    client = reg.api(("deployer", "deployer-password"), addr=proxy.addr)
    proxy.fail_next(429, kind="tags", retry_after=3)
    r = client.request("GET", "/v2/team/app/tags/list")
    assert r.status == 429 and r.header("Retry-After") == "3"
    assert r.json()["errors"][0]["code"] == "TOOMANYREQUESTS"
    r = client.request("GET", "/v2/team/app/tags/list")         # 401 challenge, token, 200
    assert r.status == 200 and r.json()["tags"] == ["v1"]

    proxy.fail_next(503, method="HEAD", path=r"/manifests/")
    r = client.request("HEAD", "/v2/team/app/manifests/v1", {"Accept": MANIFEST_ACCEPT})
    assert r.status == 503 and r.body == b""
    r = client.request("HEAD", "/v2/team/app/manifests/v1", {"Accept": MANIFEST_ACCEPT})
    assert r.status == 200 and r.body == b"" and r.header("Docker-Content-Digest") == img.digest
    assert int(r.header("Content-Length")) == img.size

    # An unauthenticated request through the proxy gets the registry's challenge unchanged.
    status, headers, _ = _get(proxy.url + "/v2/team/app/tags/list")
    assert status == 401 and parse_challenge(headers["WWW-Authenticate"])[1]["realm"] == reg.token_server.realm

    proxy.fail_next(mode="close", kind="tags")
    with pytest.raises((http.client.RemoteDisconnected, ConnectionError)):
        client.request("GET", "/v2/team/app/tags/list")
    proxy.fail_next(mode="delay", seconds=0.3, kind="tags")
    t0 = time.monotonic()
    assert client.request("GET", "/v2/team/app/tags/list").status == 200
    assert time.monotonic() - t0 >= 0.3

    # The registry's own Link header (catalog pagination, which 2.8 does have) passes through.
    reg.push(layout, "v1", "team/other:v1")
    r = reg.api(addr=proxy.addr).request("GET", "/v2/_catalog?n=1")            # as ci
    assert r.json() == {"repositories": ["team/app"]}
    assert r.header_all("Link") == ['</v2/_catalog?last=team%2Fapp&n=1>; rel="next"']

    assert proxy.kinds() == {("GET", "tags"): 6, ("HEAD", "manifest"): 2, ("GET", "catalog"): 2}
    assert proxy.counts()[("HEAD", "/v2/team/app/manifests/v1")] == 2
    assert [r["fault"] for r in proxy.records(kind="tags")] == ["status", None, None, None, "close", "delay"]


def test_created_times_readable_from_the_config_blob(registry, tmp_path):
    reg = registry("open")
    layout = str(tmp_path / "oci")
    main1, main2 = series(layout, "main", 2, step=datetime.timedelta(hours=5))
    repro = write_image(layout, "repro", created=EPOCH)
    bare = write_image(layout, "bare", created=None)
    latest1 = write_image(layout, "latest", created="2026-02-01T00:00:00Z")
    idx, kids = write_index(layout, "multi", {"amd64": "2026-01-01T00:00:00Z",
                                              "arm64": "2026-01-02T00:00:00Z"})
    assert len({main1.digest, main2.digest, repro.digest, bare.digest, latest1.digest}) == 5
    for ref in ("main-1", "main-2", "repro", "bare", "latest"):
        reg.push(layout, ref, "team/app:" + ref)
    reg.push(layout, "multi", "team/app:multi", "--all")

    assert reg.created("team/app:main-1") == main1.created == "2026-01-01T00:00:00Z"
    assert reg.created("team/app:main-2") == main2.created == "2026-01-01T05:00:00Z"
    assert reg.created("team/app:repro") == "1970-01-01T00:00:00Z"
    assert "created" not in reg.config("team/app:bare") and bare.created is None
    assert reg.created("team/app:multi", arch="arm64") == kids["arm64"].created
    assert reg.digest("team/app:multi") == idx.digest

    # The config blob by hand: manifest -> config.digest -> blob.
    status, _, body = _get(reg.url + "/v2/team/app/manifests/main-2", {"Accept": MANIFEST_ACCEPT})
    config_digest = json.loads(body)["config"]["digest"]
    assert config_digest == main2.config_digest
    status, _, body = _get(reg.url + "/v2/team/app/blobs/" + config_digest)
    assert status == 200 and json.loads(body)["created"] == "2026-01-01T05:00:00Z"

    # :latest again with new content: the tag moves.
    latest2 = write_image(layout, "latest", created="2026-02-02T00:00:00Z")
    assert latest2.digest != latest1.digest
    assert reg.push(layout, "latest", "team/app:latest") == latest2.digest
    assert reg.digest("team/app:latest") == latest2.digest
    assert reg.created("team/app:latest") == "2026-02-02T00:00:00Z"
    # Same call on a fresh layout: same digest (deterministic).
    again = write_image(str(tmp_path / "oci2"), "main-1", created="2026-01-01T00:00:00Z")
    assert again.digest == main1.digest


def test_token_server_counts_failures_and_caching(token_server, fault_proxy):
    ts = token_server()
    client = RegistryClient("127.0.0.1:1", creds=("ci", "ci-password"))
    scope = "repository:team/app:pull"
    assert client.fetch_token(ts.realm, ts.service, [scope])["access_token"]
    ts.fail_next(500)
    with pytest.raises(AssertionError, match="answered 500"):
        client.fetch_token(ts.realm, ts.service, [scope])
    ts.delay = 0.2
    t0 = time.monotonic()
    client.fetch_token(ts.realm, ts.service, [scope])
    assert time.monotonic() - t0 >= 0.2
    ts.delay = 0
    # Several scopes in one request (as containers/image sends for a cross-repository mount).
    answer = client.fetch_token(ts.realm, ts.service, [scope, "repository:team/other:pull,push"])
    assert _jwt_part(answer["token"], 1)["access"][1]["actions"] == ["pull", "push"]
    assert ts.count() == 4 and ts.count(user="ci", status=200) == 3 and ts.count(status=500) == 1
    assert ts.count(scope=scope) == 4
    # The OAuth2 form (POST, grant_type=password) as the Docker CLI uses with an identity token.
    form = urllib.parse.urlencode({"grant_type": "password", "username": "deployer", "password": "deployer-password",
                                   "service": ts.service, "scope": scope, "client_id": "test"}).encode()
    with urllib.request.urlopen(urllib.request.Request(ts.realm, data=form), timeout=10) as r:
        assert _jwt_part(json.loads(r.read())["access_token"], 1)["sub"] == "deployer"
    ts.reset_counts()
    # The fault proxy works in front of the token server too: a reset, then a pass-through.
    proxy = fault_proxy("127.0.0.1:%d" % ts.port)
    proxy.fail_next(mode="reset", kind="token")
    with pytest.raises(ConnectionError):
        client.fetch_token(proxy.url + "/token", ts.service, [scope])
    assert client.fetch_token(proxy.url + "/token", ts.service, [scope])["token"]
    assert proxy.kinds() == {("GET", "token"): 2} and ts.count() == 1


def test_notifications_reach_the_endpoint_with_the_bearer_header(registry, tmp_path):
    got = []

    class Sink(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            got.append((self.headers.get("Authorization"), json.loads(body)))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *a):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        url = "http://127.0.0.1:%d/hook" % server.server_address[1]
        reg = registry("htpasswd", notify_url=url, token="hook-secret")
        quiet = registry("open", notify_url=url, notify_disabled=True)
        layout = str(tmp_path / "oci")
        img = write_image(layout, "v1")
        quiet.push(layout, "v1", "team/quiet:v1")
        reg.push(layout, "v1", "team/app:v1")

        def pushed():
            return [e for auth, env in got for e in env["events"]
                    if e["action"] == "push" and e["target"].get("tag") == "v1"]
        events = wait_for(pushed, timeout=15, what="the push event")
        assert events[0]["target"]["repository"] == "team/app"
        assert events[0]["target"]["digest"] == img.digest
        assert events[0]["actor"]["name"] == "ci"
        assert {auth for auth, _ in got} == {"Bearer hook-secret"}
        assert not [e for _, env in got for e in env["events"] if e["target"]["repository"] == "team/quiet"]
    finally:
        server.shutdown()
        server.server_close()


def test_token_server_runs_as_a_script(tmp_path):
    port = free_port()
    proc = subprocess.Popen([sys.executable, os.path.join(ROOT, "tests", "registry", "token_server.py"),
                             "--make-cert", str(tmp_path / "cert"), "--port", str(port),
                             "--user", "bot:s3cret:pull"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        realm = "http://127.0.0.1:%d/token" % port
        q = "?service=autodeploy-test-registry&scope=repository:a/b:pull,push"
        status, _, body = wait_for(lambda: _get(realm + q, _basic("bot", "s3cret")), timeout=15,
                                   what="the token server script")
        assert status == 200
        assert _jwt_part(json.loads(body)["token"], 1)["access"][0]["actions"] == ["pull"]
        assert _get(realm + q, _basic("bot", "wrong"))[0] == 401
    finally:
        proc.terminate()
        out = proc.communicate(timeout=10)[0].decode()
    assert "rootcertbundle:" in out and realm in out
