"""cloudservice: build, push and run the app on local Docker or Kubernetes, chosen per stack."""

import os

import pulumi

from components.cloudservice import CloudService, CloudServiceArgs
from components.config import load_stack_config

config = load_stack_config(base_dir=os.path.dirname(os.path.abspath(__file__)))
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
