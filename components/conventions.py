"""The names and defaults every part of the project agrees on: the labels and annotations the stack
puts on what it creates (and that devtools, the tests and the bench look objects up by), where
secrets are mounted, and the defaults more than one module needs."""

import re

STACK_LABEL = "cloudservice.dev/stack"
"""On every engine and cluster object: the stack it belongs to."""
SERVICE_LABEL = "app.kubernetes.io/name"
"""On every object of one workload: its name."""
NETWORK_LABEL_PREFIX = "network.cloudservice.dev/"
"""`<prefix><network>: "true"` on the pods of each app network a NetworkPolicy isolates."""
FILES_HASH = "cloudservice.dev/files-hash"
"""Changes with the project files a workload mounts: a new container, or a pod template that rolls."""
SECRETS_REVISION = "cloudservice.dev/secrets-revision"
"""Changes with the secrets a workload reads: a new container, or a pod template that rolls."""
SECRETS_DIR = "/run/secrets"
"""Where secret files go on both targets (as Compose and Swarm mount them)."""
CONTENT_TAG = re.compile(r"c-[0-9a-f]{16}")
"""The tag of a built image, derived from what its build sees (components/image.py, content_tag)."""
DEFAULT_NETWORK = "default"
"""The app network of workloads that name none (Compose's name for it)."""
DEFAULT_READY_TIMEOUT = 60
"""Seconds a service may take to become ready (stack key `readyTimeout`)."""
DEFAULT_KEEP_RELEASES = 5
"""Releases per service `make gc` keeps as rollback targets (stack key `keepReleases`)."""
