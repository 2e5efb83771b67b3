"""A Pulumi language host for Python programs, for machines without Pulumi's own.

Pulumi's Go language host (sdk/python/cmd/pulumi-language-python) is not available from the Go
module proxy, so offline installs use this one. It serves the LanguageRuntime gRPC protocol the
CLI speaks to every language host, as Pulumi's does for the pip toolchain: programs and plugins
(policy packs) run in the virtualenv that Pulumi.yaml names (`runtime.options.virtualenv`);
`pulumi install` creates that virtualenv from requirements.txt; the program's Pulumi packages (their
pulumi-plugin.json) are its required plugins. Code generation (`pulumi convert`, `import`,
`package`) is the official host's: those calls answer with a message that says so.

The host starts in a virtualenv of its own with the Pulumi SDK (for the protocol), made by
toolchain/build.sh, so it serves a fresh clone that has no virtualenv yet. When the program's
virtualenv has the SDK, the host moves into it and runs the program in-process with the SDK's
`LanguageServer` (the code of Automation API inline programs): no second interpreter to start and
import the SDK, so every preview and update is that much faster. Otherwise the program runs in its
virtualenv through program_runner.py, the counterpart of Pulumi's pulumi-language-python-exec.

Started by the CLI as `pulumi-language-python [flags] ENGINE_ADDRESS` in the program's directory;
prints its port on the first line of stdout, as every Pulumi plugin does.
"""

# The host imports the rest after it has moved into the program's virtualenv (below).
# ruff: noqa: E402

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Optional

# Where pulumi-language-python starts the host (toolchain/build.sh makes it).
HOST_VIRTUALENV = Path(__file__).resolve().parent.parent / "python-language-host"


def program_python() -> Optional[Path]:
    """The Python of the virtualenv that ./Pulumi.yaml names, when it has the Pulumi SDK."""
    import yaml

    try:
        project = yaml.safe_load(Path("Pulumi.yaml").read_text()) or {}
        options = (project.get("runtime") or {}).get("options") or {}
    except (OSError, yaml.YAMLError, AttributeError):
        return None
    venv = Path(options["virtualenv"]).resolve() if options.get("virtualenv") else None
    if venv is None or not list(venv.glob("lib/python*/site-packages/pulumi/runtime/proto/language_pb2.py")):
        return None
    return venv / "bin" / "python"


# Move into the program's virtualenv before importing the SDK (see the module's docstring).
if Path(sys.prefix).resolve() == HOST_VIRTUALENV:
    _python = program_python()
    if _python is not None and _python.parent.parent != HOST_VIRTUALENV:
        os.execv(str(_python), [str(_python), "-u", __file__, *sys.argv[1:]])

import argparse
import base64
import inspect
import json
import re
import runpy
import shutil
import signal
import subprocess
import threading
from concurrent import futures
from importlib import metadata
from typing import Callable, Iterator

import grpc
import python_environment  # beside this file
from google.protobuf import empty_pb2, json_format


def import_protocol_without_sdk():
    """The SDK's protocol modules (language_pb2, language_pb2_grpc, plugin_pb2), without the SDK.

    Before each preview and update the CLI starts a host only to ask `About`, and waits for it:
    importing `pulumi` would add a tenth of a second there. The generated modules import each other
    relatively, so they load under stand-ins for their parent packages (the real modules, not run).
    Everything under `pulumi` then leaves sys.modules, so that a program's `import pulumi` loads the
    SDK as usual: the generated modules run again into the same descriptor pool, which gives them
    the same message classes.
    """
    import importlib.machinery
    import importlib.util

    path = None
    for name in ("pulumi", "pulumi.runtime"):
        spec = importlib.machinery.PathFinder.find_spec(name.rpartition(".")[2], path)
        sys.modules[name] = module = importlib.util.module_from_spec(spec)
        path = module.__path__
    try:
        from pulumi.runtime.proto import language_pb2, language_pb2_grpc, plugin_pb2
    finally:
        for name in [name for name in sys.modules if name == "pulumi" or name.startswith("pulumi.")]:
            del sys.modules[name]
    return language_pb2, language_pb2_grpc, plugin_pb2


language_pb2, language_pb2_grpc, plugin_pb2 = import_protocol_without_sdk()

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "program_runner.py"
# The runner's exit code after it has shown the user an error itself (Pulumi's convention).
SHOWN_ERROR_EXIT_CODE = 32
# Python packages that are known to have no plugin (as in Pulumi's host).
NO_PLUGIN = {"pulumi-policy", "pulumi-esc-sdk"}
OFFICIAL_HOST = "Pulumi's official Python language host (pulumi-language-python, https://www.pulumi.com/docs/install/)"


class Virtualenv:
    """The Python environment of a program or plugin, from its runtime options (Pulumi.yaml or
    PulumiPolicy.yaml): the `virtualenv` option, relative to the project's root directory, or the
    ambient python3 when there is none."""

    def __init__(self, info: language_pb2.ProgramInfo, default: Optional[str] = None):
        """`default`: the virtualenv when the options name none (plugins never use the ambient Python)."""
        options = json_format.MessageToDict(info.options) if info.HasField("options") else {}
        toolchain = options.get("toolchain", "pip")
        if toolchain != "pip":
            raise ValueError(
                f"the {toolchain} toolchain (Pulumi.yaml runtime.options.toolchain) needs "
                f"{OFFICIAL_HOST}; this offline host supports pip"
            )
        self.name = options.get("virtualenv", default)
        root = Path(info.root_directory or info.program_directory or ".")
        self.path = (root / self.name).resolve() if self.name else None
        self.program_directory = Path(info.program_directory or root)

    @property
    def python(self) -> str:
        if self.path is None:
            return shutil.which(os.environ.get("PULUMI_PYTHON_CMD") or "python3") or "python3"
        return str(self.path / "bin" / "python")

    def is_current(self) -> bool:
        """Whether this process runs in it."""
        return self.path == Path(sys.prefix).resolve()

    def exists(self) -> bool:
        return self.path is None or os.access(self.python, os.X_OK)

    def require(self) -> None:
        if not self.exists():
            raise FileNotFoundError(
                f"the virtualenv {self.name} (Pulumi.yaml runtime.options.virtualenv) "
                f"does not exist in {self.path.parent}: run `pulumi install`"
            )

    def environment(self, extra: Optional[dict] = None) -> dict[str, str]:
        """The process environment with the virtualenv activated, as `. venv/bin/activate` does."""
        env = dict(os.environ, **(extra or {}))
        env.pop("PYTHONHOME", None)
        if self.path is not None:
            env["VIRTUAL_ENV"] = str(self.path)
            env["PATH"] = f"{self.path / 'bin'}{os.pathsep}{env.get('PATH', '')}"
        return env

    def run(self, *args: str) -> str:
        return subprocess.run(
            [self.python, *args],
            capture_output=True,
            text=True,
            check=True,
            env=self.environment(),
            cwd=self.program_directory,
        ).stdout

    def install(self, write: Callable[[bytes, bool], None]) -> None:
        """Creates the virtualenv if needed and installs requirements.txt into it (what `pulumi
        install` does); `write(chunk, is_error)` receives the output as it comes."""
        steps = []
        if self.path is not None and not self.exists():
            base = shutil.which(os.environ.get("PULUMI_PYTHON_CMD") or "python3") or "python3"
            steps.append([base, "-m", "venv", str(self.path)])
        requirements = self.program_directory / "requirements.txt"
        if requirements.is_file():
            steps.append([self.python, "-m", "pip", "install", "--disable-pip-version-check", "-r", str(requirements)])
        for command in steps:
            write(f"$ {' '.join(command)}\n".encode(), False)
            process = subprocess.Popen(
                command,
                cwd=self.program_directory,
                env=self.environment(),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            for line in process.stdout:
                write(line, False)
            if process.wait() != 0:
                raise RuntimeError(f"`{' '.join(command)}` failed (exit code {process.returncode})")

    def inspect(self, query: str, *args: str):
        """Asks python_environment.QUERY of this environment (in this process when it runs here)."""
        if self.is_current():
            return python_environment.QUERIES[query](*args)
        return json.loads(self.run(str(HERE / "python_environment.py"), query, *args))


def plugin_version(package_version: str) -> Optional[str]:
    """A package's version as a plugin version: 1.2 -> v1.2.0, 1.2.3rc4 -> v1.2.3-rc.4; None for
    versions that do not map (such as dev builds), which Pulumi's host skips too."""
    match = re.fullmatch(r"(\d+(?:\.\d+)*)(?:(a|b|rc)(\d+))?", package_version)
    if not match:
        return None
    release = (match.group(1).split(".") + ["0", "0"])[: max(3, match.group(1).count(".") + 1)]
    pre = {"a": "alpha", "b": "beta", "rc": "rc"}.get(match.group(2) or "")
    return "v" + ".".join(release) + (f"-{pre}.{match.group(3)}" if pre else "")


def required_packages(virtualenv: Virtualenv) -> list[plugin_pb2.PackageDependency]:
    """The resource plugins of the program's Pulumi packages, as Pulumi's host finds them: packages
    with a pulumi-plugin.json (unless it says `resource: false`) or named pulumi-*."""
    required = []
    for package in virtualenv.inspect("packages"):
        name, plugin = package["name"].lower().replace("_", "-"), package["plugin"] or {}
        if (
            name in NO_PLUGIN
            or not (package["plugin"] or name.startswith("pulumi-"))
            or plugin.get("resource") is False
        ):
            continue
        version = plugin.get("version") or plugin_version(package["version"])
        if version is None:
            continue
        dependency = plugin_pb2.PackageDependency(
            name=plugin.get("name") or name.removeprefix("pulumi-"),
            kind="resource",
            version=version if version.startswith("v") else f"v{version}",
            server=plugin.get("server", ""),
        )
        parameterization = plugin.get("parameterization")
        if parameterization:
            dependency.parameterization.CopyFrom(
                plugin_pb2.PackageParameterization(
                    name=parameterization["name"],
                    version=parameterization["version"],
                    value=base64.b64decode(parameterization.get("value", "")),
                )
            )
        required.append(dependency)
    return required


def runner_arguments(request: language_pb2.RunRequest, engine_address: str) -> list[str]:
    """The runner's command line, as Pulumi's host builds pulumi-language-python-exec's."""
    pairs = {
        "monitor": request.monitor_address,
        "engine": engine_address,
        "project": request.project,
        "root_directory": request.info.root_directory,
        "stack": request.stack,
        "pwd": request.pwd,
        "dry_run": str(request.dryRun).lower(),
        "parallel": str(request.parallel),
        "organization": request.organization,
    }
    args = [arg for key, value in pairs.items() if value for arg in (f"--{key}", value)]
    return [*args, request.info.entry_point or ".", *request.args]


def trim_stack_traces(entry_file: str) -> None:
    """Ends the stack trace the SDK sends with each resource at the program's entry file.

    The engine keeps every resource's trace in the state, and writes the whole state at each step.
    Below the program, a program run in this process has this host's own frames (the gRPC server,
    its thread, the event loop: about twenty, with this machine's paths), which say nothing about
    the program and were half the state of a 50-service stack.
    """
    from pulumi.runtime import resource

    entry_uri = Path(os.path.normpath(entry_file)).as_uri()
    full_trace = getattr(resource._get_stack_trace, "__wrapped__", resource._get_stack_trace)

    def program_trace():
        trace = full_trace()
        uris = [frame.pc.uri for frame in trace.frames]
        # Frames run innermost first: what follows the entry file's outermost frame is the host's.
        # A resource the SDK registers itself (the stack) has no program frame: all of it goes.
        first_host_frame = len(uris) - uris[::-1].index(entry_uri) if entry_uri in uris else 0
        del trace.frames[first_host_frame:]
        return trace

    program_trace.__wrapped__ = full_trace
    resource._get_stack_trace = program_trace


class LanguageHost(language_pb2_grpc.LanguageRuntimeServicer):
    def __init__(self, engine_address: str) -> None:
        self.engine_address = engine_address
        self.programs: set[subprocess.Popen] = set()
        self.lock = threading.Lock()

    def Handshake(self, request, context):
        self.engine_address = request.engine_address or self.engine_address
        return language_pb2.LanguageHandshakeResponse()

    def GetPluginInfo(self, request, context):
        return plugin_pb2.PluginInfo(version=metadata.version("pulumi"))

    def GetRequiredPackages(self, request, context):
        virtualenv = self.virtualenv(request.info, context)
        if not virtualenv.exists():  # as Pulumi's host does: a program's first run makes its virtualenv
            virtualenv.install(lambda chunk, _: sys.stderr.buffer.write(chunk))
        return language_pb2.GetRequiredPackagesResponse(packages=required_packages(virtualenv))

    def GetRequiredPlugins(self, request, context):
        packages = self.GetRequiredPackages(request, context).packages
        return language_pb2.GetRequiredPluginsResponse(
            plugins=[
                plugin_pb2.PluginDependency(name=p.name, kind=p.kind, version=p.version, server=p.server)
                for p in packages
            ]
        )

    def GetProgramDependencies(self, request, context):
        virtualenv = self.virtualenv(request.info, context)
        listed = virtualenv.inspect("dependencies", str(request.transitiveDependencies).lower())
        return language_pb2.GetProgramDependenciesResponse(
            dependencies=[language_pb2.DependencyInfo(name=p["name"], version=p["version"]) for p in listed]
        )

    def About(self, request, context):
        virtualenv = self.virtualenv(request.info, context) if request.HasField("info") else None
        if virtualenv is None or not virtualenv.exists():  # the ambient python3, as Pulumi's host reports then
            virtualenv = Virtualenv(language_pb2.ProgramInfo())
        about = virtualenv.inspect("about")
        return language_pb2.AboutResponse(
            executable=about["executable"],
            version=about["version"],
            metadata={"toolchain": "pip", "toolchainVersion": about["pip"], "typechecker": "none"},
        )

    def RuntimeOptionsPrompts(self, request, context):
        return language_pb2.RuntimeOptionsResponse()  # pip and a virtualenv are the only choices here

    def InstallDependencies(self, request, context) -> Iterator[language_pb2.InstallDependenciesResponse]:
        virtualenv = self.virtualenv(request.info, context)
        output: list[language_pb2.InstallDependenciesResponse] = []
        done = threading.Event()
        failure: list[BaseException] = []

        def install():
            try:
                virtualenv.install(
                    lambda chunk, error: output.append(
                        language_pb2.InstallDependenciesResponse(**{"stderr" if error else "stdout": chunk})
                    )
                )
            except BaseException as error:  # noqa: BLE001 - reported to the CLI below
                failure.append(error)
            finally:
                done.set()

        threading.Thread(target=install, daemon=True).start()
        yield language_pb2.InstallDependenciesResponse(stdout=b"Installing dependencies...\n\n")
        while not done.wait(0.2) or output:
            while output:
                yield output.pop(0)
        if failure:
            context.abort(grpc.StatusCode.UNKNOWN, str(failure[0]))
        yield language_pb2.InstallDependenciesResponse(stdout=b"Finished installing dependencies\n\n")

    def Run(self, request, context):
        virtualenv = self.virtualenv(request.info, context)
        try:
            virtualenv.require()
        except FileNotFoundError as error:
            return language_pb2.RunResponse(error=str(error))
        if virtualenv.is_current():
            return self.run_here(request, context)
        env = virtualenv.environment(
            {
                "PULUMI_CONFIG": json.dumps(dict(request.config)),
                "PULUMI_CONFIG_SECRET_KEYS": json.dumps(list(request.configSecretKeys)),
            }
        )
        command = [virtualenv.python, "-u", str(RUNNER), *runner_arguments(request, self.engine_address)]
        # The program's output goes to this host's stdout and stderr, which the CLI shows.
        runner = subprocess.Popen(command, env=env, cwd=request.pwd or None)
        with self.lock:
            self.programs.add(runner)
        try:
            code = runner.wait()
        finally:
            with self.lock:
                self.programs.discard(runner)
        if code == SHOWN_ERROR_EXIT_CODE:
            return language_pb2.RunResponse(bail=True)
        if code != 0:
            return language_pb2.RunResponse(error=f"program exited with non-zero exit code: {code}")
        return language_pb2.RunResponse()

    @staticmethod
    def run_here(request, context):
        """Runs the program in this process, which runs in the program's virtualenv."""
        program_dir = request.info.program_directory or request.pwd
        entry = os.path.join(program_dir, request.info.entry_point or ".")
        from pulumi.automation._server import LanguageServer

        trim_stack_traces(os.path.join(entry, "__main__.py") if os.path.isdir(entry) else entry)
        # A directory runs its __main__.py with the directory on sys.path, as `python DIR` does.
        server = LanguageServer(lambda: runpy.run_path(entry, run_name="__main__"))
        return server.Run(request, context)

    def RunPlugin(self, request, context):
        """Runs a Python plugin, such as a policy pack, streaming its output to the CLI."""
        info = (
            request.info
            if request.HasField("info")
            else language_pb2.ProgramInfo(root_directory=request.program, program_directory=request.program)
        )
        virtualenv = self.virtualenv(info, context, default="venv")
        virtualenv.require()
        env = dict(kv.split("=", 1) for kv in request.env) if request.env else None
        process = subprocess.Popen(
            [virtualenv.python, "-u", info.program_directory, *request.args],
            cwd=request.pwd or info.program_directory,
            env=virtualenv.environment(env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        # stderr is relayed after stdout ends; plugins print their port on stdout first.
        for line in iter(process.stdout.readline, b""):
            yield language_pb2.RunPluginResponse(stdout=line)
        yield language_pb2.RunPluginResponse(stderr=process.stderr.read())
        yield language_pb2.RunPluginResponse(exitcode=process.wait())

    def Cancel(self, request, context):
        with self.lock:
            for program in self.programs:
                program.send_signal(signal.SIGINT)
        return empty_pb2.Empty()

    @staticmethod
    def virtualenv(info, context, default: Optional[str] = None) -> Virtualenv:
        try:
            return Virtualenv(info, default)
        except ValueError as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(error))


def unsupported(name: str):
    def method(self, request, context):
        context.abort(
            grpc.StatusCode.UNIMPLEMENTED,
            f"{name} is not supported by this offline Python language host (toolchain/python-language-host): "
            f"it needs {OFFICIAL_HOST}",
        )

    return method


# Every other call of the protocol (code generation, packing, linking, templates) answers clearly.
for _name, _ in inspect.getmembers(language_pb2_grpc.LanguageRuntimeServicer, inspect.isfunction):
    if _name not in LanguageHost.__dict__:
        setattr(LanguageHost, _name, unsupported(_name))


def main() -> None:
    # The CLI's plugin flags (logging, tracing) are accepted and left to the CLI.
    parser = argparse.ArgumentParser(prog="pulumi-language-python")
    parser.add_argument("--tracing")
    parser.add_argument("engine_address", nargs="?", default="")
    engine_address = parser.parse_known_args()[0].engine_address
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=8), options=[("grpc.max_receive_message_length", 400 * 1024 * 1024)]
    )
    language_pb2_grpc.add_LanguageRuntimeServicer_to_server(LanguageHost(engine_address), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    try:
        server.wait_for_termination()
    except KeyboardInterrupt:  # the CLI interrupts its plugins when it is done with them
        server.stop(grace=None)
    exit_now()


def exit_now() -> None:
    """Exits without the interpreter's shutdown. The CLI waits for each plugin to exit, one after
    another, at the end of every command; tearing down the modules and threads of a program run in
    this process took a tenth of a second of that wait, and nothing is left to do."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
