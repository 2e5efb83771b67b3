"""Benchmarks: the stack against the raw docker / docker-compose / kubectl way (`make bench`)."""
