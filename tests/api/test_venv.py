"""The program virtualenv is built once per requirements hash, atomically, under concurrency."""

from __future__ import annotations

import concurrent.futures
import multiprocessing
from pathlib import Path

import pytest

from infra import venv

pytestmark = pytest.mark.slow


def _ensure_in_child(program_dir: str, venv_root: str) -> str:
    return str(venv.ensure_venv(Path(program_dir), Path(venv_root)))


@pytest.fixture
def tiny_program(tmp_path):
    """A program dir whose requirements install nothing, so a build takes seconds."""
    program = tmp_path / "program"
    program.mkdir()
    (program / "requirements.txt").write_text("# nothing to install\n")
    return program


def test_concurrent_callers_in_threads_and_processes_share_one_build(tiny_program, tmp_path):
    root = tmp_path / "venvs"
    ctx = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(2, mp_context=ctx) as procs, \
            concurrent.futures.ThreadPoolExecutor(3) as threads:
        futures = [procs.submit(_ensure_in_child, str(tiny_program), str(root)) for _ in range(2)]
        futures += [threads.submit(venv.ensure_venv, tiny_program, root) for _ in range(3)]
        paths = {str(f.result(timeout=300)) for f in futures}
    assert len(paths) == 1
    built = Path(paths.pop())
    assert (built / "bin" / "python").exists()
    # Only the finished venv and its lock file: no half-built temp dirs.
    assert sorted(p.name for p in root.iterdir()) == sorted([built.name, f".{built.name}.lock"])


def test_changed_requirements_get_a_new_venv(tiny_program, tmp_path):
    first = venv.venv_name(tiny_program)
    (tiny_program / "requirements.txt").write_text("# changed\n")
    assert venv.venv_name(tiny_program) != first


def test_failed_build_is_a_program_environment_error_and_leaves_nothing(tiny_program, tmp_path):
    from infra.errors import ProgramEnvironmentError

    (tiny_program / "requirements.txt").write_text("--this-is-not-a-pip-option\n")
    root = tmp_path / "venvs"
    with pytest.raises(ProgramEnvironmentError) as info:
        venv.ensure_venv(tiny_program, root)
    assert f"cannot build the virtualenv of {tiny_program}: -m pip install exited with" in str(
        info.value)
    assert [p.name for p in root.iterdir() if not p.name.endswith(".lock")] == []
