"""python -m devtools COMMAND ...: see devtools/__init__.py."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def parse(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="devtools", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("dev", "watch the sources: a save syncs (sync rules) or rebuilds and rolls its service, then prints its URL"),
        ("logs", "follow the logs of the stack's services"),
        ("status", "each service's running image digest, health or readiness, and URL; the disk space images use"),
        ("gc", "remove the stack's old images from the engine and the registry, but the kept and referenced ones"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--stack", required=True)
        if name == "logs":
            command.add_argument("--service", default="", help="comma-separated services (default: all)")
            command.add_argument("--tail", type=int, default=20, help="earlier lines to show first (default 20)")
    command = commands.add_parser(
        "stack-file", help="bring the committed settings of a stack into your own stack file (`make up` runs it)"
    )
    command.add_argument("stack", metavar="STACK")
    command.add_argument(
        "template", metavar="TEMPLATE", nargs="?", help="the committed stack to take the settings from (default: STACK)"
    )
    command = commands.add_parser(
        "recover", help="ready a stack whose last up or destroy was killed (`make up` and `make destroy` run it first)"
    )
    command.add_argument("--stack", help="the stack (default: the selected one)")
    return parser.parse_args(argv)


def run(args: argparse.Namespace) -> int:
    if args.command == "stack-file":
        from .stack_files import update  # yaml only, no engine or cluster client

        update(args.stack, args.template)
        return 0
    if args.command == "recover":
        from .recover import recover

        try:
            recover(args.stack)
        except RuntimeError as error:
            print(f"recover: {error}", file=sys.stderr)
            return 1
        return 0
    from .stack import Stack, StackError

    stack = Stack(args.stack, Path.cwd())  # the project directory, as for `pulumi`
    try:
        if args.command == "status":
            from .status import status

            print(status(stack))
        elif args.command == "gc":
            from .gc import collect

            collect(stack)
        elif args.command == "logs":
            from .logs import follow

            follow(stack, [s for s in args.service.split(",") if s], tail=args.tail)
        else:
            from .dev import dev  # imports the components (content tags) only here

            dev(stack)
    except StackError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    args = parse(argv)
    try:
        return run(args)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
