"""Trigger rules: the text and JSON forms of every kind, the one-line reasons bad rules are
refused with, and rules firing on real simulator streams (received on loopback, decoded by the
codec) at the message they should and at no other."""

from __future__ import annotations

import pytest

from recorder.errors import UsageError
from recorder.recording.trigger_rules import (
    Rule,
    RuleSet,
    parse_rule,
    parse_rules,
    rule_from_json,
    rule_to_json,
)

# text as written -> (canonical text, JSON form)
EVERY_KIND = {
    "ttl 3 high": ("ttl 3 high", {"kind": "ttl", "line": 3, "state": "high"}),
    "oe: ttl 0 LOW": ("oe: ttl 0 low", {"kind": "ttl", "line": 0, "state": "low", "stream": "oe"}),
    'text ~ "seizure"': ('text ~ "seizure"', {"kind": "text", "op": "~", "value": "seizure"}),
    "text = 'x'".replace("'", '"'): ('text == "x"', {"kind": "text", "op": "==", "value": "x"}),
    "text ~ stim": ('text ~ "stim"', {"kind": "text", "op": "~", "value": "stim"}),
    "key SA1_XTD2_XGM/DOOCS/MAIN:output data.intensityTD > 1000": (
        "key SA1_XTD2_XGM/DOOCS/MAIN:output data.intensityTD > 1000",
        {
            "kind": "key",
            "source": "SA1_XTD2_XGM/DOOCS/MAIN:output",
            "key": "data.intensityTD",
            "op": ">",
            "value": 1000,
        },
    ),
    'kb:key "A B" x.y<=-1.5e3': (
        'kb: key "A B" x.y <= -1500',
        {"kind": "key", "source": "A B", "key": "x.y", "op": "<=", "value": -1500, "stream": "kb"},
    ),
    'key SRC state.value == "ON"': (
        'key SRC state.value == "ON"',
        {"kind": "key", "source": "SRC", "key": "state.value", "op": "==", "value": "ON"},
    ),
    "attr Temperature >= 21.75": (
        "attr Temperature >= 21.75",
        {"kind": "attr", "name": "Temperature", "op": ">=", "value": 21.75},
    ),
    'cam: attr Camera != "sim"': (
        'cam: attr Camera != "sim"',
        {"kind": "attr", "name": "Camera", "op": "!=", "value": "sim", "stream": "cam"},
    ),
    "attr Counter < 1e2": (
        "attr Counter < 100",
        {"kind": "attr", "name": "Counter", "op": "<", "value": 100},
    ),
    "count >= 1000": ("count >= 1000", {"kind": "count", "op": ">=", "value": 1000}),
    "count == 5": ("count == 5", {"kind": "count", "op": "==", "value": 5}),
    "rate > 500/s": ("rate > 500/s", {"kind": "rate", "op": ">", "value": 500}),
    "cam.1: rate<=0.5": (
        "cam.1: rate <= 0.5/s",
        {"kind": "rate", "op": "<=", "value": 0.5, "stream": "cam.1"},
    ),
}


@pytest.mark.parametrize("written", list(EVERY_KIND))
def test_text_and_json_round_trip(written: str) -> None:
    canonical, as_json = EVERY_KIND[written]
    rule = parse_rule(written)
    assert rule.text == canonical
    assert rule_to_json(rule) == as_json
    assert parse_rule(rule.text) == rule
    assert rule_from_json(as_json) == rule
    assert rule_from_json(canonical) == rule  # the API takes the text too
    assert rule_from_json(rule_to_json(rule)).text == canonical


def test_every_kind_is_covered() -> None:
    kinds = {parse_rule(t).kind for t in EVERY_KIND}
    assert kinds == {"ttl", "text", "key", "attr", "count", "rate"}
    assert parse_rules(["ttl 1 high", "count > 0"]) == (
        parse_rule("ttl 1 high"),
        Rule("count", op=">", value=0),
    )


BAD_TEXT = {
    "": "empty rule",
    "   ": "empty rule",
    "foo 1": "unknown kind 'foo'",
    "ttl x high": "bad TTL line 'x'",
    "ttl 256 high": "bad TTL line 256",
    "ttl 3 up": "TTL state 'up' is not high or low",
    "ttl 3": "expected 'ttl LINE high|low'",
    'text > "a"': "text matches with ~",
    'text ~ ""': "text to match must be",
    'text ~ "open': "cannot read",
    "key a b > 10x": "bad number '10x'",
    "key a > 3": "expected 'key SOURCE KEY OP VALUE'",
    "attr T >> 3": "bad operator '>>'",
    "attr T ! 3": "cannot read '! 3'",
    'attr T > "warm"': "> needs a number, not the text 'warm'",
    "attr T > nan": "bad number 'nan'",
    "count < 3": "count takes >=, >, ==, not '<'",
    "count >= 1.5": "bad count '1.5'",
    "count >= 0": "bad count '0'",
    "rate > -1/s": "bad rate '-1'",
    "rate != 3/s": "rate takes >, >=, <, <=, not '!='",
    "oe:": "no rule after the stream name",
    "ttl 3 high\ncount > 1": "one line please",
}


@pytest.mark.parametrize("text", list(BAD_TEXT))
def test_bad_rules_are_refused_with_a_one_line_reason(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_rule(text)
    message = str(info.value)
    assert BAD_TEXT[text] in message
    assert "\n" not in message and message.startswith("trigger rule")


BAD_JSON = [
    ({"kind": "ttl", "line": 3}, "missing state"),
    ({"kind": "nope"}, "unknown kind 'nope'"),
    ({"kind": "ttl", "line": 3, "state": "high", "op": ">"}, "unknown field(s) op"),
    ({"kind": "count", "op": ">=", "value": "many"}, "bad count 'many'"),
    ({"kind": "attr", "name": "T", "op": "=>", "value": 3}, "bad operator '=>'"),
    ({"kind": "key", "source": "", "key": "k", "op": ">", "value": 1}, "key needs a source"),
    ({"kind": "rate", "op": ">", "value": True}, "bad rate True"),
    ({"kind": "ttl", "line": 1, "state": "high", "stream": "a b"}, "bad stream name 'a b'"),
    (7, "an object or a text, not int"),
]


@pytest.mark.parametrize(("obj", "reason"), BAD_JSON)
def test_bad_json_rules_are_refused(obj: object, reason: str) -> None:
    with pytest.raises(UsageError, match="trigger rule") as info:
        rule_from_json(obj)  # type: ignore[arg-type]
    assert reason in str(info.value)


def test_rules_must_fit_the_recording_streams() -> None:
    streams = {"oe": "openephys", "kb": "karabo", "cam": None}
    RuleSet([parse_rule("oe: ttl 1 high"), parse_rule("kb: count >= 3")], streams)
    RuleSet([parse_rule("attr T > 3")], streams)  # cam may turn out to be ADZMQ
    RuleSet([parse_rule("cam: attr T > 3")], streams)
    with pytest.raises(UsageError, match="no stream 'eeg' in the recording \\(cam, kb, oe\\)"):
        RuleSet([parse_rule("eeg: ttl 1 high")], streams)
    with pytest.raises(UsageError, match="ttl rules read openephys messages; stream 'kb' is"):
        RuleSet([parse_rule("kb: ttl 1 high")], streams)
    with pytest.raises(UsageError, match="attr rules read adzmq messages; the recording has"):
        RuleSet([parse_rule("attr T > 3")], {"oe": "openephys", "kb": "karabo"})
    assert not RuleSet([], streams)
    assert len(RuleSet([parse_rule("count > 1")], streams)) == 1
