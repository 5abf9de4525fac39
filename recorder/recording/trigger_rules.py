"""Trigger rules: when an armed recording starts a run, decided on the decoded stream.

One small syntax (docs/triggers.md) for the CLI's `--trigger` and the API alike; the API also
takes each rule as a JSON object with the same fields (`rule_from_json`, `rule_to_json`). A
rule's canonical text (`Rule.text`) is how it travels in a job's parameters and how a run
records the rule that made it.

    [STREAM:] ttl LINE high|low            Open Ephys TTL event (ZMQ Interface, Event Broadcaster)
    [STREAM:] text ~|== "TEXT"             Open Ephys text event / broadcast string
    [STREAM:] key SOURCE KEY OP VALUE      Karabo value crossing a threshold
    [STREAM:] attr NAME OP VALUE           ADZMQ NDAttribute crossing a threshold
    [STREAM:] count >=|>|== N              the N-th message
    [STREAM:] rate OP N/s                  messages in the last second crossing N

Rules are parsed and checked once, before anything starts (`parse_rule`, `RuleSet(...)`), and
compiled into small evaluators: `RuleSet.check` runs on each stream's writer thread for every
message and must not slow it down, so an evaluator reads only what the codec already decoded
(columns, the kind) and allocates nothing per message. Thresholds fire on a crossing (the
condition was false on the previous value and is true on this one), events (TTL, text) on each
matching message, counts once.

This module imports no socket code: the web app checks rules with it too.
"""

from __future__ import annotations

import itertools
import json
import math
import operator
import re
import threading
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from recorder.contracts import WriteItem
from recorder.errors import UsageError

KINDS = ("ttl", "text", "key", "attr", "count", "rate")
#: The fields of each kind of rule, in the order the text form gives them (also the JSON keys).
FIELDS = {
    "ttl": ("line", "state"),
    "text": ("op", "value"),
    "key": ("source", "key", "op", "value"),
    "attr": ("name", "op", "value"),
    "count": ("op", "value"),
    "rate": ("op", "value"),
}
PROTOCOL_OF_KIND = {"ttl": "openephys", "text": "openephys", "key": "karabo", "attr": "adzmq"}
"""Kinds that read one protocol's decoded messages; the others fit any stream."""

COMPARISONS = (">", ">=", "<", "<=", "==", "!=")
TEXT_OPS = ("~", "==")
COUNT_OPS = (">=", ">", "==")
RATE_OPS = (">", ">=", "<", "<=")
RATE_WINDOW_NS = 1_000_000_000
MAX_TTL_LINE = 255  # the ZMQ Interface sends the line as a uint8
MAX_TEXT = 4096

OE_MESSAGE_EVENT = 5
"""Open Ephys event type MESSAGE (protocols/openephys.py EVENT_TYPES; not imported: that module
loads zmq, and the web app parses rules)."""

Value = int | float | str


@dataclass(frozen=True)
class Rule:
    """One trigger rule, checked. `text` is its canonical form: parse_rule(r.text) == r."""

    kind: str
    stream: str | None = None  # None: any stream of the recording
    op: str | None = None  # comparison (key, attr, count, rate) or match (text: ~ or ==)
    value: Value | None = None  # threshold, count, rate per second, or the text to match
    line: int | None = None  # ttl
    high: bool | None = None  # ttl: True high, False low
    source: str | None = None  # key: the Karabo source
    key: str | None = None  # key: the dotted key path within the source
    name: str | None = None  # attr: the NDAttribute name

    @property
    def text(self) -> str:
        scope = f"{self.stream}: " if self.stream is not None else ""
        return scope + " ".join(self._words())

    def _words(self) -> list[str]:
        if self.kind == "ttl":
            return ["ttl", str(self.line), "high" if self.high else "low"]
        if self.kind == "text":
            return ["text", str(self.op), _quote(str(self.value), always=True)]
        if self.kind == "key":
            source, key = _quote(str(self.source)), _quote(str(self.key))
            return ["key", source, key, str(self.op), _value_text(self.value)]
        if self.kind == "attr":
            return ["attr", _quote(str(self.name)), str(self.op), _value_text(self.value)]
        if self.kind == "count":
            return ["count", str(self.op), str(self.value)]
        return ["rate", str(self.op), f"{_value_text(self.value)}/s"]

    def __str__(self) -> str:
        return self.text


# --------------------------------------------------------------------------- text form

_TOKEN = re.compile(
    r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>>=|<=|==|!=|=|>|<|~)|(?P<word>[^\s"<>=!~]+))'
)
_SCOPE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.\-]{0,63})\s*:(.*)$", re.DOTALL)
_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
_PLAIN = re.compile(r'^[^\s"<>=!~]+$')


def _quote(s: str, always: bool = False) -> str:
    if always or not _PLAIN.match(s) or _NUMBER.match(s):
        return json.dumps(s, ensure_ascii=False)
    return s


def _value_text(v: Value | None) -> str:
    if isinstance(v, str):
        return _quote(v, always=True)
    if isinstance(v, float):
        return repr(v)
    return str(v)


def _tokens(text: str, where: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    pos, end = 0, len(text.rstrip())
    while pos < end:
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            raise UsageError(f"{where}: cannot read {text[pos:].strip()[:20]!r}")
        pos = m.end()
        if m.group("str") is not None:
            try:
                out.append(("str", json.loads(m.group("str"))))
            except ValueError:
                raise UsageError(f"{where}: bad quoted text {m.group('str')!r}") from None
        elif m.group("op") is not None:
            out.append(("op", m.group("op")))
        else:
            out.append(("word", m.group("word")))
    return out


def _number(text: Any, where: str, what: str = "number") -> int | float:
    """A finite int or float (integral values as int, so 1e3 and 1000 are one rule)."""
    if isinstance(text, bool):
        raise UsageError(f"{where}: bad {what} {text!r}")
    if isinstance(text, int | float):
        v: int | float = text
    elif isinstance(text, str) and _NUMBER.match(text):
        v = int(text) if re.match(r"^[-+]?\d+$", text) else float(text)
    else:
        raise UsageError(f"{where}: bad {what} {text!r}")
    if isinstance(v, float):
        if not math.isfinite(v):
            raise UsageError(f"{where}: bad {what} {text!r}")
        if v.is_integer() and abs(v) < 2**53:
            v = int(v)
    return v


def parse_rule(text: str) -> Rule:
    """A rule from its text (docs/triggers.md); UsageError with a one-line reason."""
    if not isinstance(text, str) or not text.strip():
        raise UsageError("trigger rule: empty rule (e.g. 'ttl 3 high', 'count >= 1000')")
    where = f"trigger rule {text.strip()!r}"
    if "\n" in text or "\r" in text:
        raise UsageError(f"{where}: one line please")
    stream = None
    m = _SCOPE.match(text)
    if m:
        stream, text = m.group(1), m.group(2)
    toks = _tokens(text, where)
    if not toks:
        raise UsageError(f"{where}: no rule after the stream name")
    for (a_type, a), (b_type, b) in itertools.pairwise(toks):
        if a_type == b_type == "op":
            raise UsageError(f"{where}: bad operator {a + b!r} (one of {' '.join(COMPARISONS)})")
    kind_type, kind = toks[0]
    if kind_type != "word" or kind.lower() not in KINDS:
        raise UsageError(f"{where}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    kind = kind.lower()
    args = toks[1:]
    shape = FIELDS[kind]
    if len(args) != len(shape):
        usage = {
            "ttl": "ttl LINE high|low",
            "text": 'text ~ "TEXT"',
            "key": "key SOURCE KEY OP VALUE",
            "attr": "attr NAME OP VALUE",
            "count": "count >= N",
            "rate": "rate > N/s",
        }[kind]
        raise UsageError(f"{where}: expected {usage!r}")
    fields: dict[str, Any] = {}
    for (tok_type, tok), field_name in zip(args, shape, strict=True):
        if field_name == "op":
            if tok_type != "op":
                raise UsageError(f"{where}: expected an operator, not {tok!r}")
            fields["op"] = "==" if tok == "=" else tok
        elif tok_type == "op":
            raise UsageError(f"{where}: unexpected operator {tok!r}")
        elif field_name == "value":
            if kind == "rate" and tok_type == "word":
                tok = tok[:-2] if tok.lower().endswith("/s") else tok
            fields["value"] = tok if (tok_type == "str" or kind == "text") else _Word(tok)
        else:
            fields[field_name] = tok
    return _make(kind, stream, fields, where)


class _Word(str):
    """An unquoted value: a number for thresholds (a quoted one is a string)."""


def _make(kind: str, stream: str | None, f: dict[str, Any], where: str) -> Rule:
    """The one place a rule's fields are checked, for the text and the JSON form alike."""
    if stream is not None and (
        not isinstance(stream, str) or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$", stream)
    ):
        raise UsageError(f"{where}: bad stream name {stream!r}")
    op = f.get("op")
    value: Any = f.get("value")
    if kind == "ttl":
        line = f.get("line")
        try:
            line = _number(line, where, "TTL line")
        except UsageError:
            raise UsageError(f"{where}: bad TTL line {line!r} (0 to {MAX_TTL_LINE})") from None
        if not isinstance(line, int) or not 0 <= line <= MAX_TTL_LINE:
            raise UsageError(f"{where}: bad TTL line {line!r} (0 to {MAX_TTL_LINE})")
        state = f.get("state")
        if not isinstance(state, str) or state.lower() not in ("high", "low"):
            raise UsageError(f"{where}: TTL state {state!r} is not high or low")
        return Rule("ttl", stream, line=line, high=state.lower() == "high")
    if kind == "text":
        if op not in TEXT_OPS:
            raise UsageError(f"{where}: text matches with ~ (contains) or == , not {op!r}")
        if not isinstance(value, str) or not value or len(value) > MAX_TEXT:
            raise UsageError(f"{where}: text to match must be 1 to {MAX_TEXT} characters")
        return Rule("text", stream, op=op, value=str(value))
    if kind in ("key", "attr"):
        if op not in COMPARISONS:
            raise UsageError(f"{where}: bad operator {op!r} (one of {' '.join(COMPARISONS)})")
        names = ("source", "key") if kind == "key" else ("name",)
        for n in names:
            if not isinstance(f.get(n), str) or not f[n]:
                raise UsageError(f"{where}: {kind} needs a {n}")
        if isinstance(value, _Word) or not isinstance(value, str):
            value = _number(value, where)
        elif op not in ("==", "!="):
            raise UsageError(f"{where}: {op} needs a number, not the text {value!r}")
        if kind == "key":
            return Rule("key", stream, op=op, value=value, source=f["source"], key=f["key"])
        return Rule("attr", stream, op=op, value=value, name=f["name"])
    if kind == "count":
        if op not in COUNT_OPS:
            raise UsageError(f"{where}: count takes {', '.join(COUNT_OPS)}, not {op!r}")
        count = _number(value, where, "count")
        if not isinstance(count, int) or count < (0 if op == ">" else 1):
            raise UsageError(f"{where}: bad count {value!r} (a whole number of messages)")
        return Rule("count", stream, op=op, value=count)
    if kind == "rate":
        if op not in RATE_OPS:
            raise UsageError(f"{where}: rate takes {', '.join(RATE_OPS)}, not {op!r}")
        r = _number(value, where, "rate")
        if r <= 0:
            raise UsageError(f"{where}: bad rate {value!r} (messages per second, above 0)")
        return Rule("rate", stream, op=op, value=r)
    raise UsageError(f"{where}: unknown kind {kind!r} (one of {', '.join(KINDS)})")


# --------------------------------------------------------------------------- JSON form


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """The API form: {"kind": ..., the kind's fields, "stream" if scoped}."""
    out: dict[str, Any] = {"kind": rule.kind}
    if rule.kind == "ttl":
        out.update(line=rule.line, state="high" if rule.high else "low")
    elif rule.kind == "key":
        out.update(source=rule.source, key=rule.key, op=rule.op, value=rule.value)
    elif rule.kind == "attr":
        out.update(name=rule.name, op=rule.op, value=rule.value)
    else:
        out.update(op=rule.op, value=rule.value)
    if rule.stream is not None:
        out["stream"] = rule.stream
    return out


def rule_from_json(obj: dict[str, Any] | str) -> Rule:
    """A rule from the API: a JSON object (rule_to_json's form) or its text."""
    if isinstance(obj, str):
        return parse_rule(obj)
    if not isinstance(obj, dict):
        raise UsageError(f"trigger rule: an object or a text, not {type(obj).__name__}")
    where = f"trigger rule {json.dumps(obj, default=str)[:200]}"
    kind = obj.get("kind")
    if kind not in KINDS:
        raise UsageError(f"{where}: unknown kind {kind!r} (one of {', '.join(KINDS)})")
    allowed = {"kind", "stream", *FIELDS[kind]}
    unknown = sorted(set(obj) - allowed)
    if unknown:
        raise UsageError(f"{where}: unknown field(s) {', '.join(unknown)} for a {kind} rule")
    missing = [n for n in FIELDS[kind] if n not in obj]
    if missing:
        raise UsageError(f"{where}: missing {', '.join(missing)}")
    fields = {k: v for k, v in obj.items() if k not in ("kind", "stream")}
    if fields.get("op") == "=":
        fields["op"] = "=="
    if kind == "rate" and isinstance(fields["value"], str):
        v = fields["value"]
        fields["value"] = v[:-2] if v.lower().endswith("/s") else v
    if kind in ("count", "rate") and isinstance(fields["value"], str):
        fields["value"] = _Word(fields["value"])
    return _make(kind, obj.get("stream"), fields, where)


# --------------------------------------------------------------------------- evaluation

_OPS: dict[str, Callable[[Any, Any], bool]] = {
    ">": operator.gt,
    ">=": operator.ge,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
    "!=": operator.ne,
}
_MISSING = object()


def _compiled_test(op: str, threshold: Value) -> Callable[[Any], bool]:
    """value -> condition holds, for scalars and (Karabo) arrays: an array holds when any
    element does. A value of the wrong type (text for a number) does not hold."""
    cmp = _OPS[op]
    if isinstance(threshold, str):

        def test_text(v: Any) -> bool:
            return isinstance(v, str) and cmp(v, threshold)

        return test_text

    def test_number(v: Any) -> bool:
        if isinstance(v, str):
            return False
        if isinstance(v, np.ndarray):
            if v.size == 0 or v.dtype.kind not in "biuf":
                return False
            return bool(np.any(cmp(v, threshold)))
        try:
            return bool(cmp(v, threshold))
        except TypeError:
            return False

    return test_number


class _Evaluator:
    """One rule's state on one stream (or, for unscoped count and rate, on all of them)."""

    __slots__ = ("rule",)

    def __init__(self, rule: Rule) -> None:
        self.rule = rule

    def check(self, item: WriteItem) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError


class _Ttl(_Evaluator):
    """A TTL event of this line and state: ZMQ Interface events (payload line/state) and Event
    Broadcaster TTL messages (JSON or binary) both decode to `line` and `state` columns."""

    __slots__ = ("high", "line")

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.line, self.high = rule.line, bool(rule.high)

    def check(self, item: WriteItem) -> bool:
        decoded = item[2]
        if decoded is None or decoded.kind != "event":
            return False
        columns = decoded.columns
        if columns.get("line") != self.line:
            return False
        state = columns.get("state")
        return state is not None and bool(state) is self.high


class _Text(_Evaluator):
    """An Open Ephys text: a ZMQ Interface event of type MESSAGE (its payload frame, up to a
    NUL), or any string member of an Event Broadcaster JSON message (event_type,
    channel_name, electrode, stream ...). `~` contains, ignoring case; `==` the whole text."""

    __slots__ = ("contains", "needle")

    def __init__(self, rule: Rule) -> None:
        super().__init__(rule)
        self.contains = rule.op == "~"
        self.needle = str(rule.value).casefold() if self.contains else str(rule.value)

    def _matches(self, text: str) -> bool:
        if self.contains:
            return self.needle in text.casefold()
        return text == self.needle

    def check(self, item: WriteItem) -> bool:
        decoded = item[2]
        if decoded is None:
            return False
        columns = decoded.columns
        if columns.get("format") == "json":  # Event Broadcaster
            for name, value in columns.items():
                if name != "format" and isinstance(value, str) and self._matches(value):
                    return True
            return False
        if decoded.kind == "event" and columns.get("event_type") == OE_MESSAGE_EVENT:
            frames = item[1]
            if len(frames) < 3:
                return False
            raw = bytes(frames[2]).split(b"\0", 1)[0]
            return self._matches(raw.decode("utf-8", "replace"))
        return False


class _Crossing(_Evaluator):
    """A value crossing a threshold: fires when the condition holds on this value and did not
    on the previous one. The first value seen only sets the state. Messages without the value
    leave the state as it was."""

    __slots__ = ("names", "test", "was")

    def __init__(self, rule: Rule, names: tuple[str, ...]) -> None:
        super().__init__(rule)
        assert rule.op is not None and rule.value is not None
        self.names = names
        self.test = _compiled_test(rule.op, rule.value)
        self.was: bool | None = None

    def value(self, item: WriteItem) -> Any:
        decoded = item[2]
        if decoded is None:
            return _MISSING
        columns = decoded.columns
        for name in self.names:
            v = columns.get(name, _MISSING)
            if v is not _MISSING:
                return v
        return _MISSING

    def check(self, item: WriteItem) -> bool:
        v = self.value(item)
        if v is _MISSING:
            return False
        now = self.test(v)
        was, self.was = self.was, now
        return now and was is False


class _KaraboKey(_Crossing):
    """`<source>:<key>` of a train: a scalar column, else a typed array of that name (a bulk
    frame of a 2.2 train, or a typed copy of a 1.0 train's or a list's values)."""

    __slots__ = ()

    def value(self, item: WriteItem) -> Any:
        decoded = item[2]
        if decoded is None:
            return _MISSING
        name = self.names[0]
        v = decoded.columns.get(name, _MISSING)
        if v is not _MISSING:
            return v
        for b in decoded.bulk:
            if b.name == name:
                return b.array
        for d in decoded.derived:
            if isinstance(d, tuple):
                if d[0] == name:
                    return d[1]
            elif d.name == name:
                return d.array
        return _MISSING


class _Count(_Evaluator):
    """The N-th message (of the stream, or of all streams when unscoped): fires once."""

    __slots__ = ("fire_at", "lock", "n")

    def __init__(self, rule: Rule, shared: bool) -> None:
        super().__init__(rule)
        assert isinstance(rule.value, int)
        self.n = 0
        self.fire_at = rule.value + 1 if rule.op == ">" else rule.value
        self.lock = threading.Lock() if shared else None

    def check(self, item: WriteItem) -> bool:
        if self.lock is None:
            self.n += 1
            return self.n == self.fire_at
        with self.lock:
            self.n += 1
            return self.n == self.fire_at


class _Rate(_Evaluator):
    """Messages received in the last second (by receive time, this message included) crossing
    N: `>`/`>=` from the first message on (the rate starts at 0), `<`/`<=` once the stream has
    been seen for a whole second (a window still filling is not a low rate). Measured at each
    message: a stream that stops sends nothing to measure."""

    __slots__ = ("first", "lock", "rising", "test", "times", "was")

    def __init__(self, rule: Rule, shared: bool) -> None:
        super().__init__(rule)
        assert rule.op is not None and rule.value is not None
        self.times: deque[int] = deque()
        self.test = _compiled_test(rule.op, rule.value)
        self.rising = rule.op in (">", ">=")
        self.was: bool | None = False if self.rising else None
        self.first: int | None = None
        self.lock = threading.Lock() if shared else None

    def check(self, item: WriteItem) -> bool:
        if self.lock is None:
            return self._check(item[0])
        with self.lock:
            return self._check(item[0])

    def _check(self, t: int) -> bool:
        times = self.times
        times.append(t)
        start = t - RATE_WINDOW_NS
        while times[0] <= start:
            times.popleft()
        if self.first is None:
            self.first = t
        if not self.rising and t - self.first < RATE_WINDOW_NS:
            return False
        now = self.test(len(times))
        was, self.was = self.was, now
        return now and was is False


class RuleSet:
    """The rules of one recording with their state (previous values, counts, rate windows).

    `streams`: stream name -> protocol (None while `auto` has not decided). `check` is called
    on each stream's writer thread for every message in receive order and returns the rule
    that fired on it (the first one, in the order given; every rule still sees the message).
    Each stream gets its own evaluators (built on its first message, when its protocol is
    known); unscoped count and rate rules are shared by all streams, behind a lock.
    """

    def __init__(self, rules: Sequence[Rule], streams: Mapping[str, str | None]) -> None:
        self.rules: tuple[Rule, ...] = tuple(rules)
        self._streams = dict(streams)
        for rule in self.rules:
            _check_fits(rule, self._streams)
        self._shared: dict[int, _Evaluator] = {}
        for i, rule in enumerate(self.rules):
            if rule.stream is None and rule.kind == "count":
                self._shared[i] = _Count(rule, shared=True)
            elif rule.stream is None and rule.kind == "rate":
                self._shared[i] = _Rate(rule, shared=True)
        self._per_stream: dict[str, tuple[str, tuple[_Evaluator, ...]]] = {}
        self.warnings: list[str] = []
        """Rules found not to fit a stream only once `auto` decided its protocol."""

    def __bool__(self) -> bool:
        return bool(self.rules)

    def __len__(self) -> int:
        return len(self.rules)

    def _build(self, stream: str, protocol: str) -> tuple[str, tuple[_Evaluator, ...]]:
        evaluators: list[_Evaluator] = []
        for i, rule in enumerate(self.rules):
            if rule.stream is not None and rule.stream != stream:
                continue
            fits = PROTOCOL_OF_KIND.get(rule.kind)
            if fits is not None and fits != protocol:
                if rule.stream == stream:  # `auto` decided on another protocol
                    self.warnings.append(
                        f"trigger rule {rule.text!r} never fires: {rule.kind} rules read "
                        f"{fits} messages and stream {stream!r} is {protocol}"
                    )
                continue
            shared = self._shared.get(i)
            if shared is not None:
                evaluators.append(shared)
            elif rule.kind == "ttl":
                evaluators.append(_Ttl(rule))
            elif rule.kind == "text":
                evaluators.append(_Text(rule))
            elif rule.kind == "key":
                evaluators.append(_KaraboKey(rule, (f"{rule.source}:{rule.key}",)))
            elif rule.kind == "attr":
                name = f"ndattr.{rule.name}"
                evaluators.append(_Crossing(rule, (name + ".float64", name)))
            elif rule.kind == "count":
                evaluators.append(_Count(rule, shared=False))
            else:
                evaluators.append(_Rate(rule, shared=False))
        entry = (protocol, tuple(evaluators))
        self._per_stream[stream] = entry
        return entry

    def check(self, stream: str, protocol: str, item: WriteItem) -> Rule | None:
        entry = self._per_stream.get(stream)
        if entry is None or entry[0] != protocol:
            entry = self._build(stream, protocol)
        fired = None
        for evaluator in entry[1]:
            if evaluator.check(item) and fired is None:
                fired = evaluator.rule
        return fired


def _check_fits(rule: Rule, streams: Mapping[str, str | None]) -> None:
    """A rule that names a stream the recording does not have, or whose kind reads a protocol
    none of its streams speaks (as far as known), is a UsageError before anything starts."""
    where = f"trigger rule {rule.text!r}"
    fits = PROTOCOL_OF_KIND.get(rule.kind)
    if rule.stream is not None:
        if rule.stream not in streams:
            names = ", ".join(sorted(streams)) or "none"
            raise UsageError(f"{where}: no stream {rule.stream!r} in the recording ({names})")
        protocol = streams[rule.stream]
        if fits is not None and protocol is not None and protocol != fits:
            raise UsageError(
                f"{where}: {rule.kind} rules read {fits} messages; "
                f"stream {rule.stream!r} is {protocol}"
            )
        return
    if fits is None or not streams:
        return
    known = {p for p in streams.values()}
    if None not in known and fits not in known:
        raise UsageError(
            f"{where}: {rule.kind} rules read {fits} messages; the recording has "
            f"{', '.join(sorted(str(p) for p in known))}"
        )


def parse_rules(texts: Sequence[str]) -> tuple[Rule, ...]:
    """Several rules (the CLI's repeated --trigger, a plan's canonical texts)."""
    return tuple(parse_rule(t) for t in texts)
