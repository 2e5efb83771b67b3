"""The background worker: ships placed orders. It has no port; it only talks to the database."""

import signal
import threading

import psycopg2

from . import VERSION
from .db import connect

stopping = threading.Event()


def ship_placed_orders(connection):
    with connection.cursor() as cursor:
        cursor.execute("UPDATE orders SET status = 'shipped', shipped_at = now() WHERE status = 'placed' RETURNING id")
        return [row["id"] for row in cursor.fetchall()]


def main():
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    print(f"shop-worker {VERSION} started", flush=True)
    connection = None
    while not stopping.is_set():
        try:
            connection = connection or connect()
            for order in ship_placed_orders(connection):
                print(f"shipped order {order}", flush=True)
        except psycopg2.Error as error:
            print(f"database unavailable, retrying: {error}".strip(), flush=True)
            connection = None
        stopping.wait(1)
    print("shop-worker stopped", flush=True)


if __name__ == "__main__":
    main()
