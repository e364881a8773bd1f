"""What This computer finds on Windows, checked here with the files Windows has (R13). Windows itself cannot run
here: each test builds the folders and programs a Windows machine holds (conda's condabin\\conda.bat beside
Scripts\\conda.exe, a conda environment's python.exe at its root, Microsoft Store's WindowsApps alias that exits
9009) as real files, and calls the function that decides on them."""
from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from envdesk.backend.local_runner import windows_env_python
from envdesk.backend.probe import installed_python, program_not_batch_file


def _program(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_condas_batch_file_on_path_gives_way_to_its_executable_or_to_nothing(tmp_path):
    """conda.bat runs through cmd.exe, where 'numpy<2' redirects; conda.exe beside it takes the argument as
    given. With no executable beside it the tool is not used at all."""
    base = tmp_path / "miniforge3"
    batch = _program(base / "condabin" / "conda.bat", "@echo off\n")
    assert program_not_batch_file(str(batch)) is None
    exe = _program(base / "Scripts" / "conda.exe", "")
    assert program_not_batch_file(str(batch)) == str(exe)
    assert program_not_batch_file(str(exe)) == str(exe) and program_not_batch_file(None) is None
    assert program_not_batch_file(str(base / "condabin" / "MAMBA.CMD")) is None


def test_the_stores_python_alias_and_a_failing_python_are_passed_over(tmp_path):
    """The Store's alias stands first on PATH and opens the Store (exit 9009); python.org's installs have no
    python3.exe. Referee: the real Python's own sys.executable and version, which the chosen command reports."""
    alias = _program(tmp_path / "AppData" / "Local" / "Microsoft" / "WindowsApps" / "python3",
                     f"#!/bin/sh\nexec {sys.executable} \"$@\"\n")  # would even work: it is passed over by place
    failing = _program(tmp_path / "bin" / "python", "#!/bin/sh\nexit 9009\n")
    chosen = installed_python([[str(alias)], [str(failing)], [str(tmp_path / "nowhere" / "py"), "-3"],
                               [sys.executable]])
    assert chosen == (sys.executable, "%d.%d.%d" % sys.version_info[:3])
    assert installed_python([[str(failing)]]) is None


def test_a_conda_environments_python_is_at_its_root_and_a_venvs_in_scripts(tmp_path):
    """conda's Windows layout (python.exe beside conda-meta) against venv's (Scripts\\python.exe)."""
    conda = tmp_path / "envs" / "analysis"
    (conda / "conda-meta").mkdir(parents=True)
    (conda / "python.exe").write_bytes(b"")
    venv = tmp_path / "venvs" / "plain"
    (venv / "Scripts").mkdir(parents=True)
    (venv / "Scripts" / "python.exe").write_bytes(b"")
    (venv / "python.exe").write_bytes(b"")  # a stray copy at the root does not make it a conda environment
    assert windows_env_python(str(conda)) == f"{conda}\\python.exe"
    assert windows_env_python(str(venv)) == f"{venv}\\Scripts\\python.exe"
    assert os.sep == "/" or windows_env_python(str(conda)) == str(conda / "python.exe")


def test_free_space_is_read_where_the_system_has_no_statvfs(tmp_path, monkeypatch):
    """The agent lists This computer in-process on Windows too, where os.statvfs does not exist: free space was
    left out. Referee: shutil.disk_usage, which Windows has (the file counts, which it has not, stay unknown)."""
    import shutil

    from envdesk.backend.agent import read

    class WithoutStatvfs:  # os as Windows has it, for the agent only (shutil's own use of statvfs stays)
        def __getattr__(self, name: str):
            if name == "statvfs":
                raise AttributeError(name)
            return getattr(os, name)

    monkeypatch.setattr(read, "os", WithoutStatvfs())
    [space] = read.file_system_space([str(tmp_path), str(tmp_path / "nowhere")])
    usage = shutil.disk_usage(tmp_path)
    assert (space["path"], space["total_bytes"], space["free_files"]) == (str(tmp_path), usage.total, None)
    assert abs(space["free_bytes"] - usage.free) < 64 * 2 ** 20


def test_this_computer_without_a_shell_reads_no_quota_report_and_says_nothing_of_it(tmp_path, monkeypatch):
    """On Windows the quota report's bash script cannot run: every disk report said 'The quota report could not
    be read: This needs a bash shell… leave the module list empty', a note about modules, for a computer that
    has no quotas to report. Windows is given by os.name, as the runner itself decides."""
    from envdesk.backend.operations.common import Progress
    from envdesk.backend.operations.disk import read_quotas
    from envdesk.backend.paths import AppPaths
    from envdesk_fixtures import session_for

    target = session_for(AppPaths(tmp_path / "cfg")).target("local")
    with monkeypatch.context() as windows:  # only around the call: pytest's own report needs POSIX paths
        windows.setattr(os, "name", "nt")
        read = read_quotas(target, [str(tmp_path)], Progress())
    assert read == ([], [])
