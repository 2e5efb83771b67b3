"""cloudservice: build, push and run the app on local Docker or Kubernetes, chosen per stack."""

import os

import pulumi

from components.cloudservice import CloudService, CloudServiceArgs
from components.config import load_stack_config

base_dir = os.path.dirname(os.path.abspath(__file__))
config = load_stack_config(base_dir=base_dir)
for notice in config.notices:  # what a Compose file's mapping approximated or ignored
    pulumi.log.warn(notice)
app = CloudService(config.name_prefix, CloudServiceArgs.of(config))

pulumi.export("target", config.target)
pulumi.export("url", app.url)
pulumi.export("urls", app.urls)
pulumi.export("images", app.images)
pulumi.export("digests", app.digests)
if config.target == "docker":
    pulumi.export("network", app.network)
else:
    pulumi.export("namespace", app.namespace)
    pulumi.export("services", app.services)
# `make dev`'s live-update rules (paths relative to the project), when a service declares any.
sync = {
    service.name: [rule.output(base_dir) for rule in service.sync] for service in config.app.services if service.sync
}
if sync:
    pulumi.export("sync", sync)
