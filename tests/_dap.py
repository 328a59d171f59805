"""Shared by the ``escope dap`` tests: the recorded suite and a raw DAP peer.

The suite fails, with a loop (``total``), a call into another file
(``helper_mod.scale``, deleted after recording so that only the embedded
source is left), container and object locals (one list longer than the
recorder keeps), and an exception raised and caught on the way.  ``DapPeer`` speaks DAP to ``escope dap`` over a
pipe byte for byte, so the tests can also send what no client library
would (a bad ``Content-Length``, a body that is not JSON).
"""

from __future__ import annotations

import json
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

from conftest import Project, clean_env

HELPER = '''
def scale(values, factor):
    out = []
    for v in values:
        out.append(v * factor)  # L:append
    return out
'''

SUITE = '''
from helper_mod import scale


class Basket:
    def __init__(self, items):
        self.items = items
        self.owner = "ann"


def total(prices):
    acc = 0
    for p in prices:
        acc = acc + p  # L:acc
    return acc  # L:return


def check(value):
    if value > 10:
        raise ValueError("too big: %d" % value)
    return value


def test_basket():
    basket = Basket([3, 4, 5])
    prices = scale(basket.items, 2)
    inventory = {"apples": 3, "pears": 4}
    big = list(range(500))
    t = total(prices)  # L:call
    try:
        check(t)  # L:check
    except ValueError as err:
        caught = str(err)
    assert t == 99  # L:assert
'''


def marked_lines() -> dict[str, int]:
    """``# L:name`` markers of SUITE and HELPER -> their line numbers (as written to disk)."""
    out: dict[str, int] = {}
    for text in (SUITE, HELPER):
        for i, line in enumerate(text.lstrip("\n").splitlines(), start=1):
            if "# L:" in line:
                out[line.split("# L:")[1].strip()] = i
    return out


def record_suite(project: Project) -> Path:
    """Record the failing suite; delete helper_mod.py; the recording's path."""
    project.write("helper_mod.py", HELPER)
    project.write("test_basket.py", SUITE)
    res = project.run("--escope", "test_basket.py")
    assert "1 failed" in res.stdout, res.out
    (project.path / "helper_mod.py").unlink()
    recordings = sorted(project.latest().path.glob("tests/*.sqlite"))
    assert len(recordings) == 1, recordings
    return recordings[0]


def escope_exe() -> str:
    """The installed ``escope`` console script of this interpreter."""
    return str(Path(sys.executable).with_name("escope"))


def frame(body: dict[str, Any]) -> bytes:
    data = json.dumps(body).encode()
    return b"Content-Length: %d\r\n\r\n" % len(data) + data


class DapPeer:
    """``escope dap`` in a subprocess, with its messages read on a thread."""

    def __init__(self, cwd: Path, *args: str) -> None:
        self.proc = subprocess.Popen([sys.executable, "-m", "pytest_escope.replay.cli", "dap", *args], cwd=cwd,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=clean_env())
        self.seq = 0
        self.inbox: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        self._stderr: str | None = None
        assert self.proc.stdout is not None
        threading.Thread(target=self._read, args=(self.proc.stdout,), daemon=True).start()

    def _read(self, stream: IO[bytes]) -> None:
        while True:
            length = None
            while True:
                line = stream.readline()
                if not line:
                    self.inbox.put(None)
                    return
                line = line.strip()
                if not line:
                    break
                name, _, value = line.partition(b":")
                assert name == b"Content-Length", line
                length = int(value)
            assert length is not None
            self.inbox.put(json.loads(stream.read(length)))

    def raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def send(self, command: str, **arguments: Any) -> int:
        self.seq += 1
        self.raw(frame({"seq": self.seq, "type": "request", "command": command, "arguments": arguments}))
        return self.seq

    def next(self, timeout: float = 120) -> dict[str, Any]:
        message = self.inbox.get(timeout=timeout)
        assert message is not None, "escope dap closed its output: " + self.stderr()
        self.seen.append(message)
        return message

    def response(self, seq: int | None = None) -> dict[str, Any]:
        """The next response (to ``seq`` when given); events before it are kept in ``seen``."""
        while True:
            m = self.next()
            if m["type"] == "response" and (seq is None or m["request_seq"] == seq):
                return m

    def event(self, name: str) -> dict[str, Any]:
        for m in self.seen:
            if m.get("type") == "event" and m.get("event") == name:
                self.seen.remove(m)
                return m
        while True:
            m = self.next()
            if m["type"] == "event" and m["event"] == name:
                self.seen.remove(m)
                return m

    def request(self, command: str, **arguments: Any) -> dict[str, Any]:
        return self.response(self.send(command, **arguments))

    def ok(self, command: str, **arguments: Any) -> dict[str, Any]:
        r = self.request(command, **arguments)
        assert r["success"], r
        return r.get("body", {})

    def launch(self, **arguments: Any) -> dict[str, Any]:
        """initialize, launch, configurationDone; the first ``stopped`` event."""
        self.ok("initialize", adapterID="escope")
        self.ok("launch", **arguments)
        self.event("initialized")
        self.ok("configurationDone")
        return self.event("stopped")

    def stderr(self) -> str:
        """What the server wrote to stderr (once it has exited)."""
        if self.proc.poll() is None:
            return ""
        if self._stderr is None:
            assert self.proc.stderr is not None
            self._stderr = self.proc.stderr.read().decode(errors="replace")
        return self._stderr

    def close(self) -> int:
        """Disconnect, wait for the server to exit; its exit status."""
        if self.proc.poll() is None:
            try:
                self.send("disconnect")
            except (BrokenPipeError, OSError):
                pass
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.stderr()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
        return self.proc.returncode
