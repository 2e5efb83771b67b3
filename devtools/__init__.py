"""The project's user-facing commands: `python -m devtools COMMAND`, run in the project directory
with the environment of scripts/env.sh, as `make` runs them.

- `dev --stack NAME` (`make dev`): save -> the one service rebuilt, rolled and live (dev.py).
- `logs --stack NAME [--service A,B] [--tail N]` (`make logs`): every service's logs, followed (logs.py).
- `status --stack NAME` (`make status`): what really runs, healthy or not, and the disk space the
  engine and the registry use (status.py).
- `gc --stack NAME` (`make gc`): the stack's old images out of the engine and the registry, the
  newest `keepReleases` and every referenced one kept (gc.py, registry.py).
- `stack-file STACK [TEMPLATE]` (`make up`, first): the committed settings of a stack brought into
  your own stack file (stack_files.py).
- `recover [--stack NAME]` (`make up` and `make destroy`, first): a stack whose last run was killed
  made ready for the next command (recover.py).

The stack's outputs and state come from the `pulumi` CLI; what runs comes from the Docker engine or
the cluster itself. The tests and the bench run and import these modules too (support/testing.py
does); devtools imports neither support/ nor the tests, and the program never imports devtools.
"""
