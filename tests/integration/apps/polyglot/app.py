"""polyglot: one image, five roles, standard library only (see docs.md).

serve    HTTP on $PORT (80) and metrics on $METRICS_PORT (9100); refuses to start before `migrate`
         has run; GET / (the docs), /healthz, /status (what it sees: schema, config file, secrets
         digests, worker heartbeats), POST /beat (the worker's heartbeat)
store    a key-value store on 7000: GET/PUT /kv/<key>, kept in /data
migrate  sets schema=2 in the store, after printing what it does
worker   no port: posts a heartbeat to the API every second
crash    prints a fatal error and exits 1
"""

import hashlib
import json
import os
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

VERSION = "1"
AT_START = 15
"""Seconds a connection made as the process starts may take: room for a SYN resent at 3 s or 7 s, as
on a cluster that drops what its NetworkPolicies do not allow yet (a new pod's address joins them
only once the pod has started)."""


def store_url(key: str) -> str:
    return f"http://{os.environ['STORE_HOST']}:{os.environ['STORE_PORT']}/kv/{key}"


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class Handler(BaseHTTPRequestHandler):
    routes: dict = {}

    def log_message(self, *args):  # quiet: one line per request is noise in `docker logs`
        pass

    def reply(self, status: int, body, content_type="application/json"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        self.handle_route("GET")

    def do_PUT(self):
        self.handle_route("PUT")

    def do_POST(self):
        self.handle_route("POST")

    def handle_route(self, method):
        for (route_method, prefix), handler in self.routes.items():
            if method == route_method and self.path.startswith(prefix):
                return handler(self)
        self.reply(404, {"error": "not found"})


def listen(port: int, routes: dict) -> ThreadingHTTPServer:
    handler = type("Routes", (Handler,), {"routes": routes})
    server = ThreadingHTTPServer(("", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def serve():
    status = urllib.request.urlopen(store_url("schema"), timeout=AT_START)
    schema = json.loads(status.read())["value"]
    if schema != "2":
        sys.exit(f"fatal: schema is {schema!r}, run the migration first")
    beats = {"count": 0}

    def beat(handler):
        beats["count"] += 1
        handler.reply(200, {"ok": True})

    def state(handler):
        config_path = "/etc/polyglot/config.json"
        handler.reply(
            200,
            {
                "version": VERSION,
                "schema": schema,
                "uid": os.getuid(),
                "pid": os.getpid(),
                "pid_1": open("/proc/1/cmdline").read().split("\0")[0],
                "config": json.load(open(config_path)) if os.path.exists(config_path) else None,
                "db_password_sha256": digest(os.environ.get("DB_PASSWORD", "")),
                "api_token_sha256": digest(open("/run/secrets/api_token").read())
                if os.path.exists("/run/secrets/api_token")
                else None,
                "worker_beats": beats["count"],
            },
        )

    listen(
        int(os.environ.get("METRICS_PORT", "9100")),
        {("GET", "/metrics"): lambda h: h.reply(200, f"polyglot_beats {beats['count']}\n", "text/plain")},
    )
    routes = {
        ("GET", "/healthz"): lambda h: h.reply(200, {"ok": True}),
        ("GET", "/status"): state,
        ("POST", "/beat"): beat,
        ("GET", "/"): lambda h: h.reply(200, open("/srv/www/index.html").read(), "text/html"),
    }
    print(f"serving version {VERSION} on port {os.environ.get('PORT', '80')} as uid {os.getuid()}")
    listen(int(os.environ.get("PORT", "80")), routes)
    threading.Event().wait()


def store():
    directory = os.environ.get("DATA_DIR", "/data")

    def path(handler):
        return os.path.join(directory, handler.path.rsplit("/", 1)[1])

    def get(handler):
        value = open(path(handler)).read() if os.path.exists(path(handler)) else None
        handler.reply(200, {"value": value})

    def put(handler):
        with open(path(handler), "w") as out:
            out.write(handler.rfile.read(int(handler.headers["Content-Length"])).decode())
        handler.reply(200, {"ok": True})

    listen(
        7000, {("GET", "/healthz"): lambda h: h.reply(200, {"ok": True}), ("GET", "/kv/"): get, ("PUT", "/kv/"): put}
    )
    print("store listening on 7000")
    threading.Event().wait()


def migrate():
    print("migrating schema to 2")
    # At once: a store the stack declared healthy is routable (the rollout check waits for its Service).
    urllib.request.urlopen(urllib.request.Request(store_url("schema"), data=b"2", method="PUT"), timeout=AT_START)
    print("migration done")


def worker():
    url = f"http://{os.environ['API_HOST']}:{os.environ['API_PORT']}/beat"
    print("worker started")
    while True:
        try:
            urllib.request.urlopen(urllib.request.Request(url, data=b"", method="POST"), timeout=3)
        except OSError as error:
            print(f"heartbeat failed: {error}")
        time.sleep(1)


def crash():
    print("fatal: cannot open database polyglot (connection refused)")
    sys.exit(1)


if __name__ == "__main__":
    {"serve": serve, "store": store, "migrate": migrate, "worker": worker, "crash": crash}[sys.argv[1]]()
