"""autodeployd's registry client against the real registry, through `autodeployd registry`
(the same client, settings and credentials the daemon uses): Debian's docker-registry open,
with htpasswd Basic auth, and with token auth (a token server of the tests' own, JWTs signed by
a key the test makes, as Docker Hub and Harbor do); a fault proxy in front for 429/5xx and
paginated tag lists. Passwords never appear in what the command prints.
"""
import base64
import contextlib
import json
import subprocess
import time

from conftest import free_port, run_cli, wait_for
from oci_images import write_image
from registry_helpers import fault_proxy, registry, token_server  # noqa: F401

USER, PASSWORD = "deployer", "deployer-password"


def auth_file(tmp_path, host, user=USER, password=PASSWORD):
    path = tmp_path / "config.json"
    cred = base64.b64encode(("%s:%s" % (user, password)).encode()).decode()
    path.write_text(json.dumps({"auths": {host: {"auth": cred}}}))
    return str(path)


def recording_server(host, body, content_type):
    """A loopback HTTP server answering every GET with body, recording each request's headers
    in the list it returns beside the server (stop it with shutdown() and server_close())."""
    import http.server
    import threading

    seen = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            seen.append(dict(self.headers))
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = http.server.ThreadingHTTPServer((host, 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, seen


@contextlib.contextmanager
def tls_registry(tmp_path, extra=""):
    """docker-registry on loopback speaking TLS with a certificate of the test's own (the CA
    file is yielded with the address); extra is appended to its config."""
    d = tmp_path / "tls"
    d.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout",
                    str(d / "key.pem"), "-out", str(d / "cert.pem"), "-days", "2", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    addr = "127.0.0.1:%d" % free_port()
    (d / "cfg.yml").write_text(
        "version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\n"
        "http:\n  addr: %s\n  secret: x\n  tls:\n    certificate: %s\n    key: %s\n%s"
        % (d / "data", addr, d / "cert.pem", d / "key.pem", extra))
    with open(d / "registry.log", "wb") as log:
        proc = subprocess.Popen(["docker-registry", "serve", str(d / "cfg.yml")], stdout=log,
                                stderr=log, stdin=subprocess.DEVNULL)
        try:
            yield addr, str(d / "cert.pem")
        finally:
            proc.terminate()
            proc.wait(timeout=10)


def ask(*args, auth=None):
    flags = ["--registry-auth", auth] if auth else []
    return run_cli("registry", *flags, *args, timeout=30)


def pushed(reg, tmp_path, tag="main-1", repo="team/app", created="2026-03-01T12:00:00Z"):
    layout = str(tmp_path / ("oci-" + tag))
    write_image(layout, tag, created=created, salt=tag)
    return reg.push(layout, tag, "%s:%s" % (repo, tag))


def test_open_registry_digest_tags_created(registry, tmp_path):
    reg = registry("open")
    d1 = pushed(reg, tmp_path, "main-1")
    pushed(reg, tmp_path, "main-2", created="2026-03-02T12:00:00Z")
    r = ask("digest", reg.addr + "/team/app:main-1")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == d1 == reg.digest("team/app:main-1")
    r = ask("tags", reg.addr + "/team/app")
    assert r.returncode == 0 and sorted(r.stdout.split()) == ["main-1", "main-2"], r
    r = ask("created", reg.addr + "/team/app@" + d1)
    assert r.returncode == 0 and int(r.stdout) == 1772366400, r  # 2026-03-01T12:00:00Z


def test_tag_never_pushed_is_not_found(registry, tmp_path):
    reg = registry("open")
    pushed(reg, tmp_path, "main-1")
    r = ask("digest", reg.addr + "/team/app:never-pushed")
    assert r.returncode == 1 and "not found" in r.stderr, r
    r = ask("digest", reg.addr + "/team/nothing:main-1")
    assert r.returncode == 1, r


def test_htpasswd_basic_auth(registry, tmp_path):
    reg = registry("htpasswd")
    d1 = pushed(reg, tmp_path)
    good = auth_file(tmp_path, reg.addr)
    r = ask("digest", reg.addr + "/team/app:main-1", auth=good)
    assert r.returncode == 0 and r.stdout.strip() == d1, r
    # Without credentials: refused, and said so.
    r = ask("digest", reg.addr + "/team/app:main-1")
    assert r.returncode == 3 and "credentials" in r.stderr, r
    # A wrong password: refused, and the password is nowhere in what is printed.
    bad = auth_file(tmp_path, reg.addr, password="s3cret-wrong-Pa55")
    r = ask("digest", reg.addr + "/team/app:main-1", auth=bad)
    assert r.returncode == 3, r
    assert "s3cret-wrong-Pa55" not in r.stdout + r.stderr
    assert base64.b64encode(b"deployer:s3cret-wrong-Pa55").decode() not in r.stdout + r.stderr


def test_token_auth_bearer_flow(registry, tmp_path):
    reg = registry("token")
    d1 = pushed(reg, tmp_path)
    good = auth_file(tmp_path, reg.addr)
    r = ask("digest", reg.addr + "/team/app:main-1", auth=good)
    assert r.returncode == 0 and r.stdout.strip() == d1, (r, reg.log_text()[-2000:])
    assert reg.token_server.count(user=USER) >= 1
    r = ask("tags", reg.addr + "/team/app", auth=good)
    assert r.returncode == 0 and r.stdout.split() == ["main-1"], r
    # Anonymous: the token grants nothing, the registry refuses.
    r = ask("digest", reg.addr + "/team/app:main-1")
    assert r.returncode == 3, r
    bad = auth_file(tmp_path, reg.addr, password="an0ther-Wrong-one")
    r = ask("digest", reg.addr + "/team/app:main-1", auth=bad)
    assert r.returncode == 3 and "an0ther-Wrong-one" not in r.stdout + r.stderr, r


def test_tags_list_follows_every_page(registry, fault_proxy, tmp_path):
    reg = registry("open")
    for i in range(1, 6):
        pushed(reg, tmp_path, "t%d" % i)
    proxy = fault_proxy(reg.addr)
    proxy.paginate_tags(default_n=2)
    r = ask("tags", proxy.addr + "/team/app")
    assert r.returncode == 0, r
    assert sorted(r.stdout.split()) == ["t1", "t2", "t3", "t4", "t5"], r
    assert proxy.count(kind="tags") == 3


def test_429_and_5xx_are_retried(registry, fault_proxy, tmp_path):
    reg = registry("open")
    d1 = pushed(reg, tmp_path)
    proxy = fault_proxy(reg.addr)
    proxy.fail_next(429, count=1, kind="manifest", retry_after=1)
    proxy.fail_next(503, count=1, kind="manifest")
    r = ask("digest", proxy.addr + "/team/app:main-1")
    assert r.returncode == 0 and r.stdout.strip() == d1, r
    assert proxy.count(kind="manifest") == 3


def test_unreachable_registry(tmp_path):
    port = free_port()
    r = ask("--registry-timeout", "1s", "digest", "127.0.0.1:%d/team/app:main-1" % port)
    assert r.returncode == 4 and "unreachable" in r.stderr, r


def test_https_registry_with_a_private_ca(tmp_path):
    """A loopback registry that speaks TLS with a certificate of the test's own CA: reached
    over https with --registry-ca; without it nothing is read."""
    with tls_registry(tmp_path) as (addr, cert):
        wait_for(lambda: ask("--registry-ca", cert, "tags", addr + "/team/app").returncode == 1,
                 timeout=15, what="the TLS registry answering (404: no such repository yet)")
        # Without the CA nothing is read: the certificate is refused at once (a certificate
        # does not heal by waiting: no retries, and no plain-http fallback).
        t0 = time.monotonic()
        r = ask("--registry-timeout", "20s", "tags", addr + "/team/app")
        assert r.returncode == 5 and not r.stdout and "TLS refused" in r.stderr, r
        assert time.monotonic() - t0 < 10, "a refused certificate was retried"

def test_identity_token_is_exchanged_for_an_access_token(registry, tmp_path):
    """config.json may hold an identity token (an OAuth2 refresh token, as `docker login` to
    some registries leaves it) instead of a password: it is POSTed to the token service with
    grant_type=refresh_token, and never printed."""
    reg = registry("token")
    d1 = pushed(reg, tmp_path)
    reg.token_server.refresh_tokens["idt-Secret-0042"] = USER
    path = tmp_path / "idt.json"
    path.write_text(json.dumps({"auths": {reg.addr: {"identitytoken": "idt-Secret-0042"}}}))
    r = ask("digest", reg.addr + "/team/app:main-1", auth=str(path))
    assert r.returncode == 0 and r.stdout.strip() == d1, r
    assert reg.token_server.count(user=USER) >= 1
    path.write_text(json.dumps({"auths": {reg.addr: {"identitytoken": "idt-Wrong-0042"}}}))
    r = ask("digest", reg.addr + "/team/app:main-1", auth=str(path))
    assert r.returncode == 3 and "idt-Wrong-0042" not in r.stdout + r.stderr, r


def test_blob_redirect_is_followed_without_the_credentials(registry, fault_proxy, tmp_path):
    """Registries send blobs from their storage (S3, a CDN) by redirect: the config blob is
    fetched there, and the registry's credentials do not travel with the redirect."""
    reg = registry("htpasswd")
    d1 = pushed(reg, tmp_path)
    manifest, _, _ = reg.manifest("team/app:main-1")
    config_digest = manifest["config"]["digest"]
    blob = reg.blob("team/app", config_digest)
    storage, seen = recording_server("127.0.0.1", blob, "application/octet-stream")
    try:
        proxy = fault_proxy(reg.addr)
        where = "http://127.0.0.1:%d/blobs/%s" % (storage.server_address[1], config_digest)
        proxy.fail_next(307, count=1, kind="blob", headers={"Location": where}, body="")
        r = ask("created", proxy.addr + "/team/app@" + d1, auth=auth_file(tmp_path, proxy.addr))
        assert r.returncode == 0 and int(r.stdout) == 1772366400, r
        assert len(seen) == 1 and "Authorization" not in seen[0], seen
    finally:
        storage.shutdown()
        storage.server_close()


def test_ping(registry, tmp_path):
    reg = registry("token")
    r = ask("ping", reg.addr, auth=auth_file(tmp_path, reg.addr))
    assert r.returncode == 0 and r.stdout.strip() == "ok", r
    r = ask("ping", reg.addr, auth=auth_file(tmp_path, reg.addr, password="nope-Nope-1"))
    assert r.returncode == 3 and "nope-Nope-1" not in r.stdout + r.stderr, r
    r = ask("--registry-timeout", "1s", "ping", "127.0.0.1:%d" % free_port())
    assert r.returncode == 4, r


def test_no_credentials_to_a_plain_http_realm_of_an_https_registry(tmp_path):
    """A registry reached over https whose challenge names a plain-http token realm on another
    host: the credentials are not sent there in clear (the token is asked anonymously)."""
    realm, seen = recording_server("127.0.0.2", b'{"token":"anonymous-nothing"}',
                                   "application/json")
    extra = ("auth:\n  token:\n    realm: http://127.0.0.2:%d/token\n    service: reg\n"
             "    issuer: test\n    rootcertbundle: %s\n")
    try:
        with tls_registry(tmp_path, extra % (realm.server_address[1],
                                             tmp_path / "tls" / "cert.pem")) as (addr, cert):
            auth = auth_file(tmp_path, addr, password="never-In-Clear-9")

            def refused():
                r = ask("--registry-ca", cert, "digest", addr + "/team/app:main-1", auth=auth)
                return r if r.returncode == 3 else None
            r = wait_for(refused, timeout=15, what="the registry refusing the anonymous token")
            assert seen and all("Authorization" not in h for h in seen), seen
            assert "never-In-Clear-9" not in r.stdout + r.stderr
    finally:
        realm.shutdown()
        realm.server_close()
