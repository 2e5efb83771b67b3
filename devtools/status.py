"""`make status`: per service what really runs (image digest), whether it is healthy or ready, its URL;
then the disk space the Docker engine and the platform's registry use (`make gc` frees it)."""

from __future__ import annotations

import docker

from .live import LiveRecord
from .registry import disk_usage, human, storage_dir
from .runtime import Workload, runtime_for
from .stack import Stack


def table(rows: list[list[str]]) -> str:
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows)


def status(stack: Stack) -> str:
    outputs = stack.outputs()
    runtime = runtime_for(stack, outputs)
    workloads = {row.service: row for row in runtime.workloads()}
    declared = outputs.get("digests") or {}
    urls = outputs.get("urls") or {}
    services = sorted({*workloads, *(outputs.get("images") or {})})
    where = outputs.get("network") or outputs.get("namespace")
    rows = [["SERVICE", "STATE", "IMAGE DIGEST", "URL"]]
    notes = []
    for service in services:
        row = workloads.get(service, Workload(service, "not running", ()))
        rows.append([service, row.state, ", ".join(row.digests) or "-", urls.get(service) or "-"])
        wanted = declared.get(service)
        if wanted and row.digests and set(row.digests) != {wanted}:
            notes.append(
                f"note: {service} runs {', '.join(row.digests)} but the stack declares {wanted}: run `make up`"
            )
    record = LiveRecord(stack)
    for service in sorted(record.read()):
        synced = record.live_updated(service, runtime.instances(service))
        if synced:
            notes.append(
                f"note: {service} is live-updated ({len(synced)} file{'s' if len(synced) != 1 else ''} synced by "
                f"`make dev`: {', '.join(synced[:3])}{', ...' if len(synced) > 3 else ''}): run `pulumi up` to bake it"
            )
    # An app on named networks only (Compose networks, `isolation: links`) has no one network to name.
    header = f"stack {stack.name} on {outputs['target']}{f' ({where})' if where else ''}, {len(services)} services"
    return "\n".join([header, table(rows), *notes, "", *space_used(stack.docker_client())])


def space_used(client: docker.DockerClient) -> list[str]:
    """What `docker system df` totals, and the registry's storage as `du` counts it."""
    usage = client.df()
    containers = sum(container.get("SizeRw") or 0 for container in usage.get("Containers") or [])
    volumes = sum(max((volume.get("UsageData") or {}).get("Size", 0), 0) for volume in usage.get("Volumes") or [])
    build_cache = sum(entry.get("Size") or 0 for entry in usage.get("BuildCache") or [])
    lines = [
        f"disk: engine {human(usage['LayersSize'])} in {len(usage.get('Images') or [])} images, "
        f"containers {human(containers)}, volumes {human(volumes)}, build cache {human(build_cache)}"
    ]
    if storage_dir().is_dir():
        lines.append(f"disk: registry {human(disk_usage(storage_dir()))} (`make gc` removes old images from both)")
    return lines
