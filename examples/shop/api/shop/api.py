"""The shop's JSON API: products, orders, and a health check that reaches the database.

GET /healthz, GET /api/, GET /api/products, GET /api/orders, GET /api/orders/<id>,
POST /api/orders {"product": <id>, "quantity": <n>}.
"""

import json
import os
import re
import signal
import threading
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import psycopg2

from . import VERSION
from .db import connect

ORDER_COLUMNS = "o.id, p.name AS product, o.quantity, o.status, o.placed_at::text, o.shipped_at::text"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        if self.path == "/healthz":
            self.query("SELECT 1 AS ok")
            return self.send_json(200, {"status": "ok"})
        if self.path == "/api/":
            return self.send_json(200, {"service": "shop-api", "version": VERSION})
        if self.path == "/api/products":
            return self.send_json(200, self.query("SELECT id, name, price_cents FROM products ORDER BY id"))
        if self.path == "/api/orders":
            return self.send_json(
                200,
                self.query(
                    f"SELECT {ORDER_COLUMNS} FROM orders o JOIN products p ON p.id = o.product_id ORDER BY o.id"
                ),
            )
        match = re.fullmatch(r"/api/orders/([0-9]{1,9})", self.path)
        if match:
            rows = self.query(
                f"SELECT {ORDER_COLUMNS} FROM orders o JOIN products p ON p.id = o.product_id WHERE o.id = %s",
                (int(match.group(1)),),
            )
            return self.send_json(200, rows[0]) if rows else self.send_json(404, {"error": "no such order"})
        self.send_json(404, {"error": "not found"})

    def do_POST(self):
        if self.path != "/api/orders":
            return self.send_json(404, {"error": "not found"})
        try:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            product, quantity = int(body["product"]), int(body.get("quantity", 1))
        except (ValueError, KeyError, TypeError):
            return self.send_json(400, {"error": 'expected {"product": <id>, "quantity": <n>}'})
        try:
            rows = self.query(
                "INSERT INTO orders (product_id, quantity) VALUES (%s, %s) RETURNING id, status", (product, quantity)
            )
        except (psycopg2.IntegrityError, psycopg2.DataError) as error:
            return self.send_json(400, {"error": error.pgerror.strip() if error.pgerror else str(error)})
        self.send_json(201, rows[0])

    def query(self, sql, params=()):
        # psycopg2's `with connection` only ends a transaction; closing() closes the connection.
        with closing(connect()) as connection, connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [dict(row) for row in cursor.fetchall()]

    def send_json(self, status, payload):
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def handle_one_request(self):
        try:
            super().handle_one_request()
        except psycopg2.OperationalError as error:
            self.log_error("database unavailable: %s", error)
            self.send_json(503, {"error": "database unavailable"})


def main():
    server = ThreadingHTTPServer(("0.0.0.0", int(os.environ.get("PORT", "8000"))), Handler)
    # Stop accepting on SIGTERM and let requests in flight finish.
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"shop-api {VERSION} listening on {server.server_address[1]}", flush=True)
    server.serve_forever()
    server.server_close()


if __name__ == "__main__":
    main()
