"""A registry token server for tests: what Docker Hub's auth.docker.io, Harbor's /service/token
and GitLab's /jwt/auth do for a registry configured with `auth: token`.

The registry answers an unauthenticated request with
    401  WWW-Authenticate: Bearer realm="<this server>/token",service="...",scope="repository:team/app:pull"
the client GETs  <realm>?service=<service>&scope=<scope>[&scope=...]  (Basic credentials or none)
and receives     {"token": JWT, "access_token": JWT, "expires_in": N, "issued_at": RFC 3339}
then sends       Authorization: Bearer <JWT>  to the registry, which checks the JWT's signature
against its `rootcertbundle` and the requested action against the JWT's `access` claim.

What Debian's docker-registry (distribution 2.8.2) accepts, found by running it:
  * header `kid` = the libtrust fingerprint of the signing key (SHA-256 of the DER
    SubjectPublicKeyInfo, first 240 bits, base32 without padding, 12 groups of 4 joined by ':'),
    where the key's certificate is in rootcertbundle;
  * or header `x5c` = [base64 DER certificate] (a self-signed certificate that is itself in
    rootcertbundle verifies);
  * RS256 (RSA key) or ES256 (EC P-256 key, raw r||s signature as PyJWT writes it);
  * claims iss (= the registry's `issuer`), aud (= its `service`; a single STRING: distribution 2.8
    cannot parse an array `aud` and rejects the token as malformed), exp/nbf (60 s leeway), iat,
    jti, sub, access = [{"type": "repository", "name": "team/app", "actions": ["pull", "push"]}].
  * A DELETE of a manifest needs the action "delete"; GET /v2/_catalog needs
    {"type": "registry", "name": "catalog", "actions": ["*"]}.

Users: a table {name: (password, grants)}; grants is a list of actions for every repository
(["pull"], ["pull", "push", "delete"], "*" for all) or a dict {fnmatch pattern: actions}; the
action "catalog" in the list (or under the pattern "registry:catalog") grants the catalog. A
token grants only the requested actions the user has (Docker Hub and Harbor do the same: asking
for pull,push with a pull-only account gives a pull token, and the registry then says
insufficient_scope). A wrong password or unknown user: 401. No credentials: a token with the
`anonymous` actions (default none, as Hub and Harbor answer for a private repository), or 401
when anonymous=False.

POST /token with grant_type=password (the OAuth2 form the Docker CLI tries first when it has an
identity token) is answered too, and grant_type=refresh_token for the tokens in
refresh_tokens (identity token -> user).

Test controls: fail_next(status, count) answers the next requests with an error (or mode="hang"
or mode="close"); delay = seconds added to every answer; requests (records) and count(...) for
asserting caching; issued (claims of every token given out); make_token(...) to forge tokens.

Runs in-process (TokenServer(...).start(), a context manager) or as a script:
    python3 tests/registry/token_server.py --make-cert /tmp/tok --port 5001 \
        --user ci:ci-password:pull,push,delete --user deployer:deployer-password:pull
which prints the realm and the registry's `auth: token` section, and serves until killed.
"""
import argparse
import base64
import datetime
import fnmatch
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
import uuid

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "emulator"))
import httpbase  # noqa: E402

DEFAULT_SERVICE = "autodeploy-test-registry"
DEFAULT_ISSUER = "autodeploy-test-token-issuer"
# Who may do what by default: ci pushes (and deletes), deployer only pulls, like a CI account and
# the read-only robot account autodeployd is meant to run with.
DEFAULT_USERS = {
    "ci": ("ci-password", ["pull", "push", "delete", "catalog"]),
    "deployer": ("deployer-password", ["pull"]),
}


def make_signing_cert(directory, key_type="rsa", cn=DEFAULT_ISSUER, days=2):
    """Makes a key and a self-signed certificate with the openssl CLI (RSA 2048 or EC P-256);
    returns (key_path, cert_path). The certificate is what the registry's rootcertbundle holds."""
    os.makedirs(directory, exist_ok=True)
    key = os.path.join(directory, "token-signing-key.pem")
    cert = os.path.join(directory, "token-signing-cert.pem")
    if key_type == "rsa":
        newkey = ["-newkey", "rsa:2048"]
    elif key_type in ("ec", "p256", "es256"):
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    else:
        raise ValueError("key_type must be rsa or ec")
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert,
                    "-days", str(days), "-subj", "/CN=" + cn],
                   check=True, capture_output=True, timeout=60, stdin=subprocess.DEVNULL)
    return key, cert


def libtrust_kid(public_key):
    """libtrust's key ID (what distribution matches a JWT's `kid` against): base32 of the first
    240 bits of SHA-256 of the DER SubjectPublicKeyInfo, in 12 groups of 4 joined by ':'."""
    der = public_key.public_bytes(serialization.Encoding.DER,
                                  serialization.PublicFormat.SubjectPublicKeyInfo)
    b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
    return ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))


def parse_scope(scope):
    """'repository:team/app:pull,push' -> ('repository', 'team/app', ['pull', 'push']).
    The name is what lies between the first and the last ':' (a name may hold a port: never
    here, but a registry host in a name would)."""
    head, _, actions = scope.rpartition(":")
    typ, _, name = head.partition(":")
    if not typ or not name:
        raise ValueError("malformed scope %r" % scope)
    return typ, name, [a for a in actions.split(",") if a]


def rfc3339(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Handler(httpbase.Handler):
    server_version = "test-token-server/1"

    def do_GET(self):
        self.owner._handle(self, "GET")

    def do_POST(self):
        self.owner._handle(self, "POST")

    def do_HEAD(self):
        self.owner._handle(self, "HEAD")


class TokenServer(httpbase.Owner):
    """key_path/cert_path: the signing key and its certificate (make_signing_cert).
    header: "kid" (libtrust fingerprint), "x5c" (the certificate) or "both".
    users: {name: (password, grants)}; anonymous: actions for a request without credentials
    ([] by default: a token granting nothing), or False to answer it 401.
    expires_in: seconds of validity written in the token and the answer; fields: which of
    "token" / "access_token" the answer carries; issued_at / expires_in can be left out with
    include_issued_at=False / include_expires_in=False."""

    log_name = "token-server"

    def __init__(self, key_path, cert_path, users=None, anonymous=(), service=DEFAULT_SERVICE,
                 issuer=DEFAULT_ISSUER, expires_in=300, header="kid", host="127.0.0.1", port=0,
                 fields=("token", "access_token"), include_issued_at=True, include_expires_in=True,
                 quiet=True):
        with open(key_path, "rb") as f:
            self.private_key = serialization.load_pem_private_key(f.read(), password=None)
        with open(cert_path, "rb") as f:
            self.cert = x509.load_pem_x509_certificate(f.read())
        self.key_path, self.cert_path = key_path, cert_path
        if isinstance(self.private_key, rsa.RSAPrivateKey):
            self.alg = "RS256"
        elif isinstance(self.private_key, ec.EllipticCurvePrivateKey):
            self.alg = "ES256"
        else:
            raise ValueError("the signing key must be RSA or EC P-256")
        self.kid = libtrust_kid(self.private_key.public_key())
        if header not in ("kid", "x5c", "both"):
            raise ValueError("header must be kid, x5c or both")
        self.header = header
        self.users = dict(DEFAULT_USERS if users is None else users)
        self.refresh_tokens = {}  # identity token -> user, for grant_type=refresh_token
        self.anonymous = anonymous
        self.service, self.issuer = service, issuer
        self.expires_in = expires_in
        self.fields = tuple(fields)
        self.include_issued_at, self.include_expires_in = include_issued_at, include_expires_in
        self._init_owner(host, port, quiet)
        self.delay = 0.0            # seconds added to every answer
        self._failures = []
        self.requests = []          # one record per request (see _handle)
        self.issued = []            # claims of every token given out

    # ------------------------------------------------------------ life (the rest: httpbase.Owner)
    @property
    def realm(self):
        return self.url + "/token"

    def start(self):
        self._serve(_Handler, "token-server")
        self.log("listening on %s" % self.url)
        return self

    def registry_auth_config(self, indent="  "):
        """The `auth:` section of a docker-registry config that trusts this server."""
        return ("auth:\n{i}token:\n{i}{i}realm: {realm}\n{i}{i}service: {service}\n"
                "{i}{i}issuer: {issuer}\n{i}{i}rootcertbundle: {cert}\n").format(
                    i=indent, realm=self.realm, service=self.service, issuer=self.issuer,
                    cert=self.cert_path)

    # ------------------------------------------------------------ test controls
    def fail_next(self, status=500, count=1, mode=None, body=None, retry_after=None):
        """The next `count` requests are answered with `status` (and a JSON error body), or, with
        mode="hang", held until stop(); mode="close": the connection is closed unanswered."""
        if mode not in (None, "status", "hang", "close"):
            raise ValueError("mode must be status, hang or close")
        with self.lock:
            self._failures.append({"status": int(status), "count": int(count), "mode": mode or "status",
                                   "body": body, "retry_after": retry_after})

    def count(self, user=Ellipsis, scope=None, status=None):
        """Requests recorded, optionally only those of `user` (None: anonymous), asking for
        `scope` (exact string among the scopes asked), answered with `status`."""
        with self.lock:
            recs = list(self.requests)
        return sum(1 for r in recs
                   if (user is Ellipsis or r["user"] == user)
                   and (scope is None or scope in r["scopes"])
                   and (status is None or r["status"] == status))

    def reset_counts(self):
        with self.lock:
            self.requests.clear()
            self.issued.clear()

    def grants(self, user, typ, name):
        """Actions `user` (None: anonymous) may have on (typ, name)."""
        if user is None:
            table = self.anonymous or []
        else:
            table = self.users[user][1]
        if isinstance(table, str):
            table = [table]
        if typ == "registry" and name == "catalog":
            if isinstance(table, dict):
                return ["*"] if table.get("registry:catalog") else []
            return ["*"] if ("catalog" in table or "*" in table) else []
        if typ != "repository":
            return []
        if isinstance(table, dict):
            out = []
            for pattern, actions in table.items():
                if pattern != "registry:catalog" and fnmatch.fnmatchcase(name, pattern):
                    out.extend([actions] if isinstance(actions, str) else actions)
        else:
            out = list(table)
        if "*" in out:
            return ["pull", "push", "delete", "*"]
        return [a for a in out if a != "catalog"]

    def make_token(self, sub, access, expires_in=None, header=None, **overrides):
        """A signed JWT as this server gives out; overrides replace or add claims (aud=..., exp=...,
        iss=...); a claim set to None is left out."""
        now = int(time.time())
        exp_in = self.expires_in if expires_in is None else expires_in
        claims = {"iss": self.issuer, "sub": sub or "", "aud": self.service, "exp": now + exp_in,
                  "nbf": now - 1, "iat": now, "jti": uuid.uuid4().hex, "access": access}
        claims.update(overrides)
        claims = {k: v for k, v in claims.items() if v is not None}
        hdr = {}
        mode = header or self.header
        if mode in ("kid", "both"):
            hdr["kid"] = self.kid
        if mode in ("x5c", "both"):
            hdr["x5c"] = [base64.b64encode(self.cert.public_bytes(serialization.Encoding.DER)).decode()]
        token = jwt.encode(claims, self.private_key, algorithm=self.alg, headers=hdr)
        return token, claims

    # ------------------------------------------------------------ serving
    def _take_failure(self):
        with self.lock:
            for f in self._failures:
                if f["count"] > 0:
                    f["count"] -= 1
                    return dict(f)
            return None

    def _answer(self, h, status, obj, headers=()):
        body = json.dumps(obj).encode()
        h.send_response(status)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        if h.command != "HEAD":
            h.wfile.write(body)

    def _handle(self, h, method):
        url = urllib.parse.urlsplit(h.path)
        query = urllib.parse.parse_qs(url.query, keep_blank_values=True)
        body = h._read_body()
        if method == "POST":
            form = urllib.parse.parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
            for k, v in form.items():
                query.setdefault(k, []).extend(v)
        rec = {"time": time.time(), "method": method, "path": url.path, "query": query,
               "scopes": [s for v in query.get("scope", []) for s in v.split(" ") if s],
               "service": (query.get("service") or [None])[0], "user": None,
               "authenticated": False, "status": None, "granted": None, "fault": None}
        with self.lock:
            self.requests.append(rec)
        if self.delay:
            self._stopping.wait(self.delay)
        fail = self._take_failure()
        if fail:
            rec["fault"] = fail["mode"]
            if fail["mode"] == "hang":
                self._stopping.wait()
                h.close_connection = True
                return
            if fail["mode"] == "close":
                h.close_connection = True
                return
            rec["status"] = fail["status"]
            hdrs = [("Retry-After", str(fail["retry_after"]))] if fail["retry_after"] is not None else []
            self._answer(h, fail["status"], fail["body"] if fail["body"] is not None else
                         {"errors": [{"code": "UNAVAILABLE", "message": "injected failure"}]}, hdrs)
            return
        if url.path != "/token":
            rec["status"] = 404
            self._answer(h, 404, {"errors": [{"code": "NOT_FOUND", "message": url.path}]})
            return

        # Who is asking.
        user = None
        if method == "POST":
            grant = (query.get("grant_type") or [""])[0]
            if grant == "refresh_token":
                # An identity token (config.json "identitytoken") is a refresh token.
                user = self.refresh_tokens.get((query.get("refresh_token") or [""])[0])
                if user is None:
                    rec["status"] = 401
                    self._answer(h, 401, {"error": "invalid_grant"})
                    return
                creds = (user, self.users[user][0])
            elif grant != "password":
                rec["status"] = 400
                self._answer(h, 400, {"error": "unsupported_grant_type"})
                return
            else:
                user = (query.get("username") or [""])[0]
                password = (query.get("password") or [""])[0]
                creds = (user, password)
        else:
            creds = None
            auth = h.headers.get("Authorization") or ""
            if auth[:6].lower() == "basic ":
                try:
                    u, _, p = base64.b64decode(auth[6:].strip()).decode().partition(":")
                    creds = (u, p)
                except (ValueError, UnicodeDecodeError):
                    creds = ("", None)
        if creds is not None:
            u, p = creds
            if u not in self.users or self.users[u][0] != p:
                rec["status"] = 401
                self._answer(h, 401, {"details": "incorrect username or password",
                                      "errors": [{"code": "UNAUTHORIZED",
                                                  "message": "incorrect username or password"}]},
                             [("WWW-Authenticate", 'Basic realm="%s"' % self.realm)])
                return
            user = u
            rec["authenticated"] = True
        elif self.anonymous is False:
            rec["status"] = 401
            self._answer(h, 401, {"errors": [{"code": "UNAUTHORIZED", "message": "authentication required"}]},
                         [("WWW-Authenticate", 'Basic realm="%s"' % self.realm)])
            return
        rec["user"] = user

        service = rec["service"]
        if service is not None and service != self.service:
            rec["status"] = 400
            self._answer(h, 400, {"errors": [{"code": "DENIED", "message": "unknown service %r" % service}]})
            return

        access = []
        for scope in rec["scopes"]:
            try:
                typ, name, wanted = parse_scope(scope)
            except ValueError:
                rec["status"] = 400
                self._answer(h, 400, {"errors": [{"code": "DENIED", "message": "malformed scope"}]})
                return
            have = self.grants(user, typ, name)
            given = [a for a in wanted if a in have or "*" in have]
            access.append({"type": typ, "name": name, "actions": given})
        token, claims = self.make_token(user or "", access)
        rec["granted"] = access
        rec["status"] = 200
        with self.lock:
            self.issued.append(claims)
        out = {}
        for f in self.fields:
            out[f] = token
        if self.include_expires_in:
            out["expires_in"] = self.expires_in
        if self.include_issued_at:
            out["issued_at"] = rfc3339(claims["iat"])
        self._answer(h, 200, out)


def _parse_user(text):
    name, password, actions = (text.split(":", 2) + [""])[:3]
    return name, (password, [a for a in actions.split(",") if a] or ["pull"])


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--key")
    p.add_argument("--cert")
    p.add_argument("--make-cert", metavar="DIR", help="make a key and certificate in DIR (openssl)")
    p.add_argument("--key-type", default="rsa", choices=["rsa", "ec"])
    p.add_argument("--header", default="kid", choices=["kid", "x5c", "both"])
    p.add_argument("--service", default=DEFAULT_SERVICE)
    p.add_argument("--issuer", default=DEFAULT_ISSUER)
    p.add_argument("--expires-in", type=int, default=300)
    p.add_argument("--user", action="append", default=[], metavar="NAME:PASSWORD:ACTIONS",
                   help="e.g. ci:secret:pull,push (default: ci push+pull, deployer pull)")
    p.add_argument("--anonymous", default="", help="actions anonymous requests get ('none': 401)")
    p.add_argument("--verbose", action="store_true")
    a = p.parse_args(argv)
    if a.make_cert:
        a.key, a.cert = make_signing_cert(a.make_cert, a.key_type, cn=a.issuer)
    if not a.key or not a.cert:
        p.error("--key and --cert, or --make-cert DIR")
    users = dict(_parse_user(u) for u in a.user) if a.user else None
    anonymous = False if a.anonymous == "none" else [x for x in a.anonymous.split(",") if x]
    ts = TokenServer(a.key, a.cert, users=users, anonymous=anonymous, service=a.service,
                     issuer=a.issuer, expires_in=a.expires_in, header=a.header, host=a.host,
                     port=a.port, quiet=not a.verbose).start()
    print("realm: %s\nkid: %s\n\n%s" % (ts.realm, ts.kid, ts.registry_auth_config()), flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    done.wait()
    ts.stop()


if __name__ == "__main__":
    main()
