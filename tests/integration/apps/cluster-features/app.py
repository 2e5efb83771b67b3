"""`http`: answers every GET with JSON naming the service (SERVICE); `udp`: echoes datagrams on
port 5353, prefixed with "echo:"; `idle`: does nothing (a pod to run commands in). SIGTERM stops each."""

import json
import os
import signal
import socket
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"service": os.environ.get("SERVICE", "?"), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # the readiness probe asks every 2 s
        pass


def serve_udp():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as server:
        server.bind(("0.0.0.0", 5353))
        while True:
            data, sender = server.recvfrom(2048)
            server.sendto(b"echo:" + data, sender)


def main(role):
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # PID 1 has no default action for it
    if role == "http":
        ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
    elif role == "udp":
        serve_udp()
    else:
        threading.Event().wait()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "http")
