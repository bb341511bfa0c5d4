"""Tests for the Slack incoming-webhook sink (tests/emulator/slack_sink.py).

Run from the repository root: /usr/bin/python3 -m pytest -q tests/emulator
"""

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
import urllib.parse

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from slack_sink import SlackSink  # noqa: E402

HOOK = "/services/T000/B000/XXXXXXXX"


@pytest.fixture
def sink():
    s = SlackSink().start()
    yield s
    s.stop()


def post(s, body, path=HOOK, ctype="application/json", timeout=5, headers=None):
    conn = http.client.HTTPConnection(s.host, s.port, timeout=timeout)
    data = body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
    hdrs = {"Content-Type": ctype}
    hdrs.update(headers or {})
    try:
        conn.request("POST", path, body=data, headers=hdrs)
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def get(s, path, method="GET", body=None):
    conn = http.client.HTTPConnection(s.host, s.port, timeout=5)
    try:
        conn.request(method, path, body=json.dumps(body).encode() if body is not None else None,
                     headers={"Content-Type": "application/json"})
        r = conn.getresponse()
        return r.status, json.loads(r.read() or b"null")
    finally:
        conn.close()


def test_records_and_answers_ok(sink):
    msg = {"text": "Deployed *strava/web:2* to `/svc/web`", "blocks": [
        {"type": "section", "text": {"type": "mrkdwn", "text": "deploy ok"}}]}
    status, headers, body = post(sink, msg, headers={"User-Agent": "autodeployd/0.1"})
    assert status == 200 and body == b"ok"
    assert headers["Content-Type"].startswith("text/html")
    assert int(headers["Content-Length"]) == 2
    status, data = get(sink, "/_sink/messages")
    assert status == 200
    [rec] = data["messages"]
    assert rec["path"] == HOOK and rec["method"] == "POST" and rec["status"] == 200
    assert rec["json"] == msg and json.loads(rec["body"]) == msg
    assert rec["headers"]["User-Agent"] == "autodeployd/0.1"
    assert rec["time"] > 0 and rec["iso_time"].endswith("Z")
    assert sink.messages()[0]["json"] == msg


def test_form_payload_and_invalid(sink):
    form = urllib.parse.urlencode({"payload": json.dumps({"text": "hello"})})
    assert post(sink, form, ctype="application/x-www-form-urlencoded")[0] == 200
    assert sink.messages()[-1]["json"] == {"text": "hello"}
    status, _, body = post(sink, b"{not json")
    assert status == 400 and body == b"invalid_payload"
    status, _, body = post(sink, {"channel": "#x"})
    assert status == 400 and body == b"no_text"
    assert [m["status"] for m in sink.messages()] == [200, 400, 400]   # failures are recorded too


def test_429_with_retry_after_for_next_k(sink):
    status, _ = get(sink, "/_sink/fail", "POST", {"status": 429, "retry_after": 2, "count": 2})
    assert status == 200
    for _ in range(2):
        status, headers, body = post(sink, {"text": "x"})
        assert status == 429 and headers["Retry-After"] == "2" and body == b"rate_limited"
    status, _, body = post(sink, {"text": "x"})
    assert status == 200 and body == b"ok"
    assert [m["status"] for m in sink.messages()] == [429, 429, 200]


def test_500_then_ok(sink):
    sink.fail_next(status=500)
    status, _, body = post(sink, {"text": "x"})
    assert status == 500 and body == b"rollup_error"
    assert post(sink, {"text": "x"})[0] == 200


def test_failures_queue_in_order(sink):
    get(sink, "/_sink/fail", "POST", [{"status": 500, "count": 1}, {"status": 429, "retry_after": 1, "count": 1}])
    assert [post(sink, {"text": str(i)})[0] for i in range(3)] == [500, 429, 200]


def test_hang_next_request(sink):
    sink.fail_next(mode="hang", seconds=0.5)
    t0 = time.monotonic()
    with pytest.raises((socket.timeout, TimeoutError, http.client.HTTPException, ConnectionError)):
        post(sink, {"text": "x"}, timeout=0.3)
    assert time.monotonic() - t0 < 2
    assert sink.messages()[0]["status"] is None       # received, never answered
    time.sleep(0.3)
    assert post(sink, {"text": "y"})[0] == 200


def test_hang_closes_after_seconds(sink):
    sink.fail_next(mode="hang", seconds=0.3)
    with pytest.raises((http.client.HTTPException, ConnectionError)):
        post(sink, {"text": "x"}, timeout=3)


def test_slow_next_request(sink):
    get(sink, "/_sink/fail", "POST", {"mode": "slow", "seconds": 0.3})
    t0 = time.monotonic()
    status, _, body = post(sink, {"text": "x"})
    assert status == 200 and body == b"ok" and time.monotonic() - t0 >= 0.3


def test_wait_reset_and_since(sink):
    post(sink, {"text": "1"})
    post(sink, {"text": "2"})
    status, data = get(sink, "/_sink/wait?count=2&timeout=1")
    assert status == 200 and len(data["messages"]) == 2
    status, data = get(sink, "/_sink/messages?since=1")
    assert [m["json"]["text"] for m in data["messages"]] == ["2"]
    status, _ = get(sink, "/_sink/wait?count=5&timeout=0.2")
    assert status == 408
    get(sink, "/_sink/reset", "POST")
    assert sink.messages() == []


def test_print_mode_is_readable():
    out = io.StringIO()
    s = SlackSink(print_messages=True, out=out).start()
    try:
        post(s, {"text": "Deploying strava/web:2", "attachments": [
            {"color": "good", "title": "/svc/web", "fields": [{"title": "image", "value": "strava/web:2"}]}]})
    finally:
        s.stop()
    text = out.getvalue()
    assert "Deploying strava/web:2" in text and "/svc/web" in text and "image: strava/web:2" in text


def test_cli_port_file(tmp_path):
    port_file = tmp_path / "port"
    proc = subprocess.Popen([sys.executable, os.path.join(HERE, "slack_sink.py"), "--listen", "127.0.0.1:0",
                             "--port-file", str(port_file), "--print"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 5
        while not port_file.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        port = int(port_file.read_text())
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        conn.request("POST", HOOK, body=json.dumps({"text": "from the cli test"}),
                     headers={"Content-Type": "application/json"})
        assert conn.getresponse().read() == b"ok"
        conn.close()
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=5)
    assert b"from the cli test" in out


def test_interaction_requests_are_signed_as_slack_signs_them(sink):
    """sign() reproduces Slack's documented example
    (api.slack.com/authentication/verifying-requests-from-slack); interact() POSTs a
    block_actions payload with the signature headers, here to the sink itself, which records
    what a server would receive."""
    body = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id="
            b"G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-"
            b"collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%"
            b"2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121."
            b"803a0bc887a14d10d2c447fce8b6703c")
    assert SlackSink.sign("8f742231b10e8888abcd99yyyzzz85a5", 1531420618, body) == \
        "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    st, _, sent = sink.interact(sink.url + "/v1/slack/interactions", "s3cret", "abc123",
                                action="reject", user="bob")
    assert st == 400  # the sink judges it as a message: no text; what it received counts here
    rec = sink.messages()[-1]
    hdr = {k.lower(): v for k, v in rec["headers"].items()}
    assert hdr["x-slack-signature"] == sent["signature"] == SlackSink.sign(
        "s3cret", sent["timestamp"], sent["body"])
    assert abs(int(hdr["x-slack-request-timestamp"]) - time.time()) < 60
    payload = json.loads(urllib.parse.parse_qs(sent["body"].decode())["payload"][0])
    assert payload["type"] == "block_actions" and payload["user"]["name"] == "bob"
    assert payload["actions"][0]["action_id"] == "reject" and payload["actions"][0]["value"] == "abc123"
