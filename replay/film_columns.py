"""A chunk's columns read from its text, inflated only as far as needed.

A chunk is zlib-compressed JSON whose sections come in a fixed order:
``events`` (columns kinds, acts, lines, times, values), ``frames``,
``activations``, ``bindings``, ``vals`` (``film_store``).  A breakpoint
search needs a few columns of the first sections only: reading those from
the text, and inflating nothing past them, costs a fraction of decoding the
chunk.  No column holds a list, so a column ends at the next ``],[``.

Everything is checked as it is read; text that does not look like escope's
is ``Unreadable``, and the caller falls back to ``FilmStore``'s decoding,
which says "the recording is corrupt" in one line.
"""

from __future__ import annotations

import itertools
import json
import zlib
from typing import TYPE_CHECKING

import apsw

from ..recorder import schema

if TYPE_CHECKING:
    from .film_store import FilmStore

__all__ = ["ChunkColumns", "Unreadable", "act_codes_in", "act_frames_in"]

#: Compressed bytes first read from a chunk's blob while looking for the
#: end of a section (doubled at each further read).
_READ = 4 << 10
#: Decompressed bytes produced at a time while looking for a section's end.
_OUT = 8 << 10

_EVENTS = b'{"events":[['


class Unreadable(Exception):
    """Chunk text this module cannot read."""


class ChunkColumns:
    """Columns of a film's chunks, read from their text (a few kept)."""

    def __init__(self, store: "FilmStore") -> None:
        self.store = store
        #: chunk -> its ``lines`` column as text, framed by commas
        self._lines_text: dict[int, bytes] = {}
        #: the last chunk's bindings: (chunk, name texts, value texts, the four column texts)
        self._bindings: tuple[int, tuple[list[bytes], list[bytes]], list[bytes]] | None = None

    def prefix(self, i: int, marker: bytes, nth: int = 1) -> bytes:
        """The chunk's text up to the ``nth`` ``marker`` after the events
        section's start (decompressed no further)."""
        store = self.store
        try:
            blob = store.conn.blob_open("main", "chunks", "data", store.ids[i], False)
        except (apsw.Error, TypeError, OverflowError) as exc:
            raise Unreadable() from exc
        try:
            d = zlib.decompressobj()
            out = bytearray()
            scan, seen, size = len(_EVENTS), 0, _READ
            pending = b""
            while True:
                if not pending:
                    pending = blob.read(size)
                    if not pending:
                        break
                    size = min(size * 2, 64 << 10)
                # a slice of output at a time: what lies past the marker is
                # never decompressed
                out += d.decompress(pending, _OUT)
                pending = d.unconsumed_tail
                if len(out) >= schema.CHUNK_LIMIT:
                    raise Unreadable()
                while True:
                    at = out.find(marker, scan)
                    if at < 0:
                        scan = max(scan, len(out) - len(marker) + 1)
                        break
                    seen += 1
                    if seen == nth:
                        if not out.startswith(_EVENTS):
                            raise Unreadable()
                        return bytes(out[:at])
                    scan = at + len(marker)
        except (apsw.Error, zlib.error) as exc:
            raise Unreadable() from exc
        finally:
            blob.close()
        raise Unreadable()

    def lines_text(self, i: int) -> bytes | None:
        """Chunk ``i``'s ``lines`` column as ``,L1,L2,...,`` (None: unreadable)."""
        found = self._lines_text.get(i)
        if found is None:
            try:
                # [[kinds],[acts],[lines],[times],...: no list inside a
                # column, so the third "],[" ends the lines (the long times
                # column is never decompressed)
                events = self.prefix(i, b"],[", 3)
                a = events.index(b"],[", len(_EVENTS)) + 3
                body = events[events.index(b"],[", a) + 3:]
                if body.translate(None, b"0123456789,-"):
                    raise Unreadable()
                found = self._lines_text[i] = b"," + body + b","
            except (Unreadable, ValueError):
                return None
        return found

    def lean(self, i: int) -> tuple[list[int], list[int], list[int], bytes] | None:
        """``(kinds, acts, lines, text)`` of chunk ``i`` from its text up to
        the bindings: the times and values columns are never decoded, nor
        anything past the activations inflated.  None: read it the long way."""
        try:
            text = self.prefix(i, b',"bindings":[')
            end = text.index(b',"frames":[')
            # [[kinds],[acts],[lines],[times],[values]]
            a = text.index(b"],[", len(_EVENTS))
            b = text.index(b"],[", a + 3)
            c = text.index(b"],[", b + 3)
            if c > end:
                return None
            kinds = json.loads(b"[" + text[len(_EVENTS):a] + b"]")
            steps = json.loads(b"[" + text[a + 3:b] + b"]")
            lines = json.loads(b"[" + text[b + 3:c] + b"]")
        except (Unreadable, ValueError, RecursionError):
            return None
        n = self.store.steps[i]
        if not all(type(col) is list and len(col) == n and set(map(type, col)) <= {int}
                   for col in (kinds, steps, lines)):
            return None
        return kinds, list(itertools.accumulate(steps)), lines, text

    def binding_texts(self, i: int) -> tuple[list[bytes], list[bytes]]:
        """The ``name`` and ``value`` columns of chunk ``i``'s bindings, as
        lists of their numbers' texts (the last chunk's kept)."""
        if self._bindings is not None and self._bindings[0] == i:
            return self._bindings[1]
        text = self.prefix(i, b',"vals":[')
        at = text.find(b',"bindings":[[')
        found: tuple[list[bytes], list[bytes]] = ([], [])
        self._bindings = None
        parts: list[bytes] = []
        if at >= 0:
            # [[frames],[names],[steps],[values]]: four lists of numbers;
            # names and values are plain (not differences), so the values
            # bound to a name come from the texts alone
            body = text[at + len(b',"bindings":'):]
            if not body.startswith(b"[[") or not body.endswith(b"]]"):
                raise Unreadable()
            parts = body[2:-2].split(b"],[")
            if len(parts) != 4:
                raise Unreadable()
            if parts[1] or parts[3]:
                found = (parts[1].split(b","), parts[3].split(b","))
                if len(found[0]) != len(found[1]):
                    raise Unreadable()
        self._bindings = (i, found, parts)
        return found

    def binding_parts(self, i: int) -> list[bytes]:
        """The texts of chunk ``i``'s four bindings columns (frames, names,
        steps, values; none when it binds nothing)."""
        self.binding_texts(i)
        assert self._bindings is not None
        return self._bindings[2]


def act_codes_in(text: bytes) -> dict[int, int] | None:
    """act -> code of the activations a chunk opens whose frame it makes,
    from its ``frames`` and ``activations`` sections (None: unreadable)."""
    try:
        f = text.index(b',"frames":')
        a = text.index(b',"activations":', f)
        frames = json.loads(text[f + len(b',"frames":'):a])
        acts = json.loads(text[a + len(b',"activations":'):])
        if type(frames) is not list or type(acts) is not list or len(frames) != 3 or len(acts) != 8:
            return None
        ids, codes, act_ids, act_frames = frames[0], frames[1], acts[0], acts[1]
        if not all(type(col) is list and set(map(type, col)) <= {int} for col in (ids, codes, act_ids, act_frames)) \
                or len(ids) != len(codes) or len(act_ids) != len(act_frames):
            return None
    except (ValueError, RecursionError):
        return None
    made = dict(zip(itertools.accumulate(ids), codes))
    return {act: made[frame] for act, frame in zip(itertools.accumulate(act_ids), act_frames) if frame in made}


def act_frames_in(text: bytes) -> dict[int, int] | None:
    """act -> frame of the activations a chunk opens, from its
    ``activations`` section (None: unreadable)."""
    try:
        a = text.index(b',"activations":')
        acts = json.loads(text[a + len(b',"activations":'):])
        if type(acts) is not list or len(acts) != 8:
            return None
        act_ids, act_frames = acts[0], acts[1]
        if not all(type(col) is list and set(map(type, col)) <= {int} for col in (act_ids, act_frames)) \
                or len(act_ids) != len(act_frames):
            return None
    except (ValueError, RecursionError):
        return None
    return dict(zip(itertools.accumulate(act_ids), act_frames))
