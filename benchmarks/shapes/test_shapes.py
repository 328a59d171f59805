"""Synthetic workloads, one per pathological shape of issue 16.

Each is sized by a fixed number of iterations (so a fixed number of events),
never by time, and asserts on its result so that plain and recorded runs can
be compared outcome for outcome.  Pure Python, no dependency: the code under
test is in this file, so escope films all of it.

The suite is not part of the repository's own tests: ``benchmarks/corpus.py``
(and ``benchmarks/thirdparty.py --check``) copy this folder to a temporary
directory and run it there, because escope records nothing inside its own
checkout.

Sizes: on Python 3.12 here every test takes 10 ms to 0.5 s plain.
"""

from __future__ import annotations

import copy
import gc
import pickle


# --- a list-of-lists container of 100,000 ints, pop/insert in a loop ---------
# (boltons' BarrelList: 185x in issue 16, 1.2 M events)

class BarrelList:
    """A list split into sublists of at most ``size`` items."""

    def __init__(self, items, size=512):
        items = list(items)
        self.size = size
        self.lists = [items[i:i + size] for i in range(0, len(items), size)] or [[]]

    def __len__(self):
        return sum(len(part) for part in self.lists)

    def _locate(self, index):
        for list_idx, part in enumerate(self.lists):
            if index < len(part):
                return list_idx, index
            index -= len(part)
        return len(self.lists) - 1, len(self.lists[-1])

    def pop(self, index):
        list_idx, rel = self._locate(index)
        item = self.lists[list_idx].pop(rel)
        if not self.lists[list_idx] and len(self.lists) > 1:
            del self.lists[list_idx]
        return item

    def insert(self, index, item):
        list_idx, rel = self._locate(index)
        part = self.lists[list_idx]
        part.insert(rel, item)
        if len(part) > 2 * self.size:
            self.lists[list_idx:list_idx + 1] = [part[:self.size], part[self.size:]]


def test_list_of_lists_pop_insert():
    barrel = BarrelList(range(100_000))
    for i in range(2_000):
        barrel.insert((i * 7919) % 100_000, barrel.pop((i * 104_729) % 100_000))
    assert len(barrel) == 100_000
    assert sorted(x for part in barrel.lists for x in part) == list(range(100_000))


# --- slicing an indexed set over every (start, stop, step) -------------------
# (boltons' IndexedSet: 250x in issue 16)

class IndexedSet:
    """An ordered set with list-like indexing (a dict of item -> position)."""

    def __init__(self, items=()):
        self.item_list = []
        self.item_index_map = {}
        for item in items:
            self.add(item)

    def add(self, item):
        if item not in self.item_index_map:
            self.item_index_map[item] = len(self.item_list)
            self.item_list.append(item)

    def __len__(self):
        return len(self.item_list)

    def __getitem__(self, index):
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self.item_list))
            return IndexedSet(self.item_list[i] for i in range(start, stop, step))
        return self.item_list[index]

    def __iter__(self):
        return iter(self.item_list)


def test_indexed_set_slices():
    data = list(range(60))
    iset = IndexedSet(data)
    count = 0
    for start in range(-62, 62, 4):
        for stop in range(-62, 62, 4):
            for step in (1, 2, 3, -1, -2, -5):
                got = iset[start:stop:step]
                assert list(got) == data[start:stop:step]
                count += 1
    assert count == 31 * 31 * 6


# --- gc.collect() in a loop while holding many objects -----------------------

def test_gc_collect_loop():
    held = [{"k": [i, str(i)], "n": (i,)} for i in range(50_000)]
    total = 0
    for _ in range(20):
        gc.collect()
        total += len(held)
    assert total == 20 * 50_000


# --- an LFU-like cache of 1,000 keys with linked nodes, read many times, then
#     copied and pickled (cachetools' LFUCache: 740x in issue 16) ------------

class _Link:
    __slots__ = ("count", "keys", "prev", "next")

    def __init__(self, count):
        self.count = count
        self.keys = set()
        self.prev = self.next = self

    def __reduce__(self):  # linked nodes pickle without recursing down the list
        return _Link, (self.count,)


class LFUCache:
    """Least-frequently-used cache: a doubly linked list of use-count buckets."""

    def __init__(self, maxsize):
        self.maxsize = maxsize
        self.data = {}
        self.links = {}
        self.root = _Link(0)

    def _bump(self, key):
        link = self.links[key]
        nxt = link.next
        if nxt is self.root or nxt.count != link.count + 1:
            new = _Link(link.count + 1)
            new.prev, new.next = link, nxt
            link.next = nxt.prev = new
            nxt = new
        nxt.keys.add(key)
        link.keys.discard(key)
        if not link.keys and link is not self.root:
            link.prev.next, link.next.prev = link.next, link.prev
        self.links[key] = nxt

    def __setitem__(self, key, value):
        if key not in self.data:
            self.root.keys.add(key)
            self.links[key] = self.root
        self.data[key] = value
        self._bump(key)

    def __getitem__(self, key):
        value = self.data[key]
        self._bump(key)
        return value

    def __getstate__(self):
        return {"maxsize": self.maxsize, "data": self.data,
                "counts": {k: link.count for k, link in self.links.items()}}

    def __setstate__(self, state):
        self.__init__(state["maxsize"])
        self.data.update(state["data"])
        for key, count in sorted(state["counts"].items(), key=lambda kv: kv[1]):
            link = self.root.prev if self.root.prev.count == count else None
            if link is None:
                link = _Link(count)
                link.prev, link.next = self.root.prev, self.root
                self.root.prev.next = link
                self.root.prev = link
            link.keys.add(key)
            self.links[key] = link


def test_lfu_cache_reads_copy_pickle():
    cache = LFUCache(1_000)
    for key in range(1_000):
        cache[key] = key * 2
    total = 0
    for _ in range(100):  # 100,000 reads
        for key in range(1_000):
            total += cache[key]
    assert total == 100 * sum(k * 2 for k in range(1_000))
    clone = copy.deepcopy(cache)
    again = pickle.loads(pickle.dumps(clone))
    assert again.data == cache.data
    assert {k: l.count for k, l in again.links.items()} == {k: l.count for k, l in cache.links.items()}


# --- a 5 M-event test (peak memory) ------------------------------------------

def _step(acc, i):
    return acc + (i & 7)


def test_five_million_events():
    # each iteration: a line event for the loop, one for the body, and the
    # call, line and return events of _step: about 5 events
    acc = 0
    for i in range(1_000_000):
        acc = _step(acc, i)
    assert acc == sum(i & 7 for i in range(1_000_000))


# --- an exception-heavy parsing loop ------------------------------------------

class ParseError(ValueError):
    pass


def _token(text):
    for parse in (int, float, _parse_date, _parse_word):
        try:
            return parse(text)
        except (ValueError, ParseError):
            continue
    raise ParseError(text)


def _parse_date(text):
    parts = text.split("-")
    if len(parts) != 3:
        raise ParseError(f"not a date: {text!r}")
    year, month, day = (int(p) for p in parts)
    if not 1 <= month <= 12 or not 1 <= day <= 31:
        raise ParseError(f"out of range: {text!r}")
    return (year, month, day)


def _parse_word(text):
    if not text.isalpha():
        raise ParseError(f"not a word: {text!r}")
    return text.lower()


def test_exception_heavy_parsing():
    samples = ["12", "3.5", "2024-02-30", "2024-13-01", "Monday", "1e3", "x-y-z", "--", "??", "7-8"]
    parsed = failed = 0
    for i in range(20_000):
        text = samples[i % len(samples)]
        try:
            _token(text)
            parsed += 1
        except ParseError:
            failed += 1
    # 12, 3.5, 2024-02-30, Monday and 1e3 parse; the other five raise
    assert (parsed, failed) == (10_000, 10_000)
