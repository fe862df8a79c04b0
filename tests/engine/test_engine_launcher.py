"""The ``bin/pulumi`` launcher is only written to, and run from, directories no other user controls.

The attack: another local user creates the launcher's directory in the shared temp dir before the
service starts, lets the service write its launcher there, then swaps in a script of their own,
which the service runs for every Pulumi command (with the secrets passphrase in its environment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

import offline_pulumi
from offline_pulumi.fileio import UnsafePathError

ATTACKER = "nobody"
AS_ATTACKER = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="creating a directory as another user needs root and setpriv")


@pytest.fixture
def shared_tmp() -> Iterator[Path]:
    """A directory like /tmp: world-writable with the sticky bit, reachable by every user."""
    path = Path(tempfile.mkdtemp(prefix="shared-tmp-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path)


def as_attacker(*argv: str) -> None:
    subprocess.run([*AS_ATTACKER, *argv], check=True)


def launch_in_subprocess(tmpdir: Path) -> subprocess.CompletedProcess[str]:
    """Build the default launcher in a fresh process whose temp dir is ``tmpdir``."""
    code = "import offline_pulumi; print(offline_pulumi.pulumi_command().command)"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmpdir)},
                          capture_output=True, text=True, timeout=120)


@needs_root
def test_explicit_root_created_by_another_user_is_refused(shared_tmp):
    root = shared_tmp / "engine"
    as_attacker("mkdir", "-m", "0755", str(root))
    with pytest.raises(UnsafePathError) as info:
        offline_pulumi.pulumi_command(root)
    assert str(root) in str(info.value)
    assert "owned by uid 65534" in str(info.value)
    assert not (root / "bin").exists()


@needs_root
def test_default_root_precreated_by_another_user_is_refused(shared_tmp):
    # Learn the default directory's name (it is predictable), then let the attacker own it.
    first = launch_in_subprocess(shared_tmp)
    assert first.returncode == 0, first.stderr
    default_root = Path(first.stdout.strip()).parent.parent
    assert default_root.parent == shared_tmp
    shutil.rmtree(default_root)
    as_attacker("mkdir", "-p", "-m", "0755", str(default_root / "bin"))
    marker = shared_tmp / "attacker-ran"
    evil = default_root / "bin" / "pulumi"
    as_attacker("sh", "-c", f"printf '#!/bin/sh\\ntouch {marker}\\necho v3.200.0\\n' > {evil}"
                            f" && chmod 0755 {evil}")

    second = launch_in_subprocess(shared_tmp)
    assert second.returncode != 0
    assert "UnsafePathError" in second.stderr and str(default_root) in second.stderr
    assert not marker.exists()
    assert evil.read_text().startswith("#!/bin/sh")  # not trusted, and not overwritten either


@pytest.mark.parametrize("mode", [0o770, 0o707, 0o777, 0o1777])
def test_own_root_writable_by_group_or_others_is_refused(tmp_path, mode):
    root = tmp_path / "engine"
    root.mkdir()
    root.chmod(mode)
    with pytest.raises(UnsafePathError, match="writable by"):
        offline_pulumi.install_root(root)
    assert not (root / "bin").exists()


def test_own_bin_dir_writable_by_others_is_refused(tmp_path):
    (tmp_path / "engine" / "bin").mkdir(parents=True)
    (tmp_path / "engine" / "bin").chmod(0o777)
    with pytest.raises(UnsafePathError, match="writable by"):
        offline_pulumi.install_root(tmp_path / "engine")


def test_parent_writable_by_others_without_the_sticky_bit_is_refused(tmp_path):
    # Anyone could rename our directory away and put their own in its place.
    shared = tmp_path / "shared"
    shared.mkdir()
    shared.chmod(0o777)
    with pytest.raises(UnsafePathError, match="writable by"):
        offline_pulumi.install_root(shared / "engine")


@needs_root
def test_symlink_planted_by_another_user_is_refused(shared_tmp, tmp_path):
    # The link points at a directory we own: following it would write our launcher wherever
    # the attacker chooses, and the attacker can repoint the link at any time.
    ours = tmp_path / "ours"
    ours.mkdir()
    link = shared_tmp / "engine"
    as_attacker("ln", "-s", str(ours), str(link))
    with pytest.raises(UnsafePathError, match="symlink"):
        offline_pulumi.install_root(link)
    assert not (ours / "bin").exists()


def test_private_root_gets_a_launcher_that_runs(tmp_path):
    root = offline_pulumi.install_root(tmp_path / "engine")
    launcher = root / "bin" / "pulumi"
    assert (root.stat().st_mode & 0o777, launcher.stat().st_uid) == (0o700, os.getuid())
    version = subprocess.run([str(launcher), "version"], capture_output=True, text=True, check=True)
    assert version.stdout.startswith("v3.")


@pytest.mark.parametrize("name", ["pulumi", "pulumi-launcher"])
def test_launcher_file_writable_by_others_is_replaced(tmp_path, name):
    root = offline_pulumi.install_root(tmp_path / "engine")
    launcher = root / "bin" / name
    data = launcher.read_bytes()
    launcher.chmod(0o777)
    offline_pulumi.install_root(root)
    assert launcher.stat().st_mode & 0o022 == 0
    assert launcher.read_bytes() == data


def test_bin_pulumi_is_the_native_client_where_a_compiler_builds_it(tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    root = offline_pulumi.install_root(tmp_path / "engine")
    native = root / "bin" / "pulumi"
    assert native.read_bytes().startswith(b"\x7fELF")
    built = native.stat().st_mtime_ns
    offline_pulumi.install_root(root)  # current: not built again
    assert native.stat().st_mtime_ns == built
    assert not [p for p in (root / "bin").iterdir() if p.name.endswith(".tmp")]
    # Without a resident it hands the command to the Python launcher, which runs it.
    env = {**os.environ, "OFFLINE_PULUMI_RESIDENT": "0"}
    version = subprocess.run([str(native), "version"], env=env, capture_output=True, text=True,
                             check=True)
    assert version.stdout.startswith("v3.")


def test_the_native_client_is_built_for_its_root_and_stamp(tmp_path):
    if shutil.which("cc") is None:
        pytest.skip("no C compiler")
    first = offline_pulumi.install_root(tmp_path / "one") / "bin" / "pulumi"
    second = offline_pulumi.install_root(tmp_path / "two") / "bin" / "pulumi"
    stamp = offline_pulumi._engine_stamp(sys.executable)
    for native in (first, second):
        data = native.read_bytes()
        assert str(native.parent / "pulumi-launcher").encode() + b"\0" in data
        assert stamp.encode() + b"\0" in data
    # Anything but the binary of this source, stamp and path is replaced by it.
    first.write_bytes(second.read_bytes())
    offline_pulumi.install_root(tmp_path / "one")
    assert str(first.parent / "pulumi-launcher").encode() in first.read_bytes()


@pytest.mark.parametrize("compiler", ["", "no-such-cc", "false"])
def test_without_a_working_compiler_bin_pulumi_is_the_python_launcher(tmp_path, monkeypatch,
                                                                      compiler):
    monkeypatch.setenv(offline_pulumi.COMPILER_VARIABLE, compiler)
    root = offline_pulumi.install_root(tmp_path / "engine")
    launcher = root / "bin" / "pulumi"
    assert launcher.read_text() == (root / "bin" / "pulumi-launcher").read_text()
    assert launcher.read_text().startswith(f"#!{sys.executable} -SE\n")
    version = subprocess.run([str(launcher), "version"], capture_output=True, text=True,
                             check=True)
    assert version.stdout.startswith("v3.")


def test_without_cc_on_the_path_bin_pulumi_is_the_python_launcher(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    root = offline_pulumi.install_root(tmp_path / "engine")
    assert (root / "bin" / "pulumi").read_text().startswith(f"#!{sys.executable} -SE\n")
    # A compiler that appears later gives the native client.
    monkeypatch.undo()
    offline_pulumi.install_root(root)
    assert (root / "bin" / "pulumi").read_bytes().startswith(b"\x7fELF") or not shutil.which("cc")


def host_socket_in_subprocess(tmpdir: Path) -> str:
    code = "import sys; from offline_pulumi.engine import hosted; print(hosted.socket_path(sys.executable))"
    return subprocess.run([sys.executable, "-c", code], env={**os.environ, "TMPDIR": str(tmpdir)},
                          capture_output=True, text=True, check=True, timeout=60).stdout.strip()


@needs_root
def test_program_host_socket_dir_of_another_user_means_no_host(shared_tmp):
    as_attacker("mkdir", "-m", "0777", str(shared_tmp / f"offline-pulumi-hosts-{os.getuid()}"))
    assert host_socket_in_subprocess(shared_tmp) == "None"


@pytest.mark.parametrize(("mode", "usable"), [(0o700, True), (0o750, False), (0o705, False)])
def test_program_host_socket_dir_must_be_private(shared_tmp, mode, usable):
    directory = shared_tmp / f"offline-pulumi-hosts-{os.getuid()}"
    directory.mkdir()
    directory.chmod(mode)
    found = host_socket_in_subprocess(shared_tmp)
    assert found.startswith(str(directory)) if usable else found == "None"


@needs_root
def test_dangling_symlink_of_another_user_is_refused_before_anything_is_created(shared_tmp,
                                                                              tmp_path):
    target = tmp_path / "made-by-mkdir"
    as_attacker("ln", "-s", str(target), str(shared_tmp / "engine"))
    with pytest.raises(UnsafePathError, match="symlink"):
        offline_pulumi.install_root(shared_tmp / "engine")
    assert not target.exists()


def test_relative_root_is_checked_and_made_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = offline_pulumi.install_root(Path("engine"))
    assert root == tmp_path.resolve() / "engine"
    assert (root / "bin" / "pulumi").is_file()
