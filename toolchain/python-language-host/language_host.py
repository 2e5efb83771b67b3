"""A Pulumi language host for Python programs, built on the Pulumi SDK's own runtime server.

Pulumi's Go language host (sdk/python/cmd/pulumi-language-python) is not available from the Go
module proxy, so offline installs use this one. It serves the LanguageRuntime gRPC protocol the
CLI speaks to every language host and runs the program in-process with the SDK's
`LanguageServer` (the same code that runs Automation API inline programs). With an official
Pulumi install, the official host is used instead.

Started by the CLI as `pulumi-language-python [flags] ENGINE_ADDRESS` in the program directory;
prints its port on the first line of stdout, as every Pulumi plugin does.
"""

import os
import runpy
import subprocess
import sys
from concurrent import futures
from importlib import metadata

import grpc
from pulumi.automation._server import LanguageServer
from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2


class ProjectLanguageHost(LanguageServer):
    def __init__(self) -> None:
        super().__init__(program=None)

    def Handshake(self, request, context):
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=metadata.version("pulumi"))

    def Run(self, request, context):
        program_dir = request.info.program_directory or request.pwd
        entry = os.path.join(program_dir, request.info.entry_point or ".")
        # A directory runs its __main__.py with the directory on sys.path, as `python DIR` does.
        self.program = lambda: runpy.run_path(entry, run_name="__main__")
        return super().Run(request, context)

    def RunPlugin(self, request, context):
        """Runs a Python plugin, such as a policy pack, streaming its output to the CLI."""
        program_dir = request.info.program_directory or request.program
        env = dict(kv.split("=", 1) for kv in request.env) if request.env else os.environ.copy()
        process = subprocess.Popen(
            [sys.executable, "-u", program_dir, *request.args],
            cwd=request.pwd or program_dir, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        # stderr is relayed after stdout ends; plugins print their port on stdout first.
        for line in iter(process.stdout.readline, b""):
            yield language_pb2.RunPluginResponse(stdout=line)
        yield language_pb2.RunPluginResponse(stderr=process.stderr.read())
        yield language_pb2.RunPluginResponse(exitcode=process.wait())


def main() -> None:
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)])
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(ProjectLanguageHost(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:  # the CLI interrupts its plugins when it is done with them
        server.stop(grace=None)


if __name__ == "__main__":
    main()
