"""HTTP on 8000 (GET answers "ok") and a UDP echo on 9000; with DATA_DIR set, each start first
appends a line to DATA_DIR/starts (and a start that cannot write there fails)."""

import os
import signal
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class Health(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Length", "3")
        self.end_headers()
        self.wfile.write(b"ok\n")

    def log_message(self, *args):
        pass


class Echo(socketserver.BaseRequestHandler):
    def handle(self):
        data, sock = self.request
        sock.sendto(data, self.client_address)


if __name__ == "__main__":
    signal.signal(signal.SIGTERM, lambda *_: os._exit(0))  # PID 1 has no default action for it
    if os.environ.get("DATA_DIR"):
        with open(os.path.join(os.environ["DATA_DIR"], "starts"), "a") as starts:
            starts.write(os.environ.get("GENERATION", "") + "\n")
    threading.Thread(target=socketserver.UDPServer(("0.0.0.0", 9000), Echo).serve_forever, daemon=True).start()
    ThreadingHTTPServer(("0.0.0.0", 8000), Health).serve_forever()
