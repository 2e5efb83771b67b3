"""The project's own Python tooling, shared by scripts/, the tests and the bench (never by the program)."""
