"""`/burn?ms=N`: spends N milliseconds of CPU (at most 200) before answering; any other path answers
at once, naming the pod. SIGTERM stops it."""

import os
import signal
import socket
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_BURN_MS = 200


def burn(milliseconds: int) -> None:
    """Busy for `milliseconds` of this thread's CPU time, however long the CPU limit makes it wait."""
    end = time.thread_time() + min(milliseconds, MAX_BURN_MS) / 1000
    while time.thread_time() < end:
        pass


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        url = urlsplit(self.path)
        if url.path == "/burn":
            burn(int(parse_qs(url.query).get("ms", ["0"])[0]))
        body = socket.gethostname().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):  # thousands of requests
        pass


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # PID 1 has no default action for it
    ThreadingHTTPServer(("0.0.0.0", 8080), Handler).serve_forever()
