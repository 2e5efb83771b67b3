"""The guestbook's front: counts visits in the store (Redis protocol, no client library needed)."""

import json
import os
import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def store(*command: str) -> bytes:
    request = f"*{len(command)}\r\n" + "".join(f"${len(part)}\r\n{part}\r\n" for part in command)
    with socket.create_connection((os.environ["STORE_HOST"], 6379), timeout=3) as connection:
        connection.sendall(request.encode())
        return connection.recv(1024)


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path == "/healthz":
            body = {"ok": True}
        else:
            hits = int(store("INCR", "hits").strip().lstrip(b":"))
            body = {"greeting": os.environ.get("GREETING"), "hits": hits, "release": os.environ.get("RELEASE")}
        payload = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)


ThreadingHTTPServer(("0.0.0.0", 8000), Handler).serve_forever()
