"""Runs a Pulumi Python program for language_host.py, in the program's own virtualenv: the
counterpart of Pulumi's pulumi-language-python-exec, with the same command line.

Configuration comes from PULUMI_CONFIG and PULUMI_CONFIG_SECRET_KEYS. Exit code 32 tells the host
that the error was already shown to the user (a RunError, or an exception with its traceback).
"""

import argparse
import asyncio
import logging
import os
import runpy
import sys
import traceback
from concurrent.futures import ThreadPoolExecutor

try:
    import pulumi
    import pulumi.runtime
except ImportError:
    print(
        f"The Pulumi SDK is not installed in {sys.prefix}: run `pulumi install` "
        "(or pip install -r requirements.txt in the program's virtualenv)",
        file=sys.stderr,
    )
    sys.exit(1)

SHOWN_ERROR_EXIT_CODE = 32


def main() -> int:
    parser = argparse.ArgumentParser(description="Execute a Pulumi Python program")
    for flag in (
        "project",
        "root_directory",
        "stack",
        "parallel",
        "dry_run",
        "pwd",
        "monitor",
        "engine",
        "tracing",
        "organization",
    ):
        parser.add_argument(f"--{flag}")
    parser.add_argument("PROGRAM")
    parser.add_argument("ARGS", nargs="*")
    args = parser.parse_args()

    pulumi.runtime.set_all_config(pulumi.runtime.get_config_env(), pulumi.runtime.get_config_secret_keys_env())
    settings = pulumi.runtime.Settings(
        monitor=args.monitor,
        engine=args.engine,
        project=args.project,
        stack=args.stack,
        parallel=int(args.parallel or 0),
        dry_run=args.dry_run == "true",
        organization=args.organization,
        root_directory=args.root_directory,
    )
    pulumi.runtime.configure(settings)
    sys.argv = [args.PROGRAM, *args.ARGS]
    if args.pwd:
        os.chdir(args.pwd)

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    executor = ThreadPoolExecutor(max_workers=max(settings.parallel or 1, 1) * 4)
    loop.set_default_executor(executor)
    # A failed resource leaves parts of the graph unresolved on purpose: asyncio's complaints about
    # them are noise (Pulumi's own runner silences them the same way).
    logging.getLogger("asyncio").setLevel(logging.CRITICAL)
    try:
        # A directory runs its __main__.py with the directory on sys.path, as `python DIR` does.
        loop.run_until_complete(pulumi.runtime.run_in_stack(lambda: runpy.run_path(args.PROGRAM, run_name="__main__")))
        return 0
    except pulumi.RunError as error:
        pulumi.log.error(str(error))
    except Exception:  # noqa: BLE001 - any failure of the program is reported the same way
        pulumi.log.error(f"Program failed with an unhandled exception:\n{traceback.format_exc()}")
    finally:
        executor.shutdown(wait=True)
        loop.close()
        sys.stdout.flush()
        sys.stderr.flush()
    return SHOWN_ERROR_EXIT_CODE


if __name__ == "__main__":
    sys.exit(main())
