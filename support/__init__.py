"""What the tests and the bench share, and only that: testing.py (a private copy of the project, the
platform's credentials, HTTP and polling helpers) and processes.py (long-running commands under
test). The user-facing commands live in devtools/, which support may import, never the other way
round; the program imports neither."""
