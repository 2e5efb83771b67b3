"""The inner loop around a stack: `make dev` (save -> the one service rebuilt, rolled and live),
`make logs` (every service's logs, followed) and `make status` (what really runs, healthy or not).

Run as `python -m devtools {dev,logs,status} --stack NAME`. The stack's outputs and state come from
the `pulumi` CLI; what runs comes from the Docker engine or the cluster itself.
"""
