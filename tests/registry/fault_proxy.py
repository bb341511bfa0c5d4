"""A loopback HTTP proxy in front of a registry (or any HTTP server) that injects faults and
counts requests.

    proxy = FaultProxy("127.0.0.1:5000").start()     # or `with FaultProxy(...) as proxy:`
    proxy.fail_next(429, count=2, kind="tags", retry_after=1)   # the next 2 tags/list -> 429
    proxy.fail_next(503, method="HEAD", path=r"/manifests/")     # the next HEAD manifest -> 503
    proxy.fail_next(mode="delay", seconds=2, kind="blob")        # the next blob GET is slow
    proxy.fail_next(mode="close", kind="manifest")               # ... closed unanswered
    proxy.fail_next(mode="reset", kind="manifest")               # ... reset (RST)
    proxy.fail_next(mode="hang", kind="manifest")                # ... held until stop()
    proxy.counts()   -> Counter({("HEAD", "/v2/team/app/manifests/main-1"): 3, ...})
    proxy.kinds()    -> Counter({("HEAD", "manifest"): 3, ("GET", "tags"): 1})

A rule matches on method (None: any), kind (see endpoint_kind) and path (a regular expression
searched in the path, without the query); rules are tried in the order they were added, each
used `count` times. Everything else passes through unchanged: status, body and every header,
repeated ones included (WWW-Authenticate, Link, Docker-Content-Digest, Location, Range); the
Host header is forwarded as the client sent it, so the registry's absolute Location URLs point
back at the proxy. A HEAD answer keeps the upstream Content-Length and carries no body.
Request bodies (Content-Length or chunked, as skopeo sends blob uploads) are forwarded with a
Content-Length.

    proxy.paginate_tags()   # tags/list in pages of ?n=, with Link rel="next" (2.8 cannot)

Every request is recorded (method, path, query, status, fault, kind, time). Runs in-process;
`python3 tests/registry/fault_proxy.py --upstream 127.0.0.1:5000 --port 5100` runs it alone
(pass-through with a request log).
"""
import argparse
import collections
import http.client
import json
import os
import re
import socket
import struct
import sys
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "emulator"))
import httpbase  # noqa: E402

HOP_BY_HOP = {"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
              "trailer", "trailers", "transfer-encoding", "upgrade", "proxy-connection"}

_KINDS = [
    ("base", re.compile(r"^/v2/?$")),
    ("catalog", re.compile(r"^/v2/_catalog$")),
    ("tags", re.compile(r"^/v2/.+/tags/list$")),
    ("manifest", re.compile(r"^/v2/.+/manifests/[^/]+$")),
    ("upload", re.compile(r"^/v2/.+/blobs/uploads(/.*)?$")),
    ("blob", re.compile(r"^/v2/.+/blobs/[^/]+$")),
    ("token", re.compile(r"^/token$")),
]

STATUS_CODES = {429: "TOOMANYREQUESTS", 401: "UNAUTHORIZED", 403: "DENIED", 404: "NOT_FOUND",
                500: "UNKNOWN", 502: "UNAVAILABLE", 503: "UNAVAILABLE", 504: "UNAVAILABLE"}


def endpoint_kind(path):
    """'base', 'catalog', 'tags', 'manifest', 'upload', 'blob', 'token' or 'other' for a request
    path (query already removed)."""
    for name, rx in _KINDS:
        if rx.match(path):
            return name
    return "other"


class _Handler(httpbase.Handler):
    server_version = "test-fault-proxy/1"

    def _any(self):
        self.owner._handle(self)

    do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _any


class FaultProxy(httpbase.Owner):
    """upstream: "host:port" of the server behind the proxy (loopback)."""

    log_name = "fault-proxy"

    def __init__(self, upstream, host="127.0.0.1", port=0, timeout=30, quiet=True):
        uhost, _, uport = upstream.rpartition(":")
        self.upstream = (uhost or "127.0.0.1", int(uport))
        self._init_owner(host, port, quiet)
        self.timeout = timeout
        self._rules = []
        self._paginate = None
        self.requests = []

    # ------------------------------------------------------------ life (the rest: httpbase.Owner)
    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def start(self):
        self._serve(_Handler, "fault-proxy")
        self.log("listening on %s, upstream %s:%d" % (self.url, *self.upstream))
        return self

    # ------------------------------------------------------------ test controls
    def fail_next(self, status=None, count=1, method=None, path=None, kind=None, mode=None,
                  retry_after=None, seconds=None, body=None, headers=None):
        """The next `count` requests matching method/kind/path get:
           mode "status" (default when status is given): `status` with a registry-style JSON
                error body (or `body`: bytes, str or a JSON-able object), `Retry-After:
                retry_after` when given, and any extra `headers` {name: value};
           mode "delay": passed through after `seconds`;
           mode "close": the connection closed unanswered; "reset": closed with a TCP RST;
           mode "hang": held unanswered until stop().
        Returns the rule (a dict; its "left" counts down, "hits" up)."""
        mode = mode or ("status" if status is not None else None)
        if mode not in ("status", "delay", "close", "reset", "hang"):
            raise ValueError("give a status, or mode delay/close/reset/hang")
        if mode == "status" and status is None:
            raise ValueError("mode status needs a status")
        if mode == "delay" and seconds is None:
            raise ValueError("mode delay needs seconds")
        rule = {"mode": mode, "status": status, "left": int(count), "hits": 0,
                "method": method.upper() if method else None, "kind": kind,
                "path": re.compile(path) if path else None, "retry_after": retry_after,
                "seconds": seconds, "body": body, "headers": dict(headers or {})}
        with self.lock:
            self._rules.append(rule)
        return rule

    def paginate_tags(self, enabled=True, default_n=None, max_n=None, order="sorted", absolute=False):
        """Makes tags/list answers paginated as distribution 3, Docker Hub, GHCR and Harbor do,
        which Debian's docker-registry (distribution 2.8) does not: it ignores `n` and `last`
        and answers every tag, in storage order, with no Link header. The proxy then takes the
        page out of the registry's full answer: tags ordered ("sorted": lexically, as
        distribution 3; "as-is": the registry's order), those after `last`, at most n of them
        (n: the request's, else default_n; capped at max_n), and when more remain a
        `Link: </v2/<name>/tags/list?last=<last tag of the page>&n=<n>>; rel="next"` (absolute:
        http://<Host>/v2/... instead of a relative URL). enabled=False stops it."""
        if order not in ("sorted", "as-is"):
            raise ValueError("order must be sorted or as-is")
        with self.lock:
            self._paginate = ({"default_n": default_n, "max_n": max_n, "order": order,
                               "absolute": absolute} if enabled else None)

    def _page(self, h, data, cfg):
        doc = json.loads(data)
        tags = list(doc.get("tags") or [])
        if cfg["order"] == "sorted":
            tags.sort()
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(h.path).query)
        n = int(q["n"][0]) if q.get("n") and q["n"][0].isdigit() else cfg["default_n"]
        if cfg["max_n"] and (n is None or n > cfg["max_n"]):
            n = cfg["max_n"]
        last = (q.get("last") or [None])[0]
        if last is not None:
            if cfg["order"] == "sorted":
                tags = [t for t in tags if t > last]
            elif last in tags:
                tags = tags[tags.index(last) + 1:]
        page = tags[:n] if n else tags
        link = None
        if n and len(tags) > n:
            target = "/v2/%s/tags/list?%s" % (doc.get("name"), urllib.parse.urlencode(
                [("last", page[-1]), ("n", n)]))
            if cfg["absolute"]:
                target = "http://%s%s" % (h.headers.get("Host") or self.addr, target)
            link = '<%s>; rel="next"' % target
        doc["tags"] = page
        return json.dumps(doc).encode(), link

    def clear(self):
        """Drops every rule not used up yet."""
        with self.lock:
            self._rules.clear()

    def reset_counts(self):
        with self.lock:
            self.requests.clear()

    def records(self, method=None, kind=None, path=None):
        with self.lock:
            recs = list(self.requests)
        rx = re.compile(path) if path else None
        return [r for r in recs if (method is None or r["method"] == method.upper())
                and (kind is None or r["kind"] == kind) and (rx is None or rx.search(r["path"]))]

    def count(self, method=None, kind=None, path=None):
        return len(self.records(method, kind, path))

    def counts(self):
        """Counter of (method, path) over every request recorded."""
        return collections.Counter((r["method"], r["path"]) for r in self.records())

    def kinds(self):
        """Counter of (method, kind), e.g. {("HEAD", "manifest"): 4, ("GET", "tags"): 2}."""
        return collections.Counter((r["method"], r["kind"]) for r in self.records())

    # ------------------------------------------------------------ serving
    def _match(self, method, kind, path):
        with self.lock:
            for rule in self._rules:
                if rule["left"] <= 0:
                    continue
                if rule["method"] and rule["method"] != method:
                    continue
                if rule["kind"] and rule["kind"] != kind:
                    continue
                if rule["path"] and not rule["path"].search(path):
                    continue
                rule["left"] -= 1
                rule["hits"] += 1
                return rule
        return None

    def _send(self, h, status, headers, body, head=False):
        h.send_response(status)
        for k, v in headers:
            h.send_header(k, v)
        h.end_headers()
        if body and not head:
            h.wfile.write(body)

    def _handle(self, h):
        method = h.command
        split = urllib.parse.urlsplit(h.path)
        path = split.path
        kind = endpoint_kind(path)
        rec = {"time": time.time(), "method": method, "path": path, "query": split.query,
               "kind": kind, "status": None, "fault": None}
        with self.lock:
            self.requests.append(rec)
        body = h._read_body()
        rule = self._match(method, kind, path)
        if rule:
            rec["fault"] = rule["mode"]
            if rule["mode"] == "delay":
                if self._stopping.wait(rule["seconds"]):
                    h.close_connection = True
                    return
            elif rule["mode"] == "hang":
                self._stopping.wait()
                h.close_connection = True
                return
            elif rule["mode"] in ("close", "reset"):
                if rule["mode"] == "reset":
                    h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                h.close_connection = True
                return
            else:
                rec["status"] = rule["status"]
                out = rule["body"]
                if out is None:
                    code = STATUS_CODES.get(rule["status"], "UNKNOWN")
                    out = {"errors": [{"code": code, "message": "injected by the fault proxy",
                                       "detail": None}]}
                if not isinstance(out, (bytes, str)):
                    out = json.dumps(out)
                if isinstance(out, str):
                    out = out.encode()
                hdrs = [("Content-Type", "application/json; charset=utf-8"),
                        ("Docker-Distribution-Api-Version", "registry/2.0"),
                        ("Content-Length", str(len(out)))]
                if rule["retry_after"] is not None:
                    hdrs.append(("Retry-After", str(rule["retry_after"])))
                hdrs.extend(rule["headers"].items())
                self._send(h, rule["status"], hdrs, out, head=(method == "HEAD"))
                return
        self._pass(h, method, rec, body)

    def _pass(self, h, method, rec, body):
        conn = http.client.HTTPConnection(*self.upstream, timeout=self.timeout)
        try:
            conn.putrequest(method, h.path, skip_host=True, skip_accept_encoding=True)
            for k, v in h.headers.items():
                if k.lower() in HOP_BY_HOP or k.lower() == "content-length":
                    continue
                conn.putheader(k, v)
            if body or method in ("POST", "PUT", "PATCH") or h.headers.get("Content-Length") is not None:
                conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body if body else None)
            r = conn.getresponse()
            data = r.read()
            status, upstream_headers = r.status, r.getheaders()
        except (OSError, http.client.HTTPException) as ex:
            rec["status"] = 502
            msg = json.dumps({"errors": [{"code": "UNAVAILABLE", "message": "upstream: %r" % ex}]}).encode()
            self._send(h, 502, [("Content-Type", "application/json"), ("Content-Length", str(len(msg)))], msg)
            return
        finally:
            conn.close()
        rec["status"] = status
        head = method == "HEAD"
        hdrs = []
        with self.lock:
            paginate = self._paginate
        if paginate and method == "GET" and rec["kind"] == "tags" and status == 200:
            data, link = self._page(h, data, paginate)
            rec["paged"] = True
            if link:
                hdrs.append(("Link", link))
        for k, v in upstream_headers:
            lk = k.lower()
            if lk in HOP_BY_HOP:
                continue
            if lk == "content-length" and not head:
                continue
            if lk == "link" and rec.get("paged"):
                continue
            hdrs.append((k, v))
        if not head and status not in (204, 304) and not (100 <= status < 200):
            hdrs.append(("Content-Length", str(len(data))))
        self.log("%s %s -> %d" % (method, h.path, status))
        self._send(h, status, hdrs, data, head=head)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--upstream", required=True, help="host:port of the registry")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--paginate-tags", action="store_true", help="tags/list in pages of ?n= with Link")
    a = p.parse_args(argv)
    proxy = FaultProxy(a.upstream, host=a.host, port=a.port, quiet=False).start()
    if a.paginate_tags:
        proxy.paginate_tags()
    print(proxy.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    proxy.stop()


if __name__ == "__main__":
    main()
