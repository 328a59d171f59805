"""Is the process that writes a run still alive?  Names a process so that a
reader can tell without guessing.

A test the run index still calls ``running`` either runs right now (in this
process, in another xdist worker, in another session on this machine) or
its process died the hard way and never wrote its last row.  A pid alone
cannot tell these apart: pids are reused, and a dead xdist worker's pid may
name some other program a minute later.  So a writer records its identity
as ``<host> <pid> <start>``, where ``<start>`` is when the process started
(in clock ticks since boot, from ``/proc/<pid>/stat``), and a reader calls
it gone only when that exact process no longer runs: the pid is free, is a
zombie, or belongs to a process that started at another time.  A process on
another host, or a system without ``/proc`` (where the start time is ``-``
and only the pid is checked), is never called gone by guess alone.
"""

from __future__ import annotations

import os
import socket


def _stat_fields(pid: int) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name, or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # the command name is in parentheses and may itself hold ") "
    end = text.rfind(")")
    if end < 0:
        return None
    return text[end + 2:].split()


def _start_ticks(pid: int) -> str | None:
    fields = _stat_fields(pid)
    # field 22 of stat (starttime) is the 20th after the command name
    if fields is None or len(fields) < 20:
        return None
    return fields[19]


def process_identity(pid: int | None = None) -> str:
    """``<host> <pid> <start>`` of this process (or of ``pid``)."""
    pid = os.getpid() if pid is None else pid
    return f"{socket.gethostname()} {pid} {_start_ticks(pid) or '-'}"


def process_gone(identity: str) -> bool:
    """True only when the process ``identity`` names surely no longer runs."""
    parts = identity.split()
    if len(parts) != 3:
        return False
    host, pid_text, start = parts
    if host != socket.gethostname():
        return False  # another machine's process: cannot be looked at from here
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except OSError:
        pass  # exists, owned by someone else
    fields = _stat_fields(pid)
    if fields is None:
        return False
    if fields[0] in ("Z", "X"):
        return True  # dead, not yet reaped by its parent
    return start != "-" and len(fields) >= 20 and fields[19] != start


def process_key(worker: str, attempt: int = 0) -> str:
    """The run index's ``run`` key holding the identity of the process that
    runs ``worker``'s tests (``main``, an xdist ``gwN``; a recorded rerun
    is a process of its own)."""
    return f"process.{worker}" + (f".rerun{attempt}" if attempt else "")
