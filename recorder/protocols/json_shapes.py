"""JSON headers that repeat their shape, read without a JSON parser.

A source that sends thousands of small JSON headers a second (the Open Ephys ZMQ Interface: one
per channel per block) repeats the same text with a few numbers changed. Parsing each with `json`
costs more than everything else the recorder does with the message. A `Shape` is learnt from one
header: its text with every scalar value replaced by a capture group of that value's kind (key
names, punctuation and white space stay literal). A later header that matches the shape gives
exactly the values `json.loads` would (ints, floats, plain strings); anything else (an escaped
string, a value of another kind, a key added or moved, other white space) does not match, and the
caller parses it the ordinary way. So a shape can be wrong only by not matching, never by
reading a value differently.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

_TOKEN = re.compile(
    rb"""(?P<str>"(?:[^"\\]|\\.)*")|(?P<num>-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?)"""
    rb"""|(?P<lit>true|false|null)|(?P<punct>[{}\[\],:])|(?P<ws>[ \t\r\n]+)"""
)
_INT = rb"(-?(?:0|[1-9][0-9]*))"
_FLOAT = rb"(-?(?:0|[1-9][0-9]*)(?:\.[0-9]+(?:[eE][+-]?[0-9]+)?|[eE][+-]?[0-9]+))"
_PLAIN_STR = rb'"([^"\\\x00-\x1f]*)"'  # no escapes, no control characters: bytes are the text
MAX_SHAPE_BYTES = 4096  # longer headers are parsed the ordinary way
MAX_SHAPES = 8


def _leaves(value: Any, path: tuple = ()) -> list[tuple[tuple, Any]]:
    """(path, value) of every scalar in document order (dicts keep it in Python)."""
    if isinstance(value, dict):
        return [leaf for k, v in value.items() for leaf in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, (*path, i))]
    return [(path, value)]


class Shape:
    """One header layout: `values(text)` gives its scalars by path, or None if it differs."""

    def __init__(self, sample: bytes):
        parsed = json.loads(sample)
        leaves = _leaves(parsed)
        parts: list[bytes] = []
        kinds: list[Callable[[bytes], Any] | None] = []  # None: a literal, constant value
        pos = 0
        tokens = list(_TOKEN.finditer(sample))
        if sum(m.end() - m.start() for m in tokens) != len(sample):
            raise ValueError("the sample has text the tokenizer does not know")
        for i, m in enumerate(tokens):
            pos = m.end()
            text = m.group(0)
            if m.lastgroup in ("punct", "ws", "lit"):
                parts.append(re.escape(text))
                if m.lastgroup == "lit":
                    kinds.append(None)
                continue
            if m.lastgroup == "str" and _is_key(tokens, i):
                parts.append(re.escape(text))
                continue
            if m.lastgroup == "str":
                parts.append(_PLAIN_STR)
                kinds.append(_text)
            elif b"." in text or b"e" in text or b"E" in text:
                parts.append(_FLOAT)
                kinds.append(float)
            else:
                parts.append(_INT)
                kinds.append(int)
        assert pos == len(sample)
        self.paths = [p for p, _ in leaves]
        if len(self.paths) != len(kinds):
            raise ValueError("the sample's values and tokens disagree")
        self._groups = [i for i, k in enumerate(kinds) if k is not None]
        self._kinds: list[Callable[[bytes], Any]] = [k for k in kinds if k is not None]
        self._consts = {i: leaves[i][1] for i, k in enumerate(kinds) if k is None}
        self._regex = re.compile(b"".join(parts))
        #: path -> (index into `groups(text)`, the kind: int, float or str) of each value that
        #: varies; literals (true, false, null) are part of the shape and have none.
        self.slots = {
            self.paths[slot]: (n, str if kind is _text else kind)
            for n, (slot, kind) in enumerate(zip(self._groups, self._kinds, strict=True))
        }
        self.constants = {self.paths[i]: v for i, v in self._consts.items()}
        #: the kind of each group of a match (int, float or str), in group order
        self.group_kinds = [str if kind is _text else kind for kind in self._kinds]
        self.groups = self._regex.fullmatch  # groups(text) -> re.Match | None: the fast way in
        if self.values(sample) != [v for _, v in leaves]:
            raise ValueError("the shape does not read its own sample back")

    def values(self, text: bytes) -> list[Any] | None:
        """The scalars of `text` in document order, or None if it is not of this shape."""
        m = self._regex.fullmatch(text)
        if m is None:
            return None
        out: list[Any] = [None] * len(self.paths)
        try:
            for slot, kind, raw in zip(self._groups, self._kinds, m.groups(), strict=True):
                out[slot] = kind(raw)
        except UnicodeDecodeError:
            return None
        for slot, value in self._consts.items():
            out[slot] = value
        return out


class ShapeCache:
    """A few shapes learnt from the headers seen, tried in turn."""

    def __init__(self) -> None:
        self.shapes: list[Shape] = []
        self._failed = 0

    def match(self, text: bytes) -> Shape | None:
        """The first learnt shape `text` has."""
        for shape in self.shapes:
            if shape.groups(text) is not None:
                return shape
        return None

    @property
    def full(self) -> bool:
        """No more learning: as many shapes as kept, or headers that could not be one."""
        return len(self.shapes) + self._failed >= MAX_SHAPES

    def learn(self, text: bytes) -> Shape | None:
        """Learn the shape of a header that parsed as JSON (None when it cannot be one)."""
        if len(text) > MAX_SHAPE_BYTES:
            self._failed += 1
            return None
        if self.full:
            return None
        try:
            shape = Shape(bytes(text))
        except (ValueError, RecursionError):
            self._failed += 1
            return None
        self.shapes.append(shape)
        return shape


def _is_key(tokens: list[re.Match], i: int) -> bool:
    for m in tokens[i + 1 :]:
        if m.lastgroup == "ws":
            continue
        return m.group(0) == b":"
    return False


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")
