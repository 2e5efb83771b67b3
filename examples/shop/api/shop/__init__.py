"""A small shop: a JSON API over PostgreSQL, and a worker that ships placed orders."""

VERSION = "1"
