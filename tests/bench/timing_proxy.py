#!/usr/bin/env python3
"""timing_proxy.py: an HTTP/1.1 relay between autodeployd and the Marathon emulator that
timestamps, on CLOCK_MONOTONIC, when each request from autodeployd arrives and when its answer
has been handed back. With these, the gaps in which autodeployd alone holds the work (from the
end of one answer to the arrival of its next request) can be summed without counting the
emulator's (Python's) own service time. Used by tests/bench/deploy_latency.py.

    timing_proxy.py --upstream http://127.0.0.1:PORT --port-file FILE [--listen 127.0.0.1:0]
                    [--pace-mbit N]

Per request it records: method, path, status, nth_on_connection (1: a new connection), t_in (the request line was read: the request has
arrived), t_start (the upstream answer is complete, writing it back begins), t_done (the last
byte was written to autodeployd's socket). Answers are buffered whole before being written
back, so t_start..t_done is the copy into the socket, not the emulator's time. With --pace-mbit N
an answer larger than 64 KiB is written in 64 KiB pieces no faster than N Mbit/s, as a network
link between autodeployd and Marathon would deliver it (loopback delivers a megabyte at once).
GET /v2/events (Server-Sent Events) is relayed byte for byte and not recorded.

Control (never forwarded): GET /_proxy/log?since=SEQ -> {"records":[...]};
GET /_proxy/wait?method=M&path=P&since=SEQ&timeout=S -> the first matching record after SEQ
(200) or 408; DELETE /_proxy/log. Stops on SIGTERM/SIGINT. Loopback only.
"""
import argparse
import http.client
import http.server
import json
import os
import signal
import socket
import sys
import threading
import time
import urllib.parse

HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class State:
    def __init__(self, upstream):
        u = urllib.parse.urlsplit(upstream)
        self.host, self.port = u.hostname, u.port or 80
        self.records = []
        self.seq = 0
        self.cv = threading.Condition()

    def add(self, rec):
        with self.cv:
            self.seq += 1
            rec["seq"] = self.seq
            self.records.append(rec)
            self.cv.notify_all()

    def since(self, seq):
        """The records after seq (call with cv held). Records are kept in seq order, so this
        looks at the new ones only: the waiter runs this on every record, and a scan of the
        whole log (hundreds of records late in a run) holds the GIL that the thread stamping
        autodeployd's next request needs."""
        i = len(self.records)
        while i > 0 and self.records[i - 1]["seq"] > seq:
            i -= 1
        return self.records[i:]


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    state = None
    pace_mbit = 0

    def log_message(self, fmt, *args):  # quiet
        pass

    # handle_one_request of the standard library, with the arrival time taken as soon as the
    # request line has been read.
    def handle_one_request(self):
        try:
            self.raw_requestline = self.rfile.readline(65537)
            self.t_in = time.monotonic_ns()
            if not self.raw_requestline:
                self.close_connection = True
                return
            if not self.parse_request():
                return
            self.n_req = getattr(self, "n_req", 0) + 1
            if self.path.startswith("/_proxy/"):
                self.control()
            elif self.path.startswith("/v2/events"):
                self.relay_stream()
            else:
                self.forward()
            self.wfile.flush()
        except (TimeoutError, ConnectionError, BrokenPipeError):
            self.close_connection = True

    def upstream(self):
        conn = getattr(self, "_up", None)
        if conn is None:
            conn = http.client.HTTPConnection(self.state.host, self.state.port, timeout=60)
            self._up = conn
        return conn

    def forward(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n > 0 else None
        hdrs = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        for attempt in (0, 1):
            conn = self.upstream()
            try:
                conn.request(self.command, self.path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                conn.close()
                self._up = None
                if attempt:
                    raise
        out = ["HTTP/1.1 %d %s\r\n" % (resp.status, resp.reason)]
        for k, v in resp.getheaders():
            if k.lower() not in HOP:
                out.append("%s: %s\r\n" % (k, v))
        out.append("Content-Length: %d\r\n\r\n" % len(data))
        t_start = time.monotonic_ns()
        self.write_paced("".join(out).encode("latin-1") + data, t_start)
        t_done = time.monotonic_ns()
        self.state.add({"method": self.command, "path": self.path, "status": resp.status,
                        "bytes": len(data), "t_in": self.t_in, "t_start": t_start,
                        "t_done": t_done, "nth_on_connection": self.n_req})

    def write_paced(self, data, t_start):
        rate = self.pace_mbit * 1e6 / 8 / 1e9  # bytes per nanosecond
        if not rate or len(data) <= 65536:
            self.wfile.write(data)
            return
        for off in range(0, len(data), 65536):
            due = t_start + off / rate  # this piece may leave once the earlier ones have
            while True:
                wait = due - time.monotonic_ns()
                if wait <= 0:
                    break
                time.sleep(wait / 1e9)
            self.wfile.write(data[off:off + 65536])
            self.wfile.flush()

    def relay_stream(self):
        up = socket.create_connection((self.state.host, self.state.port), timeout=None)
        head = "%s %s HTTP/1.1\r\n" % (self.command, self.path)
        for k, v in self.headers.items():
            head += "%s: %s\r\n" % (k, v)
        up.sendall(head.encode("latin-1") + b"\r\n")
        self.close_connection = True
        stop = threading.Event()

        def back():  # client -> upstream (normally nothing; notices the client going away)
            try:
                while not stop.is_set():
                    b = self.connection.recv(4096)
                    if not b:
                        break
            except OSError:
                pass
            stop.set()
            try:
                up.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        threading.Thread(target=back, daemon=True).start()
        try:
            while not stop.is_set():
                b = up.recv(65536)
                if not b:
                    break
                self.connection.sendall(b)
        except OSError:
            pass
        stop.set()
        up.close()

    def control(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query))
        since = int(q.get("since", 0))
        st = self.state
        status, out = 200, None
        if self.command == "DELETE" and u.path == "/_proxy/log":
            with st.cv:
                st.records = []
            out = {"ok": True}
        elif u.path == "/_proxy/log":
            with st.cv:
                out = {"records": st.since(since), "seq": st.seq}
        elif u.path == "/_proxy/wait":
            deadline = time.monotonic() + min(float(q.get("timeout", 5)), 30)

            def find():
                for r in st.since(since):
                    if r["method"] == q.get("method", r["method"]) and \
                            r["path"] == q.get("path", r["path"]):
                        return r
                return None
            with st.cv:
                r = find()
                while r is None and time.monotonic() < deadline:
                    st.cv.wait(max(0.0, deadline - time.monotonic()))
                    r = find()
            status, out = (200, r) if r else (408, {"error": "timed out"})
        else:
            status, out = 404, {"error": "not found"}
        data = json.dumps(out).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0")
    ap.add_argument("--upstream", required=True)
    ap.add_argument("--port-file", required=True)
    ap.add_argument("--pace-mbit", type=float, default=0,
                    help="write large answers no faster than this many Mbit/s (0: at once)")
    a = ap.parse_args(argv)
    Handler.pace_mbit = a.pace_mbit
    host, _, port = a.listen.rpartition(":")
    Handler.state = State(a.upstream)
    srv = http.server.ThreadingHTTPServer((host, int(port)), Handler)
    srv.daemon_threads = True
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write("%d\n" % srv.server_address[1])
    os.replace(tmp, a.port_file)

    def stop(sig, frame):
        threading.Thread(target=srv.shutdown, daemon=True).start()
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    srv.serve_forever(poll_interval=0.2)
    srv.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
