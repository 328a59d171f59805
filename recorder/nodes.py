"""The node index: a stable id for every statement, computed with libcst.

Every line event is tied to the innermost statement containing its line.
The same pass also tells, for each line, which local names the statement
there may rebind and which objects it may mutate in place; the tracer
re-reads only those names after the statement ran, which is what keeps a
line step cheap (see docs/architecture.md).

libcst is slow (about half a second per 100 kB), so the result is cached by
the sha256 of the source text under the escope dir's ``cache/``.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .interrupts import owned_by_test
from .line_effects import called_names, line_effects

#: Bump when the cached content changes shape.
CACHE_VERSION = 3
#: The same, for the cached watch maps (``line_effects``).
WATCH_VERSION = 2

@dataclass
class Node:
    first_line: int
    last_line: int
    kind: str
    qualname: str
    node_id: str
    anchor: str


@dataclass
class FileIndex:
    """Statements of one source file, and what each line may change."""

    path: str
    sha256: str
    nodes: list[Node] = field(default_factory=list)
    #: line -> index into ``nodes`` of the innermost statement
    line_node: dict[int, int] = field(default_factory=dict)
    #: line -> (names the statement may rebind, names it may mutate)
    watch: dict[int, tuple[tuple[str, ...], tuple[str, ...]]] = field(default_factory=dict)

    def node_for_line(self, line: int) -> Node | None:
        i = self.line_node.get(line)
        return None if i is None else self.nodes[i]


def index_source(source: str, path: str) -> FileIndex:
    """Build the node index of one file; a file libcst cannot parse gets
    one ``module`` node covering every line, so events still correlate."""
    sha = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
    try:
        # libcst takes 0.4 s to import: only a file missing from the cache pays it
        from .node_walk import walk_module
        return walk_module(source, path, sha)
    except Exception as recorder_err:
        if owned_by_test(recorder_err):
            raise
        index = FileIndex(path=path, sha256=sha)
        nlines = max(1, source.count("\n") + 1)
        index.nodes.append(Node(1, nlines, "module", "<module>", f"{path}:<module>:1:module", f"{path}:<module>:module#1"))
        index.line_node = {line: 0 for line in range(1, nlines + 1)}
        return index


def _to_cache(index: FileIndex) -> dict[str, Any]:
    prefix = index.path + ":"
    return {
        "version": CACHE_VERSION,
        "nodes": [
            [n.first_line, n.last_line, n.kind, n.qualname, n.node_id[len(prefix):], n.anchor[len(prefix):]]
            for n in index.nodes
        ],
        "line_node": [[k, v] for k, v in index.line_node.items()],
        "watch": [[k, list(b), list(m)] for k, (b, m) in index.watch.items()],
    }


def _from_cache(data: dict[str, Any], path: str, sha: str) -> FileIndex:
    index = FileIndex(path=path, sha256=sha)
    prefix = path + ":"
    index.nodes = [Node(a, b, k, q, prefix + nid, prefix + anc) for a, b, k, q, nid, anc in data["nodes"]]
    index.line_node = {int(k): int(v) for k, v in data["line_node"]}
    index.watch = {int(k): (tuple(b), tuple(m)) for k, b, m in data["watch"]}
    return index


class NodeIndexCache:
    """Node indexes by source content, on disk under ``cache_dir``.

    ``parsed`` counts files that really went through libcst; the tests use
    it to prove the second run of unchanged files skips libcst.
    """

    def __init__(self, cache_dir: Path | None) -> None:
        self.cache_dir = cache_dir
        self.parsed = 0
        self.hits = 0

    def watch_map(self, source: str, sha: str) -> tuple[dict[int, tuple[tuple[str, ...], tuple[str, ...]]],
                                                       dict[int, tuple[str, ...]]]:
        """``line_effects`` and ``called_names`` of a file, cached by content
        beside the node index (``cache/watch``): Python's parser takes about
        18 µs a line, a cached map a fraction of that."""
        target = self.cache_dir.parent / "watch" / f"{sha}.json" if self.cache_dir else None
        if target is not None:
            try:
                data = json.loads(target.read_text("utf-8"))
                if data.get("version") == WATCH_VERSION:
                    return ({int(k): (tuple(b), tuple(m)) for k, b, m in data["watch"]},
                            {int(k): tuple(names) for k, names in data["calls"]})
            except (OSError, ValueError, KeyError, TypeError) as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                pass
        watch = line_effects(source)
        calls = called_names(source)
        if target is not None:
            _write_json(target, {"version": WATCH_VERSION,
                                 "watch": [[k, list(b), list(m)] for k, (b, m) in watch.items()],
                                 "calls": [[k, list(names)] for k, names in calls.items()]})
        return watch, calls

    def get(self, source: str, path: str) -> FileIndex:
        sha = hashlib.sha256(source.encode("utf-8", "surrogatepass")).hexdigest()
        target = self.cache_dir / f"{sha}.json" if self.cache_dir else None
        if target is not None:
            try:
                data = json.loads(target.read_text("utf-8"))
                if data.get("version") == CACHE_VERSION:
                    self.hits += 1
                    return _from_cache(data, path, sha)
            except (OSError, ValueError, KeyError, TypeError) as recorder_err:
                if owned_by_test(recorder_err):
                    raise
                pass
        index = index_source(source, path)
        self.parsed += 1
        if target is not None:
            _write_json(target, _to_cache(index))
        return index


def _write_json(target: Path, data: Any) -> None:
    """Atomically, or not at all (a read-only or full cache only costs time)."""
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-", suffix=".json")
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(data, fh, separators=(",", ":"))
        os.replace(tmp, target)
    except OSError as recorder_err:
        if owned_by_test(recorder_err):
            raise
        pass
