"""The project's own tests clean up after themselves: a run of them leaves
nothing in the temporary directory but pytest's own ``pytest-of-<user>``
(which pytest prunes to its last three sessions).

Runs some of this suite's tests for real, in a subprocess whose ``TMPDIR``
is a fresh directory, and lists what is left there.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import PY312, clean_env

HERE = Path(__file__).resolve().parent

#: Tests that make temporary copies and directories: read-only copies of
#: packed recordings (conftest.open_ro, through reliability.count/meta and
#: Rec), and helper scripts of their own (CHUNKS_OF_WORK, BETWEEN_RECORDINGS).
SUBJECTS = [
    "tests/test_reliability_faults.py::test_disk_full_leaves_no_empty_recording",
    "tests/test_recording_chunks.py::test_the_compiled_writer_keeps_rows_as_c_integers",
] + (["tests/test_recorder_backends.py::test_global_events_stay_on_between_recordings_until_close"] if PY312 else [])


def test_the_suite_leaves_nothing_in_the_temp_dir(tmp_path: Path) -> None:
    tmpdir = tmp_path / "tmp"
    tmpdir.mkdir()
    env = clean_env(TMPDIR=str(tmpdir), PYTEST_ADDOPTS="-p no:randomly")
    env.pop("ESCOPE_FILM_CACHE", None)  # the inner suite makes (and removes) its own
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-n", "0",
                           *SUBJECTS], cwd=HERE.parent, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert f"{len(SUBJECTS)} passed" in proc.stdout, proc.stdout[-2000:]
    left = sorted(p.name for p in tmpdir.iterdir() if not p.name.startswith("pytest-of-"))
    assert left == [], left
