"""Starting the program: a Python process (as the real language host does) or an inline one."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
from dataclasses import dataclass
from pathlib import Path

from offline_pulumi.engine import hosted
from offline_pulumi.engine.events import EventStream
from offline_pulumi.errors import CLIError, UnsupportedError
from offline_pulumi.project import Project

EXEC_SCRIPT = Path(__file__).resolve().parent.parent / "language_exec.py"
BAIL = 32
GRACE_SECONDS = 5.0


@dataclass(frozen=True)
class ProgramRun:
    """What the program run needs to know about the deployment."""

    project: Project
    stack: str
    monitor: str
    dry_run: bool
    parallel: int
    config: dict[str, str]
    secret_keys: list[str]


def interpreter(project: Project) -> tuple[str, dict[str, str]]:
    """The Python to run the program with, and its environment (C.4 of the contract)."""
    if project.runtime != "python":
        raise UnsupportedError(f"the '{project.runtime}' runtime (only python programs run "
                               "offline)")
    env = dict(os.environ)
    options = project.runtime_options
    toolchain = options.get("toolchain", "pip")
    venv_option = options.get("virtualenv") or (".venv" if toolchain == "uv" else None)
    if toolchain not in ("pip", "uv"):
        raise UnsupportedError(f"the '{toolchain}' toolchain")
    if not venv_option:
        command = env.get("PULUMI_PYTHON_CMD") or shutil.which("python3") or \
            shutil.which("python")
        if not command:
            raise CLIError("could not find python3 or python on PATH to run the program")
        return command, env
    venv = Path(venv_option) if os.path.isabs(venv_option) else project.root / venv_option
    python = venv / "bin" / "python"
    if not python.exists():
        raise CLIError(
            f"The 'virtualenv' option in Pulumi.yaml is set to \"{venv_option}\", but "
            f"\"{venv}\" doesn't exist; run `pulumi install` (or python -m venv {venv} and "
            "pip install -r requirements.txt) to create the virtual environment")
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.pop("PYTHONHOME", None)
    return str(python), env


class LocalProgram:
    """The program as a child process whose output lines become diagnostics."""

    def __init__(self, run: ProgramRun, engine_address: str, events: EventStream) -> None:
        self.run = run
        self.engine_address = engine_address
        self.events = events
        self.process: subprocess.Popen[bytes] | hosted.HostedProcess | None = None
        self._readers: list[threading.Thread] = []

    def start(self) -> None:
        """Start the program process; its output is pumped into diagnostics."""
        run = self.run
        python, env = interpreter(run.project)
        typechecker = run.project.runtime_options.get("typechecker")
        if typechecker:
            self._typecheck(python, env, str(typechecker))
        env["PULUMI_CONFIG"] = json.dumps(run.config)
        env["PULUMI_CONFIG_SECRET_KEYS"] = json.dumps(run.secret_keys)
        argv = [python, str(EXEC_SCRIPT), "--monitor", run.monitor,
                "--engine", self.engine_address, "--project", run.project.name,
                "--root_directory", str(run.project.root), "--stack", run.stack,
                "--pwd", str(run.project.program_dir),
                "--dry_run", "true" if run.dry_run else "false",
                "--parallel", str(run.parallel), "--organization", "organization",
                "--debug_lines", "true" if self.events.records_debug else "false",
                run.project.entry_point]
        hosted_process = hosted.spawn(python, argv[2:], env, run.project.program_dir) \
            if hosted.enabled() else None
        self.process = hosted_process or subprocess.Popen(
            argv, cwd=run.project.program_dir, env=env, stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        readers = [threading.Thread(target=self._pump, args=(stream, severity), daemon=True)
                   for stream, severity in ((self.process.stdout, "info"),
                                            (self.process.stderr, "info#err"))]
        for reader in readers:
            reader.start()
        self._readers = readers

    def wait(self) -> str | None:
        """Wait for the program; return an error message, "" after a bail, None on success."""
        assert self.process is not None
        code = self.process.wait()
        for reader in self._readers:
            reader.join()
        if code in (0, BAIL):
            return None if code == 0 else ""
        return f"program exited with non-zero exit code: {code}"

    def _pump(self, stream: object, severity: str) -> None:
        for raw in stream:  # type: ignore[attr-defined]
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            if line.strip():
                self.events.diagnostic(severity, line)

    def _typecheck(self, python: str, env: dict[str, str], checker: str) -> None:
        if checker not in ("mypy", "pyright"):
            raise CLIError(f"unsupported typechecker '{checker}'")
        result = subprocess.run([python, "-m", checker, str(self.run.project.program_dir)],
                                env=env, capture_output=True, text=True)
        if result.returncode != 0:
            raise CLIError(f"{checker} type checking failed:\n{result.stdout}{result.stderr}")

    def interrupt(self) -> None:
        """Ask the program to stop (SIGINT), then kill it if it does not."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGINT)
        try:
            process.wait(GRACE_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()


class InlineProgram:
    """A program served by the Automation API client (``--client``)."""

    def __init__(self, run: ProgramRun, engine_address: str, client: str) -> None:
        self.run = run
        self.engine_address = engine_address
        self.client = client
        self._cancelled = threading.Event()

    def start(self) -> None:
        """Nothing to start: the client runs the program when asked to."""

    def wait(self) -> str | None:
        """Call LanguageRuntime.Run on the client and translate its answer."""
        import grpc

        from offline_pulumi.engine.protos import module

        language_pb2 = module("language_pb2")
        language_pb2_grpc = module("language_pb2_grpc")

        run = self.run
        info = language_pb2.ProgramInfo(root_directory=str(run.project.root),
                                        program_directory=str(run.project.program_dir),
                                        entry_point=run.project.entry_point)
        request = language_pb2.RunRequest(
            project=run.project.name, stack=run.stack, pwd=str(run.project.program_dir),
            program=run.project.entry_point, args=[self.engine_address], config=run.config,
            configSecretKeys=run.secret_keys, dryRun=run.dry_run, parallel=run.parallel,
            monitor_address=run.monitor, organization="organization", info=info)
        with grpc.insecure_channel(self.client) as channel:
            try:
                response = language_pb2_grpc.LanguageRuntimeStub(channel).Run(request)
            except grpc.RpcError as exc:
                return f"the inline program's language runtime failed: {exc.details()}"
        if response.bail:
            return ""
        return response.error or None

    def interrupt(self) -> None:
        """Inline programs run in the client's process; they stop when the monitor does."""
        self._cancelled.set()

