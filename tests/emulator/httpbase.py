"""httpbase.py: the HTTP plumbing the Marathon emulator and the Slack sink share.

A threading server, and a keep-alive request handler that logs through its owner, registers
each connection with it (so the owner can cut every connection, as a fault or at stop) and
reads request bodies whether they come with a Content-Length or chunked. The owner (set on a
subclass per server) has `lock`, `_conns` (a set of sockets) and `log(msg)`.
"""
import http.server


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
