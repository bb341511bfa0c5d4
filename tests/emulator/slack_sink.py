#!/usr/bin/env python3
"""Slack incoming-webhook sink for autodeploy's tests and demo (standard library only).

Every POST outside /_sink/ is recorded (method, path, query, headers, body, parsed
JSON, time, the status answered) and answered like hooks.slack.com: 200 `ok`
(text/html).  Like Slack it answers 400 `invalid_payload` to a body that is not
JSON (or a form field `payload=` holding JSON) and 400 `no_text` to a message
without `text`, `blocks` or `attachments`.

Failures for the next K webhook requests are set through the control API:
429 + Retry-After, any status/body, `slow` (answer normally after S seconds) or
`hang` (never answer; the connection is closed after S seconds or at stop).

Shell:
    python3 tests/emulator/slack_sink.py --listen 127.0.0.1:0 --port-file /tmp/s.port [--print]

Python:
    from slack_sink import SlackSink
    sink = SlackSink().start(); sink.url; sink.messages(); sink.stop()
"""

from __future__ import annotations

import argparse
import copy
import datetime as _dt
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

import httpbase


def _iso(t):
    return _dt.datetime.fromtimestamp(t, tz=_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class SlackSink(httpbase.Owner):
    log_name = "slack-sink"

    def __init__(self, host="127.0.0.1", port=0, print_messages=False, out=None, quiet=True):
        self._init_owner(host, port, quiet)
        self.print_messages = print_messages
        self.out = out or sys.stdout
        self.records: list[dict] = []
        self.failures: list[dict] = []     # queue of {"status","retry_after","body","mode","seconds","count"}
        self.seq = 0

    # ------------------------------------------------------------ lifecycle (the rest: httpbase.Owner)
    @property
    def webhook_url(self):
        return self.url + "/services/T000/B000/XXXXXXXX"

    def start(self):
        self._serve(_Handler, "slack-sink", sink=self)
        self.log("listening on %s" % self.url)
        return self

    # ------------------------------------------------------------ API for in-process tests
    def fail_next(self, status=None, count=1, retry_after=None, body=None, mode=None, seconds=None):
        spec = {"count": int(count)}
        if status is not None:
            spec["status"] = int(status)
        if retry_after is not None:
            spec["retry_after"] = retry_after
        if body is not None:
            spec["body"] = body
        if mode is not None:
            spec["mode"] = mode
        if seconds is not None:
            spec["seconds"] = float(seconds)
        self._add_failure(spec)
        return spec

    # ------------------------------------------------------------ interactivity (buttons)
    @staticmethod
    def interaction_body(approval_id, action="approve", user="alice", username=None, user_id="U0001"):
        """The form body Slack POSTs when a button of an approval message is clicked
        (block_actions; api.slack.com/reference/interaction-payloads/block-actions)."""
        payload = {
            "type": "block_actions",
            "user": {"id": user_id, "username": username or user, "name": user, "team_id": "T000"},
            "api_app_id": "A000",
            "container": {"type": "message", "message_ts": "1700000000.000100"},
            "trigger_id": "1.2.3",
            "team": {"id": "T000", "domain": "example"},
            "response_url": "https://hooks.slack.com/actions/T000/1/xyz",
            "actions": [{"action_id": action, "block_id": "autodeploy_approval",
                         "value": approval_id, "type": "button",
                         "action_ts": "1700000000.000200"}],
        }
        return urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()

    @staticmethod
    def sign(secret, timestamp, body):
        """X-Slack-Signature: v0= hex HMAC-SHA256(secret, "v0:" + timestamp + ":" + body)."""
        base = b"v0:" + str(timestamp).encode() + b":" + body
        return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()

    def interact(self, url, secret, approval_id, action="approve", user="alice", timestamp=None,
                 signature=None, body=None, headers=None):
        """Sends a signed interaction request to url (http://host:port/v1/slack/interactions), as
        Slack does for a button click. timestamp: Unix seconds (default now; pass an old one
        for a stale request); signature: a given one (a bad signature); body: a given one (a
        replay passes the same body, timestamp and signature again). Returns (status, body,
        sent) where sent = {"body","timestamp","signature"} for replaying."""
        body = body if body is not None else self.interaction_body(approval_id, action, user)
        ts = str(int(time.time()) if timestamp is None else int(timestamp))
        sig = signature if signature is not None else self.sign(secret, ts, body)
        h = {"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "Slackbot 1.0",
             "X-Slack-Request-Timestamp": ts, "X-Slack-Signature": sig}
        h.update(headers or {})
        u = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
        try:
            conn.request("POST", u.path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
        finally:
            conn.close()
        self.log("interaction %s %s -> %d" % (action, approval_id, r.status))
        return r.status, data, {"body": body, "timestamp": ts, "signature": sig}

    def _add_failure(self, spec):
        mode = spec.get("mode")
        if mode not in (None, "status", "hang", "slow"):
            raise ValueError("mode must be hang or slow (or absent for a status)")
        if mode in (None, "status") and "status" not in spec:
            raise ValueError("a failure needs a status or a mode")
        with self.lock:
            self.failures.append(dict(spec, count=int(spec.get("count", 1))))

    def messages(self):
        with self.lock:
            return copy.deepcopy(self.records)

    def wait_for(self, n, timeout=5.0):
        """Block until at least n requests were recorded; returns the records."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while len(self.records) < n and not self._stopping.is_set():
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self.lock.wait(left)
            return copy.deepcopy(self.records)

    def reset(self):
        with self.lock:
            self.records.clear()
            self.failures.clear()

    def _take_failure(self):
        with self.lock:
            while self.failures and self.failures[0]["count"] <= 0:
                self.failures.pop(0)
            if not self.failures:
                return None
            f = self.failures[0]
            f["count"] -= 1
            spec = dict(f)
            if f["count"] <= 0:
                self.failures.pop(0)
            return spec

    def _record(self, rec):
        with self.lock:
            self.seq += 1
            rec["seq"] = self.seq
            self.records.append(rec)
            self.lock.notify_all()
        if self.print_messages:
            self._print(rec)

    def _print(self, rec):
        lines = ["--- Slack message #%d  %s  POST %s  -> %s" % (
            rec["seq"], time.strftime("%H:%M:%S", time.localtime(rec["time"])), rec["path"], rec["status"])]
        msg = rec.get("json")
        if isinstance(msg, dict):
            for k in ("channel", "username", "icon_emoji"):
                if msg.get(k):
                    lines.append("  %s: %s" % (k, msg[k]))
            if msg.get("text"):
                lines.extend("  " + ln for ln in str(msg["text"]).splitlines())
            for b in msg.get("blocks") or []:
                lines.extend("  | " + ln for ln in _block_text(b).splitlines() if ln.strip())
            for a in msg.get("attachments") or []:
                head = a.get("color", "")
                title = a.get("title") or a.get("pretext") or a.get("fallback") or ""
                lines.append("  [attachment %s] %s" % (head, title))
                if a.get("text"):
                    lines.extend("    " + ln for ln in str(a["text"]).splitlines())
                for fld in a.get("fields") or []:
                    lines.append("    %s: %s" % (fld.get("title", ""), fld.get("value", "")))
                for b in a.get("blocks") or []:
                    lines.extend("    | " + ln for ln in _block_text(b).splitlines() if ln.strip())
        else:
            lines.append("  (raw) " + rec["body"][:500])
        try:
            self.out.write("\n".join(lines) + "\n")
            self.out.flush()
        except Exception:
            pass


def _block_text(block):
    parts = []
    t = block.get("text")
    if isinstance(t, dict):
        parts.append(str(t.get("text", "")))
    elif isinstance(t, str):
        parts.append(t)
    for f in block.get("fields") or []:
        if isinstance(f, dict):
            parts.append(str(f.get("text", "")))
    for e in block.get("elements") or []:
        if isinstance(e, dict):
            if isinstance(e.get("text"), dict):
                parts.append(str(e["text"].get("text", "")))
            elif isinstance(e.get("text"), str):
                parts.append(e["text"])
    return "\n".join(parts)


class _Handler(httpbase.Handler):
    server_version = "Apache"
    sink: SlackSink = None

    def _send(self, status, body, ctype="text/html", headers=None):
        data = body.encode("utf-8") if isinstance(body, str) else (
            json.dumps(body).encode("utf-8") if isinstance(body, (dict, list)) else body)
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        self.wfile.flush()

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def do_PUT(self):
        self._dispatch("PUT")

    def do_DELETE(self):
        self._dispatch("DELETE")

    def _dispatch(self, method):
        split = urllib.parse.urlsplit(self.path)
        path = split.path
        body = self._read_body()
        if path.startswith("/_sink"):
            self._control(method, path, urllib.parse.parse_qs(split.query), body)
            return
        if method != "POST":
            self._send(405, "invalid_method")   # webhooks only take POST
            return
        self._webhook(path, split.query, body)

    def _webhook(self, path, query, body):
        sink = self.sink
        now = time.time()
        text = body.decode("utf-8", "replace")
        ctype = self.headers.get("Content-Type") or ""
        parsed = None
        try:
            if ctype.startswith("application/x-www-form-urlencoded"):
                form = urllib.parse.parse_qs(text)
                parsed = json.loads(form["payload"][0])
            else:
                parsed = json.loads(text)
        except (ValueError, KeyError, IndexError):
            parsed = None
        rec = {"time": now, "iso_time": _iso(now), "method": "POST", "path": path, "query": query,
               "headers": {k: v for k, v in self.headers.items()}, "body": text, "json": parsed}
        failure = sink._take_failure()
        if failure is not None:
            mode = failure.get("mode")
            rec["failure"] = failure
            if mode == "hang":
                rec["status"] = None
                sink._record(rec)
                sink._stopping.wait(failure.get("seconds", 30.0))
                self.close_connection = True
                try:
                    self.connection.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                return
            if mode == "slow":
                sink._stopping.wait(failure.get("seconds", 2.0))
            else:
                status = int(failure["status"])
                headers = {}
                if status == 429:
                    headers["Retry-After"] = str(failure.get("retry_after", 1))
                elif failure.get("retry_after") is not None:
                    headers["Retry-After"] = str(failure["retry_after"])
                default = {429: "rate_limited", 500: "rollup_error", 503: "service_unavailable",
                           404: "no_service", 403: "action_prohibited", 410: "channel_is_archived",
                           400: "invalid_payload"}.get(status, "error")
                rec["status"] = status
                sink._record(rec)
                self._send(status, failure.get("body", default), headers=headers)
                return
        if not isinstance(parsed, dict):
            rec["status"] = 400
            sink._record(rec)
            self._send(400, "invalid_payload")
            return
        if not (parsed.get("text") or parsed.get("blocks") or parsed.get("attachments")):
            rec["status"] = 400
            sink._record(rec)
            self._send(400, "no_text")
            return
        rec["status"] = 200
        sink._record(rec)
        self._send(200, "ok")

    def _control(self, method, path, query, raw):
        sink = self.sink
        try:
            body = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            self._send(400, {"message": "invalid JSON"}, "application/json")
            return
        if path == "/_sink/messages" and method == "GET":
            since = int((query.get("since") or ["0"])[-1])
            msgs = [m for m in sink.messages() if m["seq"] > since]
            self._send(200, {"messages": msgs}, "application/json")
        elif path == "/_sink/messages" and method == "DELETE":
            with sink.lock:
                sink.records.clear()
            self._send(200, {"ok": True}, "application/json")
        elif path == "/_sink/wait" and method == "GET":
            n = int((query.get("count") or ["1"])[-1])
            timeout = float((query.get("timeout") or ["5"])[-1])
            msgs = sink.wait_for(n, timeout)
            self._send(200 if len(msgs) >= n else 408, {"messages": msgs}, "application/json")
        elif path == "/_sink/fail" and method in ("POST", "PUT"):
            specs = body if isinstance(body, list) else [body]
            try:
                for s in specs:
                    sink._add_failure(s)
            except (ValueError, TypeError) as ex:
                self._send(400, {"message": str(ex)}, "application/json")
                return
            self._send(200, {"ok": True}, "application/json")
        elif path == "/_sink/fail" and method == "GET":
            with sink.lock:
                self._send(200, {"failures": copy.deepcopy(sink.failures)}, "application/json")
        elif path == "/_sink/fail" and method == "DELETE":
            with sink.lock:
                sink.failures.clear()
            self._send(200, {"ok": True}, "application/json")
        elif path == "/_sink/reset" and method == "POST":
            sink.reset()
            self._send(200, {"ok": True}, "application/json")
        elif path == "/_sink/health":
            self._send(200, {"ok": True}, "application/json")
        else:
            self._send(404, {"message": "unknown control path"}, "application/json")


def main(argv=None):
    ap = argparse.ArgumentParser(description="Slack incoming-webhook sink (see tests/emulator/README.md)")
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--port-file")
    ap.add_argument("--print", dest="print_messages", action="store_true", help="print each message to stdout")
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    host, _, port = args.listen.rpartition(":")
    sink = SlackSink(host=host or "127.0.0.1", port=int(port), print_messages=args.print_messages,
                     quiet=args.quiet).start()
    if args.port_file:
        tmp = args.port_file + ".tmp"
        with open(tmp, "w") as f:
            f.write("%d\n" % sink.port)
        os.replace(tmp, args.port_file)
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    sink.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
