"""PostgreSQL connections: libpq's PG* environment variables, the password from a secret file."""

import os

import psycopg2
import psycopg2.extras


def connect():
    with open(os.environ["DB_PASSWORD_FILE"], encoding="utf-8") as secret:
        password = secret.read().strip()
    connection = psycopg2.connect(password=password, connect_timeout=5, cursor_factory=psycopg2.extras.RealDictCursor)
    connection.autocommit = True
    return connection
