"""The compiled core masks exactly as parsers/mask.py: the same text, the same counts per rule.

Differential: arbitrary text (secrets of the corpus, look-alikes glued in any order, Chinese
text, any characters) through `parsers.mask.Masker.mask_text` and through the core's masker
(`llmtail._core.mask_text`, exposed for tests), under several settings; then whole Streams with
masking on, the core's against the Python engine's.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtail import _core
from llmtail.agent.engine.loggroup import LogEncoder
from llmtail.agent.engine.pystream import PyStream
from llmtail.agent.engine.stream import StreamSettings
from llmtail.parsers.mask import BUILTIN_RULES, HMAC_SHA256, CustomRule, Masker, MaskSettings
from llmtail.parsers.record import ParserSettings, RecordParser
from tests.parsers_strategies import ZONE, chunkings, split
from tests.test_core_stream import both, plain
from tests.test_mask import _CJK, _GLUED, CORPUS, KEY

# LLMTAIL_FUZZ_EXAMPLES runs the properties longer by hand (core/fuzz/README.md).
EXAMPLES = int(os.environ.get("LLMTAIL_FUZZ_EXAMPLES", "400"))
PROPS = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

SETTINGS: list[tuple[MaskSettings, bytes | None]] = [
    (MaskSettings(), None),
    (MaskSettings(rules={"ipv4": True}), None),
    (MaskSettings(rules={"resident_id": False, "email": False, "password_pair": False}), None),
    (MaskSettings(rules={"bank_card": False, "mobile": False, "api_key": False}), None),
    (MaskSettings(rules={"ipv4": True}, replace=dict.fromkeys(BUILTIN_RULES, HMAC_SHA256)), KEY),
    (MaskSettings(replace={"email": "[email]", "mobile": "<phone>"}), None),
    (MaskSettings(max_field_bytes=24), None),
    (MaskSettings(enabled=False), None),
]

# Any characters the core can hold (no lone surrogates: it works on valid UTF-8).
_ANY = st.text(alphabet=st.characters(codec="utf-8"), max_size=8)
_SECRETS = st.sampled_from([t for t, _, c in CORPUS if c] + ["192.168.0.1", "a@b.cn"])
texts = st.lists(st.one_of(_SECRETS, _GLUED, _CJK, _ANY), max_size=10).map("".join)


def assert_same_masking(s: MaskSettings, key: bytes | None, text: str) -> None:
    masked, counts, _ = Masker.from_config(s, key).mask_text(text)
    got, got_counts = _core.mask_text(s, key, text)
    assert (text if got is None else got) == masked
    assert got_counts == list(counts.items())
    assert (got is None) == (not counts)


@pytest.mark.parametrize(("text", "expected", "counts"), CORPUS)
def test_the_corpus_is_masked_as_the_reference_masks_it(
    text: str, expected: str, counts: dict[str, int]
) -> None:
    for s, key in SETTINGS:
        assert_same_masking(s, key, text)


@pytest.mark.parametrize("engine", ["python", "core"])
def test_a_mobile_is_masked_after_its_86_and_a_run_ending_in_x_is_no_mobile(engine: str) -> None:
    """A phone number never ends in X; a 13-character `861[3-9]...X` is no mobile, and too
    short for a resident ID (18), so no rule takes it: it stays as written."""

    def mask(text: str) -> tuple[str, dict[str, int]]:
        if engine == "python":
            masked, counts, _ = Masker.from_config(MaskSettings()).mask_text(text)
            return masked, counts
        got, got_counts = _core.mask_text(MaskSettings(), None, text)
        return (text if got is None else got), dict(got_counts)

    assert mask("8613812345678") == ("86***", {"mobile": 1})
    assert mask("861381234567X") == ("861381234567X", {})
    assert mask("电话861381234567x。") == ("电话861381234567x。", {})


@PROPS
@given(text=texts, which=st.integers(0, len(SETTINGS) - 1))
def test_any_text_is_masked_as_the_reference_masks_it(text: str, which: int) -> None:
    s, key = SETTINGS[which]
    assert_same_masking(s, key, text)


@PROPS
@given(text=_GLUED, which=st.integers(0, len(SETTINGS) - 1))
def test_glued_pieces_are_masked_as_the_reference_masks_them(text: str, which: int) -> None:
    s, key = SETTINGS[which]
    assert_same_masking(s, key, text)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(alphabet=st.characters(codec="utf-8"), max_size=200))
def test_arbitrary_text_never_crashes_the_core_and_agrees(text: str) -> None:
    assert_same_masking(*SETTINGS[1], text)


_HEAD = "2026-11-26 10:0{}:11.305 INFO  [traceId:t] [a.B#f():1] [main] - "


@st.composite
def masked_streams(draw: st.DrawFn) -> bytes:
    """Records of every kind carrying secrets: prompts over several lines, llm_call errors,
    feedback comments, plain logs and lines without a header (raw records)."""
    lines = []
    for i in range(draw(st.integers(1, 6))):
        secret = draw(texts).replace("\r", " ")
        kind = draw(st.sampled_from(("prompt: ", "result: ", "feedback:r1,up,", "", "call", "raw")))
        if kind == "call":
            body = f"a,m,q,w,r,500,1,2,3,4,E,{secret}"
        elif kind == "raw":
            lines.append(secret)
            continue
        else:
            body = kind + secret
        lines.append(_HEAD.format(i % 10) + body)
    return ("\n".join(lines) + "\n").encode()


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=masked_streams(),
    which=st.integers(0, len(SETTINGS) - 1),
    wire=st.sampled_from(("ndjson", "loggroup")),
    max_records=st.sampled_from((1, 2, 4096)),
    data=st.data(),
)
def test_streams_with_masking_seal_the_python_engine_s_batches(
    raw: bytes, which: int, wire: str, max_records: int, data: st.DataObject
) -> None:
    mask, key = SETTINGS[which]
    s = StreamSettings(
        parser=ParserSettings(timezone=ZONE),
        wire=wire,  # type: ignore[arg-type]
        max_records=max_records,
        mask=mask,
        mask_key=key,
    )
    ops = [("feed", c) for c in split(raw, data.draw(chunkings(len(raw))))]
    core, ref = both(s, ops)
    assert core == ref


def test_masked_counts_travel_with_the_batch_of_their_record() -> None:
    s = StreamSettings(parser=ParserSettings(timezone=ZONE), max_records=1, mask=MaskSettings())
    raw = (_HEAD.format(1) + "prompt: 13812345678\n" + _HEAD.format(2) + "x\n").encode()
    core, ref = both(s, [("feed", raw)])
    assert core == ref
    assert [b["masked"] for b in core if "masked" in b] == [{"mobile": 1}, {}]


def test_py_stream_helper_masks() -> None:
    """The reference the Stream tests use does mask (so equal batches mean equal masking)."""
    s = StreamSettings(parser=ParserSettings(timezone=ZONE), mask=MaskSettings())
    masker = Masker.from_config(MaskSettings())
    py = PyStream(s, RecordParser(s.parser), LogEncoder(), "k", "p", 0, "AB", 0, masker)
    (batch,) = py.feed((_HEAD.format(1) + "prompt: 13812345678\n").encode(), 0.0, 1.0) + py.drain(
        1.0
    )
    assert plain(batch)["masked"] == {"mobile": 1}


# -- user rules: Python `re` syntax translated to the core's -----------------------------------

USER_RULES = (
    CustomRule("order", r"ORD[0-9]{6}"),
    CustomRule("uid", r"\d{4,8}", prefix=r"(?i:uid)[:=]\s*", replace="<uid>"),
    CustomRule("ticket", r"[A-Z]{2}-\w+", replace=HMAC_SHA256),
    CustomRule("codename", r"\bcodename [a-z]+\b"),
    CustomRule("block", r"(?s:BEGIN.*?END)"),
    CustomRule("tagged", r"[^\s,;]{3}#[\d]+"),
    CustomRule("head", r"^HEAD\S*"),
    CustomRule("zq", r"Z{,3}q\.?"),
    CustomRule("punct", r"\[\d+\]\-\{x\}"),
)
_USER_TOKENS = st.sampled_from(
    (
        *("ORD123456", "ORD12345", "uid: 1234", "UID=99999", "Uid=1", "AB-x_1", "Ab-1"),
        *("codename falcon", "codename Falcon", "BEGIN", "END", "abc#12", "a,c#1", "HEADx"),
        *("ZZq", "q.", "[12]-{x}", " ", "\n", "\u3000", "\u0663", "号", "k", "K", "\u212a"),
    )
)
user_texts = st.lists(st.one_of(_USER_TOKENS, _SECRETS, _CJK, _ANY), max_size=12).map("".join)
USER_SETTINGS = [
    (MaskSettings(custom=USER_RULES), KEY),
    (MaskSettings(rules=dict.fromkeys(BUILTIN_RULES, False), custom=USER_RULES[3:]), KEY),
    (MaskSettings(rules={"ipv4": True}, custom=(CustomRule("uid", r"(?i:u)[0-9]+"),)), None),
]


@PROPS
@given(text=user_texts, which=st.integers(0, len(USER_SETTINGS) - 1))
def test_user_rules_mask_as_the_reference_masks(text: str, which: int) -> None:
    s, key = USER_SETTINGS[which]
    assert_same_masking(s, key, text)


@pytest.mark.filterwarnings("ignore:Possible set:FutureWarning")
@pytest.mark.parametrize(
    ("regex", "why"),
    [
        (r"id$", "uses $"),
        (r"[\D]x", "uses \\D inside a class"),
        (r"[a&&b]x", "uses a nested class or a set operation"),
        (r"(?x:a b)", "uses a verbose, unicode or locale flag"),
    ],
)
def test_user_rules_without_an_exact_equivalent_are_refused_naming_the_rule(
    regex: str, why: str
) -> None:
    s = MaskSettings(custom=(CustomRule("mine", regex),))
    Masker.from_config(s)  # the reference accepts it
    with pytest.raises(ValueError) as refused:
        _core.mask_text(s, None, "x")
    assert str(refused.value).startswith(
        f"engine: core cannot run mask rule 'mine': its regex {why}"
    )
    assert str(refused.value).endswith("; set engine: python")
