"""Live update's test app: GET /file answers /srv/site/message.txt as it is now (a sync shows at
once), GET /boot the one the process read when it started (only a restart or a new image shows it)."""

import http.server
import pathlib
import signal
import sys

MESSAGE = pathlib.Path("/srv/site/message.txt")
BOOT = MESSAGE.read_text()


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        answers = {"/file": MESSAGE.read_text, "/boot": lambda: BOOT, "/healthz": lambda: "ok\n"}
        if self.path not in answers:
            self.send_error(404)
            return
        body = answers[self.path]().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # PID 1: stop at once when asked
http.server.ThreadingHTTPServer(("", 8000), Handler).serve_forever()
