"""Fault injection, hostile input: malformed and truncated JSON, deep nesting, invalid UTF-8,
10 MB bodies, wrong content types, thousands of events in one envelope, slow-loris clients,
and header and path tricks (in the webhook request, and in the app ids Marathon lists).

Each test asserts: no crash (alive, /healthz answers), nothing deployed that should not be
(Marathon writes counted), and every accepted push ends visibly. test_http.py already covers
the basic answers (a few malformed bodies, 5,000 levels of nesting, one invalid UTF-8 pusher,
413 by declared length, a chunked body over the cap, text/plain); these go further.
"""
import json
import http.client
import socket
import time

import pytest

from conftest import fixture_bytes, wait_for
from deploy_helpers import (app, marathon, push, records, start_daemon, wait_records,  # noqa: F401
                            writes)
from faults_helpers import (assert_alive, assert_all_terminal, image_of, raw_http, status_of,
                            versions, wait_terminal)

PUSH = fixture_bytes("registry", "push_oci_manifest.json")
IMG = "registry.example.com:5000/strava/foo-service:master-1"
V1 = "application/vnd.docker.distribution.events.v1+json"


def envelope(*evs):
    return json.dumps({"events": list(evs)}).encode()


def event(**over):
    ev = json.loads(PUSH)["events"][0]
    for k, v in over.items():
        if k in ("tag", "repository", "digest", "mediaType"):
            ev["target"][k] = v
        elif k == "host":
            ev["request"]["host"] = v
        elif k == "pusher":
            ev["actor"] = {"name": v}
        else:
            ev[k] = v
    return ev


def assert_outputs_clean(d):
    """Whatever went in, what comes out is valid UTF-8 JSON: the API and every log line."""
    for path in ("/v1/pushes", "/v1/deployments"):
        raw = d.request("GET", path).body
        json.loads(raw.decode("utf-8"))  # strict: raises on invalid UTF-8
    d.request("GET", "/metrics").body.decode("utf-8")
    with open(d.log_path, "rb") as f:
        for line in f.read().splitlines():
            json.loads(line.decode("utf-8"))


# ------------------------------------------------------------------ malformed and truncated

def test_every_truncation_of_a_valid_envelope_is_refused_whole(daemon):
    """A three-event envelope cut at 60 places (as a dropped connection would leave it): each
    is a 400, none queues part of its events, the daemon keeps serving; the whole body is then
    accepted, all three events."""
    d = daemon()
    evs = [event(id=f"aaaaaaaa-0000-4000-8000-00000000000{i}", tag=f"cut-{i}",
                 digest="sha256:" + f"{i}" * 64) for i in range(3)]
    body = envelope(*evs)
    cuts = sorted(set(int(len(body) * k / 60) for k in range(60)) - {0})
    for n in cuts:
        r = d.post_event(body[:n])
        assert r.status == 400, (n, r.status, r.body)
        assert "error" in r.json()
    assert d.pushes() == []
    r = d.post_event(body)
    assert r.status == 202 and r.json()["accepted"] == 3
    assert_alive(d)


@pytest.mark.parametrize("body", [
    b'{"events":[{"id":"x","action":"push","target":"not an object"}]}',
    b'{"events":[null, 1, "s", [], true]}',
    b'{"events":[{"action":{"push":1},"target":{"tag":["master"]}}]}',
    b'{"events":[{"id":"x","action":"push","target":{"mediaType":'
    b'"application/vnd.oci.image.manifest.v1+json","tag":12,"digest":null,"repository":7}}]}',
    b'{"events":[],"events":5}',
    b'{"events":[' + b'{},' * 20000 + b'{}]}',
    b'{"events":[{"id":"' + b"A" * 500000 + b'"}]}',
    b'{"events":[{"timestamp":"9999-99-99T99:99:99Z","action":"push"}]}',
    b'\xef\xbb\xbf{"events":[]}',
    b'{"events":[1e999999, -1e999999, 123456789012345678901234567890]}',
    b'{"events":[NaN, Infinity]}',
    b"{'events':[]}",
    b'{"events":[]}\x00',
    b'\x00' * 1000,
], ids=lambda b: repr(b[:40]))
def test_malformed_envelopes_never_crash_nor_queue(daemon, body):
    d = daemon()
    r = d.post_event(body)
    assert r.status in (202, 400), (r.status, r.body)
    if r.status == 202:
        assert r.json()["accepted"] == 0, r.body
    assert d.pushes() == []
    assert_alive(d)
    assert_outputs_clean(d)


# ------------------------------------------------------------------ deeply nested

@pytest.mark.parametrize("where", ["top", "event", "field"])
def test_deeply_nested_json(daemon, where):
    """A million levels (close to 1 MiB) at the top, inside the events list and inside an event
    field: answered within 2 s with a 400 or a 202 that queues nothing; no stack overflow."""
    d = daemon()
    depth = 500000
    if where == "top":
        body = b"[" * depth + b"]" * depth
    elif where == "event":
        body = b'{"events":[' + b"[" * depth + b"]" * depth + b"]}"
    else:
        body = (b'{"events":[{"action":"push","actor":' + b'{"a":' * (depth // 6) + b"1" +
                b"}" * (depth // 6) + b"}]}")
    assert len(body) <= 1048576
    t0 = time.monotonic()
    r = d.post_event(body)
    assert time.monotonic() - t0 < 2
    assert r.status in (202, 400), r.status
    assert d.pushes() == []
    assert_alive(d)


# ------------------------------------------------------------------ invalid UTF-8 and odd escapes

BAD_UTF8 = [b"\xff", b"\xc0\xaf", b"\xe2\x82", b"\xf8\x88\x80\x80\x80", b"\x80", b"\xfe\xfe"]
# Sequences that look well-formed to a lead-byte/continuation-byte check but are not UTF-8:
# a UTF-16 surrogate, overlong 3- and 4-byte forms, a code point above U+10FFFF.
SNEAKY_UTF8 = [b"\xed\xa0\x80", b"\xe0\x80\xaf", b"\xf0\x80\x80\xaf", b"\xf4\x90\x80\x80"]


def test_invalid_utf8_in_every_string_field(daemon):
    """Invalid UTF-8 (stray bytes, overlong 2-byte, truncated sequences) in the event id,
    repository, tag, registry host, media type and pusher. Reference fields with it are
    rejected (202, never queued); the pusher is cleaned; the API and log stay valid UTF-8."""
    d = daemon()
    base = json.loads(PUSH)["events"][0]
    for k, bad in enumerate(BAD_UTF8):
        for field in ("id", "repository", "tag", "host", "mediaType", "pusher"):
            ev = json.loads(json.dumps(base))
            ev["id"] = f"bbbbbbbb-0000-4000-8000-{k:06d}{len(field):06d}"
            ev["target"]["tag"] = f"utf-{k}-{field}"
            ev["target"]["digest"] = "sha256:%032x%032x" % (k + 1, len(field))
            marker = "\u0001MARK\u0001"
            if field == "id":
                ev["id"] = marker
            elif field == "host":
                ev["request"]["host"] = marker
            elif field == "pusher":
                ev["actor"] = {"name": marker}
            else:
                ev["target"][field] = marker
            raw = json.dumps({"events": [ev]}).encode().replace(b"\\u0001MARK\\u0001", b"x" + bad + b"y")
            assert bad in raw
            r = d.post_event(raw)
            assert r.status in (202, 400), (field, bad, r.status)
            if r.status == 202 and field in ("repository", "tag", "host"):
                assert r.json()["accepted"] == 0, (field, bad, r.body)
    assert_alive(d)
    assert_outputs_clean(d)
    assert len(d.pushes()) == len(BAD_UTF8)  # the pusher ones, with the name cleaned


def test_pusher_with_sneaky_invalid_utf8_neither_breaks_outputs_nor_the_deploy(daemon, marathon):
    """The pusher's name carries byte sequences that are not UTF-8 although every byte after
    the first is a continuation byte. The push must still deploy (the name cleaned) and every
    output stay valid UTF-8."""
    emu = marathon([app("/staging/foo", IMG)])
    d = start_daemon(daemon, emu)
    for k, bad in enumerate(SNEAKY_UTF8):
        body, _ = push(tag=f"master-{70 + k}", pusher="\u0001M\u0001",
                       ts=f"2026-11-25T12:00:0{k}Z")
        body = body.replace(b"\\u0001M\\u0001", b"eve" + bad + b"l")
        assert bad in body
        assert d.post_event(body).json()["accepted"] == 1
        wait_records(d, "/staging/foo", k + 1)
    assert_alive(d)
    states = [(r["tag"], r["state"], r["reason"]) for r in records(d, "/staging/foo")]
    assert_outputs_clean(d)
    assert all(st == "succeeded" for _, st, _ in states), states


@pytest.mark.parametrize("field,value", [
    ("tag", "master\u0000evil"),
    ("repository", "strava/foo-service\u0000/../evil"),
    ("tag", "\ud800master"),
    ("tag", "master\udfff"),
    ("host", "127.0.0.1:5000\u0000.evil.example"),
])
def test_escaped_nul_and_lone_surrogates_are_not_truncated_into_a_valid_push(daemon, field, value):
    """JSON escapes that C strings cannot hold: "master\\u0000evil" must not become a push of
    tag "master" (a C string cut at the NUL), nor a lone surrogate a valid tag."""
    d = daemon()
    ev = event(**{field: value})
    r = d.post_event(json.dumps({"events": [ev]}).encode())
    assert r.status in (202, 400), r.status
    if r.status == 202:
        assert r.json()["accepted"] == 0, (field, value, r.body, d.pushes())
    assert d.pushes() == []
    assert_alive(d)
    assert_outputs_clean(d)


# ------------------------------------------------------------------ 10 MB bodies

def _send_big(port, head, total, chunk=65536):
    """Sends head then `total` bytes of spaces; returns (status or None, seconds)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    got = b""
    try:
        s.sendall(head)
        sent = 0
        s.setblocking(False)
        while sent < total:
            try:
                sent += s.send(b" " * min(chunk, total - sent))
            except BlockingIOError:
                try:
                    got += s.recv(4096)
                except BlockingIOError:
                    time.sleep(0.001)
            except (BrokenPipeError, ConnectionResetError):
                break
            if got:
                break
        s.setblocking(True)
        s.settimeout(3)
        try:
            while b"\r\n\r\n" not in got:
                c = s.recv(4096)
                if not c:
                    break
                got += c
        except (ConnectionResetError, socket.timeout):
            pass
    finally:
        s.close()
    return status_of(got), time.monotonic() - t0


def test_ten_megabyte_bodies(daemon):
    """10 MB sent for real (not just declared): with a Content-Length it is answered 413
    without reading it all; chunked it is cut off at the cap; with --max-body-bytes 16MiB a
    10 MB envelope (mostly whitespace) is parsed and its push accepted. All within seconds."""
    d = daemon()
    ten = 10 * 1024 * 1024
    head = (b"POST /v1/webhooks/registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % ten)
    st, secs = _send_big(d.port, head, ten)
    assert st == 413 and secs < 5, (st, secs)
    head = (b"POST /v1/webhooks/registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    closed = False
    try:
        for _ in range(160):  # 10 MiB in 64 KiB chunks
            s.sendall(b"10000\r\n" + b" " * 65536 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        s.settimeout(3)
        try:
            closed = s.recv(100) == b""
        except ConnectionResetError:
            closed = True
    s.close()
    assert closed
    assert_alive(d)

    big = daemon(args=["--max-body-bytes", "16MiB"])
    body = b'{"events":' + b" " * ten + json.dumps(json.loads(PUSH)["events"]).encode() + b"}"
    t0 = time.monotonic()
    r = big.request("POST", "/v1/webhooks/registry", body=body,
                    headers={"Content-Type": V1}, timeout=15)
    assert r.status == 202 and r.json()["accepted"] == 1, r.body
    assert time.monotonic() - t0 < 5
    assert_alive(big)


# ------------------------------------------------------------------ content types

@pytest.mark.parametrize("ctype,ok", [
    ("text/plain", False), ("application/x-www-form-urlencoded", False),
    ("multipart/form-data; boundary=x", False), ("application/jsonx", False),
    ("application/json-patch+json", False), ("application/xml", False), ("", False),
    ("application", False), ("*/*", False), ("application/vnd.docker.distribution.events.v3+json", False),
    ("application/json; charset=utf-8", True), ("APPLICATION/JSON", True),
    ("application/vnd.docker.distribution.events.v1+json;charset=UTF-8", True),
])
def test_content_types(daemon, ctype, ok):
    d = daemon()
    r = d.request("POST", "/v1/webhooks/registry", body=PUSH, headers={"Content-Type": ctype})
    if ok:
        assert r.status == 202 and r.json()["accepted"] == 1
    else:
        assert r.status == 415, (ctype, r.status)
        assert d.pushes() == []


# ------------------------------------------------------------------ thousands of events

def test_thousands_of_events_in_one_envelope(daemon, marathon):
    """One envelope of 3,000 events: 150 pushes of distinct tags to one app (newest last),
    2,500 blob uploads, 250 re-sent copies of pushes already in it, 100 pushes with tags
    outside Docker's grammar. The counts add up and the answer is prompt; the 150 pushes
    coalesce into fewer deployments (one per push that found the app idle), each of a newer
    tag than the last, ending at the newest; every visible record ends
    terminal, with a reason where it did not deploy.

    Why only 150 deployable pushes: the dispatcher lists Marathon's apps once per accepted
    push, one push after the other, and the emulator answers a kept-alive connection in about
    40 ms, so thousands of deployable pushes would take minutes. Ignored, duplicate and
    rejected events cost no Marathon request, hence the thousands of those."""
    emu = marathon([app("/staging/foo", IMG)])
    d = start_daemon(daemon, emu, "--max-body-bytes", "4MiB")
    pushes = []
    for n in range(150):
        ev = json.loads(push(tag=f"master-{n:04d}",
                             ts=f"2026-11-25T11:{n // 60:02d}:{n % 60:02d}Z")[0])["events"][0]
        pushes.append(ev)
    blob = json.loads(fixture_bytes("registry", "push_blob_layer.json"))["events"][0]
    evs = list(pushes)
    evs += [dict(blob, id=f"cccccccc-0000-4000-8000-{n:012d}") for n in range(2500)]
    evs += [pushes[n % 150] for n in range(250)]
    for n in range(100):
        bad = json.loads(json.dumps(pushes[0]))
        bad["id"] = f"eeeeeeee-0000-4000-8000-{n:012d}"
        bad["target"]["tag"] = f"-bad tag {n}"
        evs.append(bad)
    assert len(evs) == 3000
    t0 = time.monotonic()
    r = d.post_event(envelope(*evs))
    assert time.monotonic() - t0 < 3
    assert r.status == 202 and r.json() == {"accepted": 150, "ignored": 2500, "duplicate": 250,
                                            "rejected": 100}, r.body
    wait_for(lambda: image_of(emu, "/staging/foo").endswith(":master-0149"), timeout=14,
             what="the newest tag deployed")
    recs = wait_terminal(d, "/staging/foo", n=150, timeout=10)
    assert_all_terminal(d)
    newest = [r for r in recs if r["tag"] == "master-0149"]
    assert newest and newest[0]["state"] == "succeeded"
    assert {r["state"] for r in recs} <= {"succeeded", "superseded", "skipped"}
    # One write per succeeded record, each a distinct tag, newer each time (never back).
    w = writes(emu)
    tags = [json.loads(x["body"])["container"]["docker"]["image"].rsplit(":", 1)[1] for x in w]
    assert tags == sorted(set(tags)), tags
    assert len(w) < 75 and versions(emu, "/staging/foo") == len(w) + 1, len(w)
    assert sorted(r["tag"] for r in recs if r["state"] == "succeeded") == tags
    assert_alive(d)


# ------------------------------------------------------------------ slow-loris

def test_slow_loris_idle_connections_are_closed_and_others_served(daemon):
    """600 clients open a connection and send half a request line, then nothing (over MHD's
    512-connection limit). Other clients are served once the idle ones are dropped, and every
    idle one is closed after --http-timeout (1 s)."""
    d = daemon(args=["--http-timeout", "1s"])
    socks = []
    for _ in range(600):
        try:
            s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
            s.sendall(b"POST /v1/webhooks/regi")
            socks.append(s)
        except OSError:
            break
    t0 = time.monotonic()

    def healthy():
        try:
            return d.request("GET", "/healthz", timeout=1).status == 200
        except OSError:
            return False
    wait_for(healthy, timeout=5, what="/healthz served despite the idle clients")
    assert time.monotonic() - t0 < 4
    closed = 0
    deadline = time.monotonic() + 6
    for s in socks:
        s.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            if s.recv(100) == b"":
                closed += 1
        except (ConnectionResetError, BrokenPipeError):
            closed += 1
        except socket.timeout:
            pass
        s.close()
    assert closed == len(socks), f"{len(socks) - closed} of {len(socks)} idle clients still open"
    assert d.post_event(PUSH).status == 202
    assert_alive(d)


def test_one_address_cannot_take_every_connection(daemon):
    """A client address holding --max-connections-per-ip connections (idle, half a request
    line) gets no more, while another address is served at once; the refusals do not flood
    the log."""
    d = daemon(args=["--max-connections-per-ip", "8", "--http-timeout", "30s"])
    held = []
    for _ in range(8):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
        s.sendall(b"POST /v1/webhooks/regi")
        held.append(s)
    time.sleep(0.2)
    refused = 0
    for _ in range(40):
        s = socket.create_connection(("127.0.0.1", d.port), timeout=2)
        try:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            if s.recv(100) == b"":
                refused += 1
        except (ConnectionResetError, BrokenPipeError):
            refused += 1
        finally:
            s.close()
    assert refused == 40, f"{40 - refused} of 40 extra connections from one address served"
    other = socket.create_connection(("127.0.0.1", d.port), timeout=2,
                                     source_address=("127.0.0.2", 0))
    other.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert status_of(other.recv(4096)) == 200
    other.close()
    for s in held:
        s.close()
    wait_for(lambda: d.request("GET", "/healthz", timeout=1).status == 200, timeout=5,
             what="the address is served again once its connections are gone")
    lines = [r for r in d.logs() if r.get("msg", "").startswith("http server")]
    assert len(lines) <= 11, len(lines)
    assert_alive(d)


def test_slow_body_is_cut_off_at_the_timeout(daemon):
    """A client declares a body and stalls halfway: closed after --http-timeout, nothing
    queued; a concurrent normal request is answered meanwhile."""
    d = daemon(args=["--http-timeout", "1s"])
    s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
    s.sendall(b"POST /v1/webhooks/registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
              b"\r\nContent-Length: %d\r\n\r\n" % len(PUSH) + PUSH[:100])
    assert d.post_event(PUSH).status == 202
    t0 = time.monotonic()
    s.settimeout(4)
    try:
        data = s.recv(100)
    except ConnectionResetError:
        data = b""
    s.close()
    assert data == b"" or status_of(data) in (400, 408), data
    assert time.monotonic() - t0 < 3
    assert len(d.pushes()) == 1
    assert_alive(d)


def _trickle(port, data, every, until):
    """Sends data one byte every `every` seconds until the server closes the connection or
    `until` seconds pass; returns the seconds it took the server to close it (None if open)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    t0 = time.monotonic()
    try:
        for i in range(10 ** 6):
            if time.monotonic() - t0 > until:
                return None
            try:
                s.sendall(data[i % len(data):i % len(data) + 1])
            except (BrokenPipeError, ConnectionResetError):
                return time.monotonic() - t0
            s.settimeout(every)
            try:
                if s.recv(100) == b"":
                    return time.monotonic() - t0
            except socket.timeout:
                pass
            except ConnectionResetError:
                return time.monotonic() - t0
    finally:
        s.close()


@pytest.mark.parametrize("part", ["headers", "body"])
def test_trickling_client_is_cut_off_at_the_timeout(daemon, part):
    """A slow-loris that keeps its connection busy (one byte every 0.3 s, so it is never idle)
    must still send its whole request within --http-timeout: the connection is closed, the
    metric counts it, and nothing is queued."""
    d = daemon(args=["--http-timeout", "1s"])
    head = (b"POST /v1/webhooks/registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
            b"\r\nContent-Length: %d\r\n\r\n" % len(PUSH))
    if part == "headers":
        took = _trickle(d.port, head, 0.3, 8)
    else:
        s = socket.create_connection(("127.0.0.1", d.port), timeout=5)
        s.sendall(head)
        t0 = time.monotonic()
        took = None
        for b in PUSH:
            if time.monotonic() - t0 > 8:
                break
            try:
                s.sendall(bytes([b]))
                s.settimeout(0.3)
                if s.recv(100) == b"":
                    took = time.monotonic() - t0
                    break
            except socket.timeout:
                continue
            except (BrokenPipeError, ConnectionResetError):
                took = time.monotonic() - t0
                break
        s.close()
    assert took is not None, "a trickling client kept its connection for 8 s"
    assert 0.9 < took < 3, took
    assert d.pushes() == []
    assert d.metrics().get("autodeploy_http_request_timeouts_total", 0) >= 1
    assert d.post_event(PUSH).status == 202
    assert_alive(d)


def test_request_deadline_restarts_for_each_keepalive_request(daemon):
    """The deadline counts from the end of the previous answer: a keep-alive client that sends
    one prompt request every 0.6 s for 3 s (with --http-timeout 1s) is never cut off."""
    d = daemon(args=["--http-timeout", "1s"])
    conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=5)
    for _ in range(5):
        conn.request("GET", "/healthz")
        r = conn.getresponse()
        assert r.status == 200
        r.read()
        time.sleep(0.6)
    conn.close()
    assert d.metrics().get("autodeploy_http_request_timeouts_total") == 0


# ------------------------------------------------------------------ header and path tricks

@pytest.mark.parametrize("path", [
    "/v1/webhooks/registry/", "//v1/webhooks/registry", "/v1/webhooks//registry",
    "/v1/webhooks/registry/../registry", "/v1/webhooks/x/../registry", "/V1/WEBHOOKS/REGISTRY",
    "/v1/webhooks/%72egistry", "/v1/webhooks/registry%2F", "/v1/webhooks/registry%00",
    "/v1/webhooks/registry;x=1", "/v1/webhooks/registry\\", "*",
])
def test_webhook_path_tricks(daemon, path):
    """Variants of the webhook path: a 404 (or 400) that queues nothing, or, if the server
    normalises the path to the webhook itself, an ordinary 202. Never a crash."""
    d = daemon()
    raw = raw_http(d.port, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(PUSH) + PUSH)
    st = status_of(raw)
    assert st in (400, 404, 202), (path, raw[:200])
    if st != 202:
        assert d.pushes() == []
    assert_alive(d)


def test_webhook_header_tricks(daemon):
    """With --webhook-token: a second, wrong Authorization header, a lower-case scheme, the
    token with extra words, or folded over two lines never lets a wrong token in; conflicting
    Content-Length headers, or Content-Length with chunked, never smuggle a second request."""
    tok = "h00k-t0ken"
    d = daemon(env={"AUTODEPLOY_WEBHOOK_TOKEN": tok})
    common = b"POST /v1/webhooks/registry HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
    body = PUSH
    cl = b"Content-Length: %d\r\n" % len(body)
    for auth in [b"Authorization: Bearer wrong\r\nAuthorization: Bearer " + tok.encode() + b"\r\n",
                 b"Authorization: Bearer " + tok.encode() + b" extra\r\n",
                 b"Authorization: Bearer\r\n " + tok.encode() + b"\r\n",
                 b"Authorization: Basic " + tok.encode() + b"\r\n",
                 b"Authorization: Bearer " + tok.encode()[:-1] + b"\x00\r\n",
                 b"X-Authorization: Bearer " + tok.encode() + b"\r\n"]:
        st = status_of(raw_http(d.port, common + auth + cl + b"\r\n" + body))
        assert st in (400, 401), (auth, st)
    assert d.pushes() == []
    good = b"Authorization: Bearer " + tok.encode() + b"\r\n"
    assert status_of(raw_http(d.port, common + b"authorization: bearer " + tok.encode() +
                              b"\r\n" + cl + b"\r\n" + body)) == 202
    # Request smuggling: a second request hidden in the body must not be executed.
    hidden = (b"POST /v1/webhooks/registry HTTP/1.1\r\nHost: x\r\n" + good +
              b"Content-Type: application/json\r\n" + cl + b"\r\n" +
              envelope(event(id="dddddddd-0000-4000-8000-000000000001", tag="smuggled",
                             digest="sha256:" + "d" * 64)))
    for trick in [b"Content-Length: 5\r\nContent-Length: %d\r\n" % len(hidden),
                  b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(hidden)]:
        raw_http(d.port, common + good + trick + b"\r\n" + hidden, timeout=3)
    assert all(p["tag"] != "smuggled" for p in d.pushes()), d.pushes()
    assert_alive(d)


HOSTILE_IDS = [
    "/staging/../prod/foo",
    "/staging/./../prod/foo",
    "/staging/foo?force=true",
    "/staging/foo#x",
    "/staging/foo%2F..%2F..%2Fprod%2Ffoo",
    "/staging/foo\r\nX-Injected: 1",
    "/staging/foo bar",
    "/staging/f\u00f6o",
]


@pytest.mark.parametrize("hostile", HOSTILE_IDS, ids=repr)
def test_hostile_app_ids_from_marathon_stay_inside_the_app_path(daemon, marathon, hostile):
    """Marathon's listing (faked here: real Marathon validates ids) names an app whose id holds
    path or header tricks. With --app-prefix /staging/, every request autodeployd then makes
    about that app stays under /v2/apps/staging/, escaped; /prod/foo is never read or written;
    no header is injected; the push ends with a visible record (the app cannot be found or
    updated: failed or skipped with a reason)."""
    emu = marathon([app("/prod/foo", IMG), app("/staging/real", IMG)])
    listed = app("/staging/real", IMG)
    evil = dict(listed, id=hostile)
    emu.add_fault({"method": "GET", "path": "/v2/apps", "count": 1, "status": 200,
                   "body": {"apps": [evil]}})
    d = start_daemon(daemon, emu, "--app-prefix", "/staging/")
    d.post_event(push(tag="master-66")[0])
    recs = wait_terminal(d, timeout=10)
    assert_all_terminal(d)
    assert recs[0]["app"] == hostile
    assert recs[0]["state"] not in ("succeeded", "unchanged"), recs[0]
    time.sleep(0.3)
    for r in emu.get_requests():
        if r["path"] in ("/v2/apps", "/v2/events", "/v2/deployments"):
            continue
        assert r["raw_path"].startswith("/v2/apps/staging/"), r["raw_path"]
        assert r["path"] != "/v2/apps/prod/foo", r["raw_path"]
        assert "force" not in r["query"], r["raw_path"]
        assert not any(k.lower() == "x-injected" for k in r["headers"]), r["headers"]
    assert writes(emu, "/prod/foo") == [] and versions(emu, "/prod/foo") == 1
    assert image_of(emu, "/prod/foo") == IMG and image_of(emu, "/staging/real") == IMG
    assert_alive(d)
    assert_outputs_clean(d)
