"""httpbase.py: the HTTP plumbing the loopback test servers share (the Marathon emulator, the
Slack sink, and tests/registry's token server and fault proxy).

A threading server, and a keep-alive request handler that logs through its owner, registers
each connection with it (so the owner can cut every connection, as a fault or at stop) and
reads request bodies whether they come with a Content-Length or chunked. The owner (set on a
subclass per server) has `lock`, `_conns` (a set of sockets) and `log(msg)`: an `Owner`.
"""
import http.server
import socket
import sys
import threading
import time


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are written separately: without this, Nagle and delayed ACKs add
    # ~40 ms to every answer on a kept-alive connection.
    disable_nagle_algorithm = True
    sys_version = ""
    owner = None

    def version_string(self):
        return self.server_version

    def log_message(self, fmt, *args):
        self.owner.log("%s %s" % (self.address_string(), fmt % args))

    def setup(self):
        super().setup()
        with self.owner.lock:
            self.owner._conns.add(self.connection)

    def finish(self):
        try:
            super().finish()
        finally:
            with self.owner.lock:
                self.owner._conns.discard(self.connection)

    def _read_body(self):
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n > 0 else b""


class Owner:
    """The life cycle of a loopback test server: serve on daemon threads, stop (wake whatever
    waits, close the listener, cut every connection, join), a context manager, and log(msg)
    as `[<log_name> HH:MM:SS] msg` on log_stream (None: sys.stderr as it is when writing),
    nothing when quiet.

    A subclass sets log_name, calls _init_owner(...) in __init__, and writes start() as
    self._serve(<its Handler>, <thread name>, ...), anything of its own, a log line, return self.
    A lock that is not a Condition needs _wake() overridden."""

    log_name = "server"
    log_stream = None

    def _init_owner(self, host, port, quiet, lock=None):
        self.host, self.req_port, self.quiet = host, port, quiet
        self.lock = threading.Condition() if lock is None else lock
        self._conns = set()             # every open connection (Handler registers them)
        self._stopping = threading.Event()
        self.server = None
        self._threads = []

    @property
    def port(self):
        return self.server.server_address[1]

    @property
    def url(self):
        return "http://%s:%d" % (self.host, self.port)

    def _serve(self, handler, thread_name, **attrs):
        """Binds a Server on (host, req_port) answering with a subclass of `handler` whose
        `owner` is self (and with `attrs` as further class attributes), and serves it on a
        daemon thread."""
        cls = type(handler.__name__, (handler,), dict(attrs, owner=self))
        self.server = Server((self.host, self.req_port), cls)
        t = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                             name=thread_name, daemon=True)
        t.start()
        self._threads.append(t)

    def _wake(self):
        """At stop, after _stopping is set: wakes the handlers waiting on the lock."""
        with self.lock:
            self.lock.notify_all()

    def stop(self):
        self._stopping.set()
        self._wake()
        if self.server:
            self.server.shutdown()
            self.server.server_close()
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=2)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def log(self, msg):
        if self.quiet:
            return
        try:
            out = self.log_stream or sys.stderr
            out.write("[%s %s] %s\n" % (self.log_name, time.strftime("%H:%M:%S"), msg))
            out.flush()
        except Exception:
            pass
