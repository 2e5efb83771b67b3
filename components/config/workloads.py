"""`services`, `jobs`, `networks` and `routes` of the stack config read into the app spec (components/spec.py),
key by key as workload_keys.py's table says, with the checks that span keys or workloads, and the
workloads ordered dependencies first."""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Mapping, Optional

from ..conventions import DEFAULT_NETWORK
from ..spec import AppSpec, JobSpec, NetworkSpec, ServiceSpec, WorkloadSpec
from .errors import DNS_LABEL, Reader
from .key_readers import KeyContext
from .routes import read_routes
from .workload_keys import JOB_KEYS, JOBS, SERVICE_KEYS, SERVICES, keys_of

WORKLOAD_KEYS = tuple(key for key in SERVICE_KEYS if key in JOB_KEYS)

_SERVICE = ServiceSpec(name="defaults")


def workload_key(workload: WorkloadSpec) -> str:
    return f"{'jobs' if isinstance(workload, JobSpec) else 'services'}.{workload.name}"


class WorkloadReader:
    """Reads `services` and `jobs` into the spec, checking the references between them."""

    def __init__(self, r: Reader, base_dir: str, build_args: Mapping[str, str], replicas_override: Optional[int]):
        self.r, self.base_dir, self.build_args, self.replicas_override = r, base_dir, build_args, replicas_override
        # Names of workloads with problems of their own: references to them are not problems too.
        self.declared: set[str] = set()
        self.invalid: set[str] = set()

    def app(self, raw_services: Any, raw_jobs: Any, raw_networks: Any, raw_routes: Any = None) -> AppSpec:
        r = self.r
        networks = self._networks(raw_networks)
        self.network_names = {network.name for network in networks} | {DEFAULT_NETWORK}
        services = self._each("services", raw_services if raw_services is not None else {}, self.service)
        if not services and not r.problems:
            r.fail("services", "at least one service")
        jobs = self._each("jobs", raw_jobs, self.job)
        self.invalid = self.declared - {w.name for w in (*services, *jobs)}
        by_name: dict[str, WorkloadSpec] = {}
        for workload in (*services, *jobs):
            if workload.name in by_name:
                r.fail(workload_key(workload), f"a name not already used by {workload_key(by_name[workload.name])}")
            by_name[workload.name] = workload
        for workload in by_name.values():
            self._check_references(workload, by_name)
        self._check_aliases(services, by_name)
        valid_services = {w.name: w for w in by_name.values() if isinstance(w, ServiceSpec)}
        routes = read_routes(r, raw_routes, valid_services, self.invalid)
        return AppSpec(workloads=tuple(dependencies_first(r, list(by_name.values()))), networks=networks, routes=routes)

    def _networks(self, raw: Any) -> tuple[NetworkSpec, ...]:
        """`networks: {front: {}, shared: {external: proxy-net}}`: the networks workloads may join."""
        networks = []
        for name, spec in self.r.mapping("networks", raw).items():
            key = f"networks.{name}"
            if (
                self.r.text(f"{key} (name)", name, DNS_LABEL, "a lowercase DNS label (a-z, 0-9, '-'; at most 32)")
                is None
            ):
                continue
            spec = self.r.mapping(key, spec if spec is not None else {})
            self.r.unknown_keys(f"{key}.", spec, ("external",))
            external = spec.get("external")
            if external is not None:
                external = self.r.text(f"{key}.external", external, expected="the name of an existing Docker network")
            networks.append(NetworkSpec(name=name, external=external))
        return tuple(networks)

    def _check_aliases(self, services: list[ServiceSpec], by_name: Mapping[str, WorkloadSpec]) -> None:
        """An alias is one more DNS name of one service: it may not be any other workload's name or alias."""
        owners: dict[str, str] = {}
        for service in services:
            for alias in service.aliases:
                if alias in by_name or alias in owners:
                    self.r.fail(
                        f"services.{service.name}.aliases", "names not used by another workload or alias", alias
                    )
                owners[alias] = service.name

    def _each(self, section: str, raw: Any, read: Callable) -> list:
        result = []
        for name, spec in self.r.mapping(section, raw).items():
            key = f"{section}.{name}"
            if (
                self.r.text(f"{key} (name)", name, DNS_LABEL, "a lowercase DNS label (a-z, 0-9, '-'; at most 32)")
                is None
            ):
                continue
            self.declared.add(name)
            before = len(self.r.problems)
            workload = read(key, name, self.r.mapping(key, spec))
            if len(self.r.problems) == before:
                result.append(workload)
        return result

    def service(self, key: str, name: str, spec: Mapping[str, Any]) -> Optional[ServiceSpec]:
        fields = self._read_keys(SERVICES, key, spec)
        if fields is None:
            return None
        service = ServiceSpec(name=name, **fields)
        if service.stateful and service.replicas > 1:
            self.r.fail(
                f"{key}.replicas",
                "0 or 1 for a service with a volume (its state lives on one volume)",
                service.replicas,
            )
            return None
        if self.replicas_override is not None and not service.stateful:
            service = dataclasses.replace(service, replicas=self.replicas_override)
        if service.autoscale is not None and not self._check_autoscale(key, service):
            return None
        self._check_mount_paths(key, service, volume_shorthand="volume" in spec)
        return service

    def job(self, key: str, name: str, spec: Mapping[str, Any]) -> Optional[JobSpec]:
        fields = self._read_keys(JOBS, key, spec)
        if fields is None:
            return None
        job = JobSpec(name=name, **fields)
        self._check_mount_paths(key, job)
        return job

    def _read_keys(self, section: str, key: str, spec: Mapping[str, Any]) -> Optional[dict[str, Any]]:
        """The spec fields of the keys written (the dataclass gives the others their defaults)."""
        r, before = self.r, len(self.r.problems)
        r.unknown_keys(f"{key}.", spec, SERVICE_KEYS if section == SERVICES else JOB_KEYS)
        unread: tuple[str, ...] = ()
        if ("build" in spec) == ("image" in spec):
            r.fail(key, "exactly one of `build` (a Docker build) or `image` (an existing image reference)")
            unread = ("build", "image")
        ctx = KeyContext(r, self.base_dir, self.build_args, frozenset(self.network_names), written=frozenset(spec))
        for entry in keys_of(section):
            written = {name: spec[name] for name in (entry.name, *entry.shorthands) if name in spec}
            if entry.read is None or not written or entry.name in unread:
                continue
            if entry.shorthands:
                ctx.read[entry.field] = entry.read(ctx, key, written)
            else:
                ctx.read[entry.field] = entry.read(ctx, f"{key}.{entry.name}", spec[entry.name])
        self._check_cpu_request(key, ctx.read)
        return ctx.read if len(r.problems) == before else None

    def _check_autoscale(self, key: str, service: ServiceSpec) -> bool:
        """`replicas` is the floor the autoscaler keeps: at least one, at most `max`; state stays on one pod."""
        problems = len(self.r.problems)
        if service.stateful:
            self.r.fail(f"{key}.autoscale", "no autoscale on a service with a writable volume (its state lives on one)")
        elif not 1 <= service.replicas <= service.autoscale.max_replicas:
            self.r.fail(
                f"{key}.replicas",
                f"the fewest replicas autoscale keeps: 1 to autoscale.max ({service.autoscale.max_replicas})",
                service.replicas,
            )
        return len(self.r.problems) == problems

    def _check_cpu_request(self, key: str, fields: dict[str, Any]) -> None:
        """The request defaults to the smaller of its default and the limit, and may not exceed the limit."""
        cpu = fields.get("cpu", _SERVICE.cpu)
        if "cpu_request" not in fields and cpu:
            fields["cpu_request"] = min(_SERVICE.cpu_request, cpu)
        cpu_request = fields.get("cpu_request")
        if cpu and cpu_request and cpu_request > cpu:
            self.r.fail(f"{key}.cpuRequest", f"at most the cpu limit ({cpu})", cpu_request)

    def _check_mount_paths(self, key: str, workload: WorkloadSpec, volume_shorthand: bool = False) -> None:
        """Each path in the container is mounted once: by a file, a secret file, a volume or a scratch path."""
        seen: dict[str, str] = {}
        volumes = workload.volumes if isinstance(workload, ServiceSpec) else ()
        mounts = [
            *((f.path, f"files.{f.path}") for f in workload.files),
            *((f.path, f"secretFiles.{f.path}") for f in workload.secret_files),
            *((v.path, "volume.path" if volume_shorthand else f"volumes.{v.name}.path") for v in volumes),
            *((p, "tmpfs") for p in workload.tmpfs),
            *((p, "ephemeral") for p in workload.ephemeral),
        ]
        for path, where in mounts:
            if path in seen:
                self.r.fail(f"{key}.{where}", f"a path not also used by {seen[path]}", path)
            seen.setdefault(path, where.split(".")[0])

    def _check_references(self, workload: WorkloadSpec, by_name: Mapping[str, WorkloadSpec]) -> None:
        r, key = self.r, workload_key(workload)
        services = sorted(n for n, w in by_name.items() if isinstance(w, ServiceSpec) and n != workload.name)
        for link in workload.links:
            target = by_name.get(link)
            if link in self.invalid:
                continue
            if not isinstance(target, ServiceSpec) or link == workload.name:
                r.fail(f"{key}.links", "names of other services: " + ", ".join(services), link)
            elif not target.ports:
                r.fail(f"{key}.links", f"a service with a port (services.{link} has none)", link)
        for name, condition in workload.depends_on.items():
            target = by_name.get(name)
            if name in self.invalid:
                continue
            if target is None or name == workload.name:
                r.fail(
                    f"{key}.dependsOn.{name}",
                    "the name of another service or job: " + ", ".join(sorted(set(by_name) - {workload.name})),
                )
            elif isinstance(target, JobSpec) and condition != "completed":
                r.fail(f"{key}.dependsOn.{name}", f"completed (jobs.{name} is a job)", condition)
            elif isinstance(target, ServiceSpec) and condition == "completed":
                r.fail(
                    f"{key}.dependsOn.{name}",
                    f"started or healthy (services.{name} is a service; jobs complete)",
                    condition,
                )
            elif condition == "healthy" and target.health is None:
                r.fail(f"{key}.dependsOn.{name}", f"started, or a health check on services.{name}", condition)


def dependencies_first(r: Reader, workloads: list[WorkloadSpec]) -> list[WorkloadSpec]:
    """Orders workloads so that each comes after what it links to or depends on; rejects cycles."""
    by_name = {w.name: w for w in workloads}
    ordered: list[WorkloadSpec] = []
    visiting: set[str] = set()

    def visit(workload: WorkloadSpec, referenced_by: str = "") -> None:
        if workload in ordered:
            return
        if workload.name in visiting:  # the reference that closes the cycle is named: links or dependsOn
            r.fail(referenced_by, "links and dependencies without a cycle", workload.name)
            return
        visiting.add(workload.name)
        for key, names in (("links", workload.links), ("dependsOn", workload.depends_on)):
            for name in names:
                if name in by_name:
                    visit(by_name[name], f"{workload_key(workload)}.{key}")
        visiting.discard(workload.name)
        if workload not in ordered:
            ordered.append(workload)

    for workload in workloads:
        visit(workload)
    return ordered
