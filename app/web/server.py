"""cloudservice demo app: a small HTTP service that keeps its data in Redis.

Standard library only, so the image needs nothing but a Python base. Endpoints:
  GET  /          greeting with the app version and the hostname that answered
  GET  /healthz   readiness: 200 only while Redis answers
  GET  /livez     liveness: 200 while the process serves requests
  POST /notes     stores the request body as a note; GET /notes lists them
  POST /visits    counts a visit; GET /visits reads the counter
"""

import json
import os
import signal
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1"
GREETING = "Hello from cloudservice"
REDIS_HOST = os.environ.get("REDIS_HOST", "redis")
REDIS_PORT = int(os.environ.get("REDIS_PORT", "6379"))
PORT = int(os.environ.get("PORT", "8080"))
# Behind a load balancer that health-checks its replicas (the Docker router), a stopping replica
# first reports itself unready and keeps serving this long, so no request reaches it as it exits.
DRAIN_SECONDS = float(os.environ.get("DRAIN_SECONDS", "0"))
NOTES_KEY, VISITS_KEY = "cloudservice:notes", "cloudservice:visits"


class RedisError(Exception):
    pass


class Stopping(Exception):
    """The replica drains: unready, still serving."""


def redis(*args: str):
    """Sends one command in the Redis protocol (RESP) and returns the decoded reply."""
    payload = f"*{len(args)}\r\n" + "".join(f"${len(a.encode())}\r\n{a}\r\n" for a in args)
    with socket.create_connection((REDIS_HOST, REDIS_PORT), timeout=2) as conn:
        conn.sendall(payload.encode())
        return _read_reply(conn.makefile("rb"))


def _read_reply(stream):
    line = stream.readline().rstrip(b"\r\n")
    if not line:
        raise RedisError("connection closed")
    kind, rest = line[:1], line[1:].decode()
    if kind == b"+":
        return rest
    if kind == b"-":
        raise RedisError(rest)
    if kind == b":":
        return int(rest)
    if kind == b"$":
        return None if rest == "-1" else stream.read(int(rest) + 2)[:-2].decode()
    if kind == b"*":
        return [] if rest == "-1" else [_read_reply(stream) for _ in range(int(rest))]
    raise RedisError(f"unexpected reply {line!r}")


class Handler(BaseHTTPRequestHandler):
    server_version = f"cloudservice/{VERSION}"

    def do_GET(self):
        routes = {
            "/": lambda: {"message": GREETING, "version": VERSION, "host": socket.gethostname()},
            "/livez": lambda: {"status": "ok"},
            "/healthz": self._health,
            "/notes": lambda: {"notes": redis("LRANGE", NOTES_KEY, "0", "-1")},
            "/visits": lambda: {"visits": int(redis("GET", VISITS_KEY) or 0)},
        }
        self._answer(routes.get(self.path))

    def _health(self):
        if draining.is_set():
            raise Stopping()  # answered 503: out of the balancer's rotation
        return {"status": "ok", "redis": redis("PING")}

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)).decode()
        routes = {
            "/notes": lambda: {"count": redis("RPUSH", NOTES_KEY, body)},
            "/visits": lambda: {"visits": redis("INCR", VISITS_KEY)},
        }
        self._answer(routes.get(self.path), created=True)

    def _answer(self, route, created=False):
        if route is None:
            return self._send(404, {"error": "not found"})
        try:
            self._send(201 if created else 200, route())
        except Stopping:
            self._send(503, {"status": "stopping"})
        except (OSError, RedisError) as err:
            self._send(503, {"error": f"redis unavailable: {err}"})

    def _send(self, status, document):
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write(f"{self.address_string()} {fmt % args}\n")


class Server(ThreadingHTTPServer):
    request_queue_size = 64  # bursts wait in the backlog instead of being refused
    daemon_threads = False  # server_close() waits for the requests in flight


draining = threading.Event()


def stop_gracefully(server: Server) -> None:
    """On SIGTERM (docker stop, pod termination) drain (DRAIN_SECONDS), finish the requests in flight,
    then exit."""

    def stop():
        draining.set()
        time.sleep(DRAIN_SECONDS)
        server.shutdown()

    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=stop).start())


if __name__ == "__main__":
    server = Server(("", PORT), Handler)
    stop_gracefully(server)
    print(f"cloudservice {VERSION} listening on :{PORT}, redis at {REDIS_HOST}:{REDIS_PORT}", flush=True)
    # shutdown() is noticed at the next poll: 0.05 s makes a stop (docker stop, a live update's
    # restart, a rolling replacement) take that long instead of up to the default 0.5 s.
    server.serve_forever(poll_interval=0.05)
    server.server_close()
