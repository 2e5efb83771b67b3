"""A minute of soak on each target (bench/soak.py runs the long one, `make soak`): a prober at a
steady rate through the app's entry point while the stack is updated every 30 s (a source edit, then
`up`: a build and a rolling update of web's 3 replicas) and one replica is killed every minute.
Not one request may fail; what is left between updates (the stack's containers or pods, Pulumi's
processes and their open files) may not grow; the note redis holds outlives it all, and the state
has no operation left pending."""

from __future__ import annotations

import pytest

from support.soak import SoakedStack

pytestmark = pytest.mark.exclusive  # not one request may fail for a minute: a busy CPU would time some out

SECONDS = 60
MIN_PROBES = 500


@pytest.mark.parametrize("target", ["docker", "kubernetes"])
def test_a_minute_of_updates_and_killed_replicas_fails_no_request(target, project, registry, docker_client, cluster):
    soaked = SoakedStack(project, target, registry.password)
    try:
        report = soaked.soak(SECONDS)
        print(report.summary())
        assert soaked.problems(report, MIN_PROBES) == [], report.summary()
    finally:
        soaked.destroy()
