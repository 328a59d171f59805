"""Debug Adapter Protocol framing: ``Content-Length`` headers and JSON bodies.

A DAP message is a header block (``Content-Length: N``, CRLF line ends, a
blank line) followed by N bytes of UTF-8 JSON.  The reader never trusts
the peer: a header that is not a number, a length past ``MAX_BODY``, a body
that is not a JSON object, all become a ``BadMessage`` that the session
answers with an error response and then goes on reading.  After a bad
header the reader cannot know where the body ends, so it resynchronises on
the next ``Content-Length:`` it sees, even in the middle of a line.
"""

from __future__ import annotations

import json
import re
import threading
from typing import IO, Any

__all__ = ["BadMessage", "MessageReader", "MessageWriter", "MAX_BODY"]

#: Largest body accepted (bytes).  A DAP request is a few hundred bytes; a
#: huge length is a broken or hostile client and would make the reader
#: wait for, and buffer, data that never comes.
MAX_BODY = 16 * 1024 * 1024

_HEADER = b"content-length:"
_HEADER_LINE = re.compile(rb"^[A-Za-z][A-Za-z0-9-]*:")


class BadMessage(Exception):
    """A message that could not be read; ``seq`` is the request's when known."""

    def __init__(self, problem: str, seq: int = 0, command: str = "") -> None:
        super().__init__(problem)
        self.problem = problem
        self.seq = seq
        self.command = command


class MessageReader:
    """Reads DAP messages from a binary stream, one ``read()`` at a time."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream

    def _header_block(self) -> list[bytes] | None:
        """The header lines up to the blank line; None at the end of the stream.

        A line holding ``Content-Length:`` after other bytes (the tail of a
        body whose length was unreadable) is cut so that the header starts
        the block: that is how the reader finds its footing again.
        """
        lines: list[bytes] = []
        while True:
            raw = self.stream.readline(MAX_BODY)
            if not raw:
                return None
            line = raw.rstrip(b"\r\n")
            if not line:
                if lines:
                    return lines
                continue  # stray blank lines between messages
            at = line.lower().find(_HEADER)
            if at > 0:
                lines = [line[at:]]
            elif at == 0 or lines or _HEADER_LINE.match(line):
                lines.append(line)
            # else: bytes that are no header (a body's tail): skipped

    def read(self) -> dict[str, Any] | None:
        """The next message, None at the end of the stream; ``BadMessage``
        for one that cannot be used (the stream stays readable)."""
        lines = self._header_block()
        if lines is None:
            return None
        length: int | None = None
        for line in lines:
            name, colon, value = line.partition(b":")
            if colon and name.strip().lower() == b"content-length":
                text = value.strip()
                if not text.isdigit():
                    raise BadMessage(f"bad Content-Length header {text[:40].decode('latin-1')!r}")
                length = int(text)
        if length is None:
            raise BadMessage("a message without a Content-Length header")
        if length > MAX_BODY:
            raise BadMessage(f"Content-Length {length} is over the {MAX_BODY}-byte limit")
        body = self.stream.read(length) if length else b""
        if len(body) < length:
            return None  # the stream ended inside the body
        try:
            message = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise BadMessage(f"the body is not JSON ({type(exc).__name__})") from None
        if not isinstance(message, dict):
            raise BadMessage("the body is not a JSON object")
        seq = message.get("seq")
        command = message.get("command")
        if message.get("type") != "request" or not isinstance(command, str):
            raise BadMessage("only requests are accepted (type 'request' with a 'command')",
                             seq if isinstance(seq, int) else 0, command if isinstance(command, str) else "")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise BadMessage("the request has no integer 'seq'", 0, command)
        if not isinstance(message.get("arguments", {}), dict):
            raise BadMessage("'arguments' is not an object", seq, command)
        return message


class MessageWriter:
    """Writes DAP messages, numbering them; safe to share between threads."""

    def __init__(self, stream: IO[bytes]) -> None:
        self.stream = stream
        self.seq = 0
        self._lock = threading.Lock()

    def send(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.seq += 1
            message["seq"] = self.seq
            body = json.dumps(message, ensure_ascii=False, default=str).encode("utf-8")
            self.stream.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
            self.stream.flush()

    def response(self, request_seq: int, command: str, body: dict[str, Any] | None = None) -> None:
        self.send({"type": "response", "request_seq": request_seq, "command": command, "success": True,
                   "body": body or {}})

    def error(self, request_seq: int, command: str, message: str) -> None:
        """A failed response.  ``body.error`` repeats the text as a DAP
        ``Message`` so that clients which show only that one (VS Code) show it
        (a ``{name}`` in the text with no variable of that name stays as it is)."""
        self.send({"type": "response", "request_seq": request_seq, "command": command, "success": False,
                   "message": message,
                   "body": {"error": {"id": 1, "format": message, "showUser": True}}})

    def event(self, name: str, body: dict[str, Any] | None = None) -> None:
        self.send({"type": "event", "event": name, "body": body or {}})
