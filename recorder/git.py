"""The commit a run was recorded at, kept in the run's facts."""

from __future__ import annotations

from pathlib import Path


def git_commit(rootdir: Path) -> str:
    """The checked-out commit of ``rootdir``, read from ``.git`` without
    running git: the read costs less than a process, git may not be installed
    where the tests run, and this module stays light enough for a session
    that records nothing (``--escope-on-failure`` reads it at the start).
    Empty when unknown."""
    try:
        git = rootdir / ".git"
        head = (git / "HEAD").read_text().strip()
        if head.startswith("ref: "):
            ref = git / head[5:]
            if ref.exists():
                return ref.read_text().strip()
            packed = git / "packed-refs"
            if packed.exists():
                for line in packed.read_text().splitlines():
                    if line.endswith(" " + head[5:]):
                        return line.split()[0]
            return ""
        return head
    except OSError:
        return ""
