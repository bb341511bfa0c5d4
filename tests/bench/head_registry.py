#!/usr/bin/env python3
"""head_registry.py: the smallest registry a verifying autodeployd needs for benchmark 4.

Answers `HEAD /v2/<name>/manifests/<tag>` (and GET /v2/) with `Docker-Content-Digest: DIGEST`,
the digest every push of the benchmark carries, so that `--verify-push require` lets each push
through after one HEAD on loopback: what verification costs on push -> PATCH. Counts the HEADs.

    head_registry.py --digest sha256:... --port-file FILE
"""
import argparse
import http.server
import os
import sys


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--digest", required=True)
    ap.add_argument("--port-file", required=True)
    a = ap.parse_args()

    class H(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True
        heads = 0

        def log_message(self, *args):
            pass

        def do_HEAD(self):
            ok = "/manifests/" in self.path
            H.heads += ok
            self.send_response(200 if ok else 404)
            self.send_header("Docker-Content-Digest", a.digest)
            self.send_header("Content-Type", "application/vnd.oci.image.manifest.v1+json")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_GET(self):
            body = b"{}" if self.path == "/v2/" else b'{"heads":%d}' % H.heads
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    tmp = a.port_file + ".tmp"
    with open(tmp, "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(tmp, a.port_file)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
