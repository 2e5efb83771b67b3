"""Pulumi's provider for Python dynamic resources (the SDK's `python -m pulumi.dynamic`), able to
answer as many calls at once as the engine makes.

The SDK serves it from a pool of 4 threads, so a fifth call waits for one of the four to end. Our
readiness checks (components/readiness.py) hold their call until their workload is ready: with 50
services, the 5th to the 50th check, and every other call to the provider, queued behind 4 health
waits. The pool is started here with room for more calls than any `--parallel` runs at once;
threads start only when calls come.
"""

import os
import runpy
import sys
from concurrent import futures

THREADS = 256


class _ProviderThreads(futures.ThreadPoolExecutor):
    def __init__(self, max_workers=None, *args, **kwargs):
        super().__init__(THREADS, *args, **kwargs)


# As `python -m` does: the program's directory first, where the pickled providers' modules are.
sys.path[0] = os.getcwd()
futures.ThreadPoolExecutor = _ProviderThreads
runpy.run_module("pulumi.dynamic", run_name="__main__", alter_sys=True)
# The server has stopped (the CLI interrupts its plugins when it is done with them, and waits for
# each to exit): exit without the interpreter's shutdown, which waits for every thread of the pool.
sys.stdout.flush()
sys.stderr.flush()
os._exit(0)
