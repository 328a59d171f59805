"""``escope dap``: the Debug Adapter Protocol server, over stdio or TCP.

Over stdio (the default) an editor starts ``escope dap`` and speaks DAP on
its stdin and stdout, so nothing else may write to stdout; a note for
people goes to stderr.  With ``--port N`` the server listens on localhost
only (a recording holds the test's values: it is not for the network) and
serves one client at a time until Ctrl-C; ``--port 0`` picks a free port
and prints it.  Set-ups for VS Code and nvim-dap: docs/editors.md.
"""

from __future__ import annotations

import argparse
import socket
import sys
from typing import IO, TYPE_CHECKING

from .dap_protocol import BadMessage, MessageReader, MessageWriter
from .dap_session import DapSession

if TYPE_CHECKING:
    from .cli import Context

__all__ = ["serve", "add_dap", "cmd_dap"]


def serve(inp: IO[bytes], out: IO[bytes], escope_dir: str | None = None) -> None:
    """Answer requests from ``inp`` until ``disconnect`` or the end of the stream."""
    reader = MessageReader(inp)
    writer = MessageWriter(out)
    session = DapSession(writer, escope_dir)
    try:
        while not session.done:
            try:
                request = reader.read()
            except BadMessage as bad:
                writer.error(bad.seq, bad.command, bad.problem)
                continue
            if request is None:
                return
            session.handle(request)
    finally:
        if session.rec is not None:
            session.rec.close()


def serve_tcp(port: int, escope_dir: str | None, note: IO[str]) -> None:
    """Listen on 127.0.0.1:``port``; one client at a time, until interrupted."""
    with socket.create_server(("127.0.0.1", port)) as server:
        host, bound = server.getsockname()[:2]
        note.write(f"escope dap: listening on {host}:{bound}; point the editor's debugServer at port {bound} "
                   f"(docs/editors.md)\n")
        note.flush()
        while True:
            conn, _addr = server.accept()
            with conn, conn.makefile("rb") as inp, conn.makefile("wb") as out:
                try:
                    serve(inp, out, escope_dir)
                except (ConnectionError, OSError):
                    pass  # the client went away; wait for the next one


def add_dap(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    p = sub.add_parser("dap", help="debug a recording from VS Code or any DAP editor (Debug Adapter Protocol)")
    p.add_argument("--port", type=int, metavar="N",
                   help="listen on localhost port N instead of stdio (0: a free port, printed)")
    p.add_argument("--escope-dir", default=argparse.SUPPRESS, metavar="DIR", help="escope directory")
    return p


def cmd_dap(ctx: "Context") -> int:
    from .errors import UsageError
    a = ctx.args
    escope_dir = getattr(a, "escope_dir", None)
    if a.port is None:
        # stdout carries the protocol: a stray print anywhere would corrupt
        # it, so text written to sys.stdout goes to stderr while serving
        protocol, sys.stdout = sys.stdout.buffer, sys.stderr
        serve(sys.stdin.buffer, protocol, escope_dir)
        return 0
    if not 0 <= a.port <= 65535:
        raise UsageError(f"--port {a.port} is not a port number", fix="use 0-65535, e.g. escope dap --port 4711")
    try:
        serve_tcp(a.port, escope_dir, ctx.out)
    except OSError as exc:
        raise UsageError(f"cannot listen on 127.0.0.1:{a.port} ({exc.strerror or exc})",
                         fix="pick another port, or --port 0 for a free one") from None
    return 0
