"""Pulumi mocks that record the resource graph, for the unit tests.

`RecordingMocks.new_resource` records every registration (type, name, inputs, provider) and, via
`RecordingMonitor`, the parent, dependencies, options and aliases the SDK sent with it, under the URN
the engine would give it (`aliases_of` resolves aliases to URNs by the engine's rules too). Outputs
are deterministic: a RemoteImage gets `imageId` "sha256:<hex of its name>", a RegistryImage
`sha256Digest` "sha256:<64 hex>", a Service a cluster IP and node ports, a Deployment or Job a
UID, a generation and (unless given) a name, a StackReference the outputs the test gave it, so
assertions can compute the values they expect. The Docker engine's answers (image IDs) come from
`local_images`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import rpc
from pulumi.runtime.proto import alias_pb2
from pulumi.runtime.sync_await import _sync_await

from components.image import Engine

PROJECT = "cloudservice"

REMOTE_IMAGE = "docker:index/remoteImage:RemoteImage"
REGISTRY_IMAGE = "docker:index/registryImage:RegistryImage"
CONTAINER = "docker:index/container:Container"
NETWORK = "docker:index/network:Network"
VOLUME = "docker:index/volume:Volume"
DOCKER_PROVIDER = "pulumi:providers:docker"
K8S_PROVIDER = "pulumi:providers:kubernetes"
NAMESPACE = "kubernetes:core/v1:Namespace"
SECRET = "kubernetes:core/v1:Secret"
SERVICE = "kubernetes:core/v1:Service"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
CONFIG_MAP = "kubernetes:core/v1:ConfigMap"
JOB = "kubernetes:batch/v1:Job"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
STACK_REFERENCE = "pulumi:pulumi:StackReference"
ROLLOUT_CHECK = "pulumi-python:dynamic/cloudservice:RolloutCheck"
JOB_CHECK = "pulumi-python:dynamic/cloudservice:JobCheck"
ROOT_STACK = "pulumi:pulumi:Stack"

CLOUD_SERVICE = "cloudservice:index:CloudService"
CONTAINER_IMAGE = "cloudservice:index:ContainerImage"
APP_NETWORK = "cloudservice:index:AppNetwork"
DOCKER_SERVICE = "cloudservice:index:DockerService"
DOCKER_JOB = "cloudservice:index:DockerJob"
APP_NAMESPACE = "cloudservice:index:AppNamespace"
KUBERNETES_SERVICE = "cloudservice:index:KubernetesService"
KUBERNETES_JOB = "cloudservice:index:KubernetesJob"


def image_id(name: str) -> str:
    """The local image ID the mocked engine gives the image built/pulled as `name`."""
    return "sha256:" + hashlib.sha256(f"image:{name}".encode()).hexdigest()


def registry_digest(name: str) -> str:
    """The registry digest the mocked registry returns for a push of `name`."""
    return "sha256:" + hashlib.sha256(f"registry:{name}".encode()).hexdigest()


def uid(name: str) -> str:
    """The UID the mocked API server gives the object registered as `name`."""
    return hashlib.sha256(f"uid:{name}".encode()).hexdigest()[:32]


def fake_digest(seed: str) -> str:
    return "sha256:" + hashlib.sha256(seed.encode()).hexdigest()


@dataclass
class Recorded:
    urn: str
    type: str
    name: str
    inputs: dict
    outputs: dict
    custom: bool
    provider: Optional[str] = None
    """The provider reference (`<urn>::<id>`) the SDK sent, or None for the default provider."""
    parent: Optional[str] = None
    dependencies: list[str] = field(default_factory=list)
    delete_before_replace: bool = False
    ignore_changes: list[str] = field(default_factory=list)
    replace_on_changes: list[str] = field(default_factory=list)
    delete_timeout: str = ""
    """The custom delete timeout sent (`customTimeouts.delete`), or ""."""
    aliases: list[alias_pb2.Alias] = field(default_factory=list)
    """The aliases as sent: each a URN or a spec (name, type, parentUrn, noParent...)."""

    @property
    def provider_urn(self) -> Optional[str]:
        return self.provider.rsplit("::", 1)[0] if self.provider else None


class RecordingMocks(pulumi.runtime.Mocks):
    def __init__(self, stack: str, stack_outputs: Optional[dict[str, dict]] = None, preview: bool = False) -> None:
        self.stack = stack
        self.preview = preview
        self.resources: list[Recorded] = []
        self.stack_outputs = stack_outputs or {}
        self.calls: list[pulumi.runtime.MockCallArgs] = []
        self.local_images: dict[str, str] = {}
        """Image name to ID: the images the mocked Docker engine has (base images of builds)."""
        self.engine_lookups: list[tuple[Optional[str], str]] = []
        """(engine host, image name) of each image the program asked the engine about."""
        self._request = threading.local()
        self._services = 0

    # -- the Mocks interface ------------------------------------------------------------------
    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[Optional[str], dict]:
        request = getattr(self._request, "value", None) or {}
        state = self._outputs(args.typ, args.name, args.inputs)
        self.resources.append(
            Recorded(
                urn=request.get("urn", f"urn:unknown::{args.typ}::{args.name}"),
                type=args.typ,
                name=args.name,
                inputs=args.inputs,
                outputs=state,
                custom=bool(args.custom) or bool(args.resource_id),
                provider=args.provider or None,
                parent=request.get("parent") or None,
                dependencies=request.get("dependencies", []),
                delete_before_replace=request.get("delete_before_replace", False),
                ignore_changes=request.get("ignore_changes", []),
                replace_on_changes=request.get("replace_on_changes", []),
                delete_timeout=request.get("delete_timeout", ""),
                aliases=request.get("aliases", []),
            )
        )
        resource_id = args.resource_id or f"{args.name}-id"
        return (resource_id if (args.custom or args.resource_id) else None), state

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict, list]:
        self.calls.append(args)
        return {}, []

    def engine_image_id(self, engine: Engine, name: str) -> Optional[str]:
        """What the engine answers (components.image.Engine.image_id): the images `local_images` names."""
        self.engine_lookups.append((engine.host, name))
        return self.local_images.get(name)

    def _outputs(self, typ: str, name: str, inputs: dict) -> dict:
        state = dict(inputs)
        if typ == REMOTE_IMAGE:
            state["imageId"] = image_id(inputs["name"])
            state["repoDigest"] = inputs["name"].split(":")[0] + "@" + registry_digest(inputs["name"])
        elif typ == REGISTRY_IMAGE:
            state["sha256Digest"] = registry_digest(inputs["name"])
        elif typ == SERVICE:
            self._services += 1
            spec = dict(inputs.get("spec", {}))
            spec["clusterIP"] = f"10.96.0.{self._services}"
            if spec.get("type") in ("NodePort", "LoadBalancer"):
                spec["ports"] = [{**port, "nodePort": 30000 + self._services} for port in spec.get("ports", [])]
            state["spec"] = spec
            if spec.get("type") == "LoadBalancer":
                state["status"] = {"loadBalancer": {"ingress": [{"ip": f"192.0.2.{self._services}"}]}}
        elif typ in (DEPLOYMENT, JOB):  # what the provider (auto-naming) and the API server add
            metadata = inputs.get("metadata", {})
            state["metadata"] = {
                **metadata,
                "name": metadata.get("name") or f"{name}-{uid(name)[:8]}",
                "uid": uid(name),
                "generation": 1,
            }
        elif typ == SECRET and not self.preview:  # the API server's UID; a changed Secret is replaced
            state["metadata"] = {
                **inputs.get("metadata", {}),
                "uid": uid(f"{name}:{json.dumps(inputs.get('stringData'), sort_keys=True)}"),
            }
        elif typ == STACK_REFERENCE:
            state["outputs"] = self.stack_outputs.get(inputs["name"], {})
            state["secretOutputNames"] = []
        return state

    # -- queries -------------------------------------------------------------------------------
    def of_type(self, typ: str) -> list[Recorded]:
        return [r for r in self.resources if r.type == typ]

    def get(self, typ: str, name: str) -> Recorded:
        found = [r for r in self.resources if r.type == typ and r.name == name]
        assert len(found) == 1, f"expected one {typ} named {name!r}, found {len(found)}: {self.summary()}"
        return found[0]

    def find(self, typ: str, name: str) -> Optional[Recorded]:
        found = [r for r in self.resources if r.type == typ and r.name == name]
        return found[0] if found else None

    def by_urn(self, urn: str) -> Recorded:
        found = [r for r in self.resources if r.urn == urn]
        assert len(found) == 1, f"no resource with URN {urn}"
        return found[0]

    def parent_of(self, resource: Recorded) -> Recorded:
        assert resource.parent, f"{resource.type} {resource.name} has no parent"
        return self.by_urn(resource.parent)

    def provider_of(self, resource: Recorded) -> Optional[Recorded]:
        return self.by_urn(resource.provider_urn) if resource.provider else None

    def children_of(self, resource: Recorded) -> list[Recorded]:
        return [r for r in self.resources if r.parent == resource.urn]

    def summary(self) -> list[tuple[str, str]]:
        return sorted((r.type, r.name) for r in self.resources)

    def aliases_of(self, resource: Recorded) -> set[str]:
        """The URNs the engine would look for `resource` under in the old state: its own aliases, and
        for each alias of its parent the same names under that alias (a child named `<parent>-x`
        follows its renamed parent), as pkg/resource/deploy/step_generator.go generateAliases does."""
        parent = self.by_urn(resource.parent) if resource.parent and urn_type(resource.parent) != ROOT_STACK else None
        own = {self._collapse(resource, alias) for alias in resource.aliases}
        names = [(resource.type, resource.name)] + [
            (urn_type(urn).split("$")[-1], urn.rsplit("::", 1)[1]) for urn in own
        ]
        inherited = set()
        for parent_alias in self.aliases_of(parent) if parent else ():
            for typ, name in names:
                if name.startswith(parent.name):
                    name = parent_alias.rsplit("::", 1)[1] + name[len(parent.name) :]
                inherited.add(self.urn(parent_alias, typ, name))
        return own | inherited

    def urn(self, parent: str, typ: str, name: str) -> str:
        """The URN the engine gives `name` of `typ` under `parent` (a URN, or "" for none): the
        parent's qualified type, except the root stack's, prefixes the type."""
        if parent and urn_type(parent) != ROOT_STACK:
            typ = f"{urn_type(parent)}${typ}"
        return f"urn:pulumi:{self.stack}::{PROJECT}::{typ}::{name}"

    def _collapse(self, resource: Recorded, alias: alias_pb2.Alias) -> str:
        if alias.WhichOneof("alias") == "urn":
            return alias.urn
        spec = alias.spec
        parent = "" if spec.noParent else spec.parentUrn or resource.parent or ""
        return self.urn(parent, spec.type or resource.type, spec.name or resource.name)


def urn_type(urn: str) -> str:
    """The qualified type of a URN: `Parent$Child` types joined by `$`."""
    return urn.split("::")[2]


class RecordingMonitor(pulumi_mocks.MockMonitor):
    """Hands the parts of a registration that MockResourceArgs lacks (URN, parent, dependencies,
    options, aliases) to the mocks; the monitor calls new_resource on the same thread. URNs are
    the engine's (the stock mock keeps only the parent's last type)."""

    def __init__(self, mocks: RecordingMocks) -> None:
        super().__init__(mocks)
        self.recording = mocks

    def make_urn(self, parent: str, type_: str, name: str) -> str:
        return self.recording.urn(parent, type_, name)

    def _with_request(self, request, call):
        self.recording._request.value = {
            "urn": self.make_urn(request.parent, request.type, request.name),
            "parent": request.parent,
            "dependencies": list(getattr(request, "dependencies", [])),
            "delete_before_replace": bool(getattr(request, "deleteBeforeReplace", False)),
            "ignore_changes": list(getattr(request, "ignoreChanges", [])),
            "replace_on_changes": list(getattr(request, "replaceOnChanges", [])),
            "delete_timeout": request.customTimeouts.delete if hasattr(request, "customTimeouts") else "",
            "aliases": list(getattr(request, "aliases", [])),
        }
        try:
            return call(request)
        finally:
            self.recording._request.value = None

    def RegisterResource(self, request):
        return self._with_request(request, super().RegisterResource)

    def ReadResource(self, request):
        return self._with_request(request, super().ReadResource)


def install_mocks(stack: str = "dev", stack_outputs: Optional[dict] = None, preview: bool = False) -> RecordingMocks:
    mocks = RecordingMocks(stack, stack_outputs, preview)
    Engine.image_id = lambda engine, name: mocks.engine_image_id(engine, name)  # no engine in the unit suite
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=preview, monitor=RecordingMonitor(mocks))
    return mocks


def run(program: Callable[[], Any]) -> Any:
    """Runs `program` as a Pulumi program against the installed mocks, waits until every resource is
    registered, and returns what it returned (resources stay usable with `resolve`)."""
    box: dict[str, Any] = {}

    @pulumi.runtime.test
    def wrapper():
        box["result"] = program()

    wrapper()
    return box.get("result")


def resolve(value: Any) -> Any:
    """The plain value of an Output (or of a structure holding Outputs), once `run` has finished."""
    return _sync_await(pulumi.Output.from_input(value).future())


def is_secret(value: Any) -> bool:
    return _sync_await(pulumi.Output.from_input(value).is_secret())


def unwrap_secrets(value: Any) -> Any:
    """Inputs as the engine sees them once decrypted (rpc secret wrappers removed)."""
    if rpc.is_rpc_secret(value):
        return unwrap_secrets(rpc.unwrap_rpc_secret(value))
    if isinstance(value, dict):
        return {k: unwrap_secrets(v) for k, v in value.items()}
    if isinstance(value, list):
        return [unwrap_secrets(v) for v in value]
    return value


def plaintext_occurrences(value: Any, needle: str, path: str = "") -> list[str]:
    """Paths where `needle` appears in `value` outside an rpc secret wrapper."""
    if rpc.is_rpc_secret(value):
        return []
    if isinstance(value, dict):
        return [hit for k, v in value.items() for hit in plaintext_occurrences(v, needle, f"{path}.{k}")]
    if isinstance(value, list):
        return [hit for i, v in enumerate(value) for hit in plaintext_occurrences(v, needle, f"{path}[{i}]")]
    if isinstance(value, str) and needle in value:
        return [path or "."]
    return []
