"""Masking (parsers/mask.py): what each rule finds, what it leaves alone, and its invariants.

The corpus gives exact outputs: they are the contract the Rust core must reproduce too.
"""

from __future__ import annotations

import random
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from llmtail.parsers.mask import (
    BUILTIN_RULES,
    STARS,
    CustomRule,
    MaskConfigError,
    Masker,
    MaskSettings,
)

DEFAULT = Masker.from_config(MaskSettings())
WITH_IPV4 = Masker.from_config(MaskSettings(rules={"ipv4": True}))
KEY = b"test-key-0123456789"
PROPS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# (text, masked text, replacements per rule) with the default rules.
CORPUS: list[tuple[str, str, dict[str, int]]] = [
    # mobile: found right next to Chinese text and full-width punctuation
    ("我的手机号码13812345678，请回电", "我的手机号码***，请回电", {"mobile": 1}),
    ("tel:19912345678.", "tel:***.", {"mobile": 1}),
    ("+86 13812345678", "+86 ***", {"mobile": 1}),
    ("8613812345678", "86***", {"mobile": 1}),
    ("12812345678", "12812345678", {}),  # no mobile starts 12
    # a phone number never ends in X (a resident ID does); too short for an ID: left alone
    ("861381234567X", "861381234567X", {}),
    ("电话861381234567x。", "电话861381234567x。", {}),
    ("138123456789", "138123456789", {}),  # 12 digits
    ("user13812345678", "user13812345678", {}),  # glued to a word
    ("订单号12345678901234567890不要动", "订单号12345678901234567890不要动", {}),
    ("order 13812345678901234567", "order 13812345678901234567", {}),  # 20 digits
    # resident ID: checksum and date verified, X ending
    ("身份证号11010519491231002X，已核验", "身份证号***，已核验", {"resident_id": 1}),
    ("id=11010519491231002x", "id=***", {"resident_id": 1}),
    ("证件：440308199901101512。", "证件：***。", {"resident_id": 1}),
    ("310115200002291235", "***", {"resident_id": 1}),  # 29 Feb 2000
    ("110105194912310021", "110105194912310021", {}),  # wrong check digit
    ("11010519491231002Y", "11010519491231002Y", {}),
    ("310115200102291231", "310115200102291231", {}),  # 29 Feb 2001 does not exist
    ("110105194913310028", "110105194913310028", {}),  # month 13
    # bank cards: Luhn verified, issuer ranges
    ("卡号6200000000000005请确认", "卡号***请确认", {"bank_card": 1}),
    ("visa 4111111111111111 ok", "visa *** ok", {"bank_card": 1}),
    ("6205500000000000004", "***", {"bank_card": 1}),  # 19 digits
    ("mc 5555555555554444, 2223003122003222", "mc ***, ***", {"bank_card": 2}),
    ("4111111111111112", "4111111111111112", {}),  # Luhn fails
    ("6222021234567890123", "6222021234567890123", {}),  # Luhn fails
    ("id 1789012345678901234", "id 1789012345678901234", {}),  # snowflake id, Luhn-valid
    # Alibaba Cloud AccessKey IDs
    ("accessKeyId=LTAI5tQ8mZ3xYk9Wv2Rb7Nc1", "accessKeyId=LTAI***", {"alibaba_access_key": 1}),
    (
        '{"AccessKeyId":"LTAI5tQ8mZ3xYk9Wv2Rb7Nc1","Region":"cn-hangzhou"}',
        '{"AccessKeyId":"LTAI***","Region":"cn-hangzhou"}',
        {"alibaba_access_key": 1},
    ),
    ("密钥LTAI5tQ8mZ3xYk9Wv2Rb7Nc1已泄露", "密钥LTAI***已泄露", {"alibaba_access_key": 1}),
    ("LTAIshort", "LTAIshort", {}),
    ("XLTAI5tQ8mZ3xYk9Wv2Rb7Nc1", "XLTAI5tQ8mZ3xYk9Wv2Rb7Nc1", {}),
    # model API keys
    (
        "use sk-3f9a0c2b7d1e4f6a8b9c0d1e2f3a4b5c now",
        "use sk-*** now",
        {"api_key": 1},
    ),
    (
        "GET https://dashscope.aliyuncs.com/v1?key=sk-3f9a0c2b7d1e4f6a8b9c0d1e2f3a4b5c&x=1",
        "GET https://dashscope.aliyuncs.com/v1?key=sk-***&x=1",
        {"api_key": 1},
    ),
    (
        'result: {"output": "your key is sk-ant-api03-AbCdEf0123456789xyzXYZ"}',
        'result: {"output": "your key is sk-***"}',
        {"api_key": 1},
    ),
    ("sk-learn-is-a-python-library-name", "sk-learn-is-a-python-library-name", {}),
    ("task-0123456789abcdefghijkl", "task-0123456789abcdefghijkl", {}),
    # bearer tokens
    (
        "Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.sig_123",
        "Authorization: Bearer ***",
        {"bearer_token": 1},
    ),
    ("Bearer authentication is required", "Bearer authentication is required", {}),
    # key=value secrets: the key stays, the value goes
    ("login password=hunter2 ok", "login password=*** ok", {"password_pair": 1}),
    (
        '{"password": "my secret pw", "user": "bob"}',
        '{"password": "***", "user": "bob"}',
        {"password_pair": 1},
    ),
    (
        '{\\"db_password\\":\\"s3cr3t\\",\\"x\\":1}',
        '{\\"db_password\\":\\"***\\",\\"x\\":1}',
        {"password_pair": 1},
    ),
    ("userPassword: 'p@ss w0rd'", "userPassword: '***'", {"password_pair": 1}),
    ("client_secret=abc&grant=x", "client_secret=***&grant=x", {"password_pair": 1}),
    ("ACCESS_KEY_SECRET = q1w2e3r4", "ACCESS_KEY_SECRET = ***", {"password_pair": 1}),
    (
        "GET /cb?access_token=ya29.a0Af&state=1",
        "GET /cb?access_token=***&state=1",
        {"password_pair": 1},
    ),
    ("密码：abc123，请勿泄露", "密码：***，请勿泄露", {"password_pair": 1}),
    (
        "jdbc https://admin:pa55w0rd@db.example.com:5432/x",
        "jdbc https://admin:***@db.example.com:5432/x",
        {"password_pair": 1},
    ),
    ("password reset link sent", "password reset link sent", {}),
    ("max_tokens 100, total_tokens=120", "max_tokens 100, total_tokens=120", {}),
    # email: the local part goes, the domain stays
    ("联系alice.smith+tag@example.com.cn谢谢", "联系***@example.com.cn谢谢", {"email": 1}),
    ("mailto:bob@corp.io>", "mailto:***@corp.io>", {"email": 1}),
    ("user@localhost", "user@localhost", {}),
    ("a@b.c", "a@b.c", {}),
    # private keys, across lines
    (
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEow\nAAAA\n-----END RSA PRIVATE KEY-----\nok",
        "key:\n***\nok",
        {"private_key": 1},
    ),
    ("cut -----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBg", "cut ***", {"private_key": 1}),
    (
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        "-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----",
        {},
    ),
    # IPv4 is off by default
    ("from 192.168.1.20:8080", "from 192.168.1.20:8080", {}),
    # several rules and lines in one prompt
    (
        "prompt: 我的卡号是\n6200000000000005\n手机13812345678，邮箱 li@x.cn\npassword=pw1",
        "prompt: 我的卡号是\n***\n手机***，邮箱 ***@x.cn\npassword=***",
        {"bank_card": 1, "mobile": 1, "email": 1, "password_pair": 1},
    ),
]


@pytest.mark.parametrize(("text", "expected", "counts"), CORPUS)
def test_corpus(text: str, expected: str, counts: dict[str, int]) -> None:
    masked, got, _ = DEFAULT.mask_text(text)
    assert (masked, got) == (expected, counts)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("from 192.168.1.20:8080", "from ***:8080"),
        ("主机10.0.0.1，端口22", "主机***，端口22"),
        ("version 1.2.3.4.5", "version 1.2.3.4.5"),
        ("256.1.1.1 and 1.2.3", "256.1.1.1 and 1.2.3"),
    ],
)
def test_ipv4_when_switched_on(text: str, expected: str) -> None:
    assert WITH_IPV4.mask_text(text)[0] == expected


def test_each_rule_can_be_switched_off() -> None:
    text = "13812345678 a@b.cn password=x LTAI5tQ8mZ3xYk9Wv2Rb7Nc1"
    for rule in BUILTIN_RULES:
        masker = Masker.from_config(MaskSettings(rules={rule: False}))
        assert rule not in masker.rule_names
        assert rule not in masker.mask_text(text)[1]
    off = Masker.from_config(MaskSettings(enabled=False))
    assert off.mask_text(text) == (text, {}, [])


def test_an_id_number_is_a_card_only_when_the_id_rule_is_off() -> None:
    # 18 digits passing both the GB 11643 checksum and Luhn: the earlier rule wins.
    ident = next(
        i for i in _ids(random.Random(5), 400) if i.isdigit() and _luhn(i) and i[0] in "23456"
    )
    assert DEFAULT.mask_text(ident)[1] == {"resident_id": 1}
    no_id = Masker.from_config(MaskSettings(rules={"resident_id": False}))
    assert no_id.mask_text(ident)[1] == {"bank_card": 1}


def test_mask_fields_masks_every_copy_by_event_kind() -> None:
    call = {
        "event": "llm_call",
        "request_id": "13812345678",  # not a text field: left as it is
        "status_code": 400,
        "error_message": "bad phone 13812345678",
        "message": "chat,m,qwen,ws,13812345678,400,1,2,3,5,E,bad phone 13812345678",
    }
    assert DEFAULT.mask_fields(call) == {"mobile": 3}
    assert call["request_id"] == "13812345678"
    assert call["error_message"] == "bad phone ***"
    assert call["message"] == "chat,m,qwen,ws,***,400,1,2,3,5,E,bad phone ***"

    raw = {"__raw_log__": "garbage sk-3f9a0c2b7d1e4f6a8b9c0d1e2f3a4b5c", "parse_error": "x"}
    assert DEFAULT.mask_fields(raw) == {"api_key": 1}
    assert raw["__raw_log__"] == "garbage sk-***"

    prompt = {"event": "prompt", "message": "prompt: 邮箱a@b.cn", "trace_id": "a@b.cn"}
    assert DEFAULT.mask_fields(prompt) == {"email": 1}
    assert prompt == {"event": "prompt", "message": "prompt: 邮箱***@b.cn", "trace_id": "a@b.cn"}

    feedback = {
        "event": "feedback",
        "message": "feedback,req-1,down,call me on 13812345678",
        "rating": "down",
        "comment": "call me on 13812345678",
    }
    assert DEFAULT.mask_fields(feedback) == {"mobile": 2}
    assert feedback["comment"] == "call me on ***"

    clean = {"event": "log", "message": "nothing here", "line": None}
    assert DEFAULT.mask_fields(clean) == {}
    assert clean == {"event": "log", "message": "nothing here", "line": None}


def test_user_rules_keep_their_prefix_and_replace_as_configured() -> None:
    masker = Masker.from_config(
        MaskSettings(
            custom=(
                CustomRule("order_no", r"[0-9]{6}", prefix=r"ORD-"),
                CustomRule("staff", r"E[0-9]{5}", replace="[staff]"),
                CustomRule("user", r"u[0-9]{4}", prefix="uid=", replace="hmac:sha256"),
            )
        ),
        hmac_key=KEY,
    )
    assert masker.rule_names[-3:] == ("order_no", "staff", "user")
    masked, counts, _ = masker.mask_text("ORD-123456 by E12345: uid=u0001 uid=u0001 uid=u0002")
    parts = masked.split(" ")
    assert parts[:3] == ["ORD-***", "by", "[staff]:"]
    assert parts[3] == parts[4] != parts[5]  # the same value, the same hash
    assert re.fullmatch(r"uid=<hmac:[0-9a-f]{20}>", parts[3])
    assert "u0001" not in masked and "u0002" not in masked
    assert counts == {"order_no": 1, "staff": 1, "user": 3}
    other_key = Masker.from_config(
        MaskSettings(custom=(CustomRule("user", r"u[0-9]{4}", replace="hmac:sha256"),)),
        hmac_key=b"another key",
    )
    assert other_key.mask_text("u0001")[0] != parts[3].removeprefix("uid=")
    bad = MaskSettings(replace={"email": "noreply@example.com"})
    with pytest.raises(MaskConfigError, match=r"rule 'email': its replacement .* masked again"):
        Masker.from_config(bad)
    assert masker.mask_text(masked) == (masked, {}, [])


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        (CustomRule("a", "(unclosed"), "rule 'a': regex is not a valid regex"),
        (CustomRule("b", r"(?<=x)y"), "rule 'b': regex uses a look-around"),
        (CustomRule("c", r"(a)\1"), "rule 'c': regex uses a back-reference"),
        (CustomRule("d", r"a++"), "rule 'd': regex uses a possessive repeat"),
        (CustomRule("e", r"(?P<x>a)"), "rule 'e': regex has a named group"),
        (CustomRule("f", r"(?i)abc"), "rule 'f': inline flags must be scoped"),
        (CustomRule("g", r"[0-9]*"), "rule 'g': regex matches the empty text"),
        (CustomRule("h", r"\*"), "rule 'h': regex matches a part of its replacement"),
        (CustomRule("i", r"x", replace="hmac:sha256"), "needs a key"),
        (CustomRule("j", r"x", replace="hmac:md5"), "rule 'j': unknown hash"),
        (CustomRule("email", r"x"), "rule 'email' is defined twice"),
    ],
)
def test_a_bad_user_rule_is_one_line_naming_it(rule: CustomRule, message: str) -> None:
    with pytest.raises(MaskConfigError) as err:
        Masker.from_config(MaskSettings(custom=(rule,)))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_unknown_builtin_names_are_refused() -> None:
    with pytest.raises(MaskConfigError, match="unknown built-in rule 'phone'"):
        Masker.from_config(MaskSettings(rules={"phone": False}))


def test_a_grown_field_is_cut_to_its_cap_on_a_character_boundary() -> None:
    masker = Masker.from_config(
        MaskSettings(
            custom=(CustomRule("x", "x", replace="长" * 10),),
            max_field_bytes=20,
        )
    )
    masked, counts, _ = masker.mask_text("ax")
    assert masked == "a" + "长" * 6  # 19 bytes: a seventh 3-byte character would pass 20
    assert counts == {"x": 1}


# --- properties --------------------------------------------------------------------------------


def _id_check(body: str) -> str:
    """GB 11643 check character, computed the way python-stdnum does (not as parsers/mask.py)."""
    value = (1 - 2 * int(body, 13)) % 11
    return "X" if value == 10 else str(value)


def _ids(rng: random.Random, n: int) -> list[str]:
    out = []
    for _ in range(n):
        year, month = rng.randrange(1900, 2100), rng.randrange(1, 13)
        day = rng.randrange(1, 29)
        body = f"{rng.randrange(1, 10)}{rng.randrange(10**5):05d}{year}{month:02d}{day:02d}"
        body += f"{rng.randrange(1000):03d}"
        out.append(body + _id_check(body))
    return out


def _luhn(number: str) -> bool:
    digits = [int(c) for c in number][::-1]
    odd = sum(digits[0::2])
    even = sum(sum(divmod(2 * d, 10)) for d in digits[1::2])
    return (odd + even) % 10 == 0


_CJK = st.sampled_from("你好世界号码卡是的，。：（）")
_SAFE_WORD = st.text(alphabet="bcdfghjkmnoqruvwxyzBCDFGHJ", min_size=1, max_size=8)
_SHORT_NUMBER = st.integers(0, 10**10 - 1).map(str)
_GAP = st.sampled_from([" ", ", ", "\n", "\t", "=", ": ", "，", "-"])


@PROPS
@given(st.lists(st.tuples(st.one_of(_SAFE_WORD, _SHORT_NUMBER, _CJK), _GAP), max_size=40))
def test_text_with_nothing_to_mask_is_left_exactly_as_it_is(pieces: list[tuple[str, str]]) -> None:
    text = "".join(piece + gap for piece, gap in pieces)  # a gap keeps numbers apart
    masked, counts, hits = WITH_IPV4.mask_text(text)
    assert masked is text
    assert counts == {} and hits == []


_SECRETS = st.sampled_from([t for t, _, c in CORPUS if c] + ["192.168.0.1", "a@b.cn"])


@st.composite
def mixed_text(draw: st.DrawFn) -> str:
    """Secrets from the corpus among safe words, Chinese text and arbitrary characters."""
    parts = draw(
        st.lists(st.one_of(_SECRETS, _SAFE_WORD, _CJK, _GAP, st.text(max_size=6)), max_size=12)
    )
    return "".join(parts)


HASHED = Masker.from_config(
    MaskSettings(rules={"ipv4": True}, replace=dict.fromkeys(BUILTIN_RULES, "hmac:sha256")),
    hmac_key=KEY,
)


@PROPS
@given(mixed_text())
def test_masking_is_idempotent(text: str) -> None:
    for masker in (DEFAULT, WITH_IPV4, HASHED):
        once, _, _ = masker.mask_text(text)
        assert masker.mask_text(once) == (once, {}, [])


# Pieces of secrets, separators and look-alikes glued in any order: where one rule's kept text
# or replacement could meet another rule's pattern.
_TOKENS = st.sampled_from(
    [
        *("a", "x", "X", "K", "é", "号", "，", "：", "\u3000", "\n", "\t", " ", "+", "%"),
        *("@", ".", "-", "_", ":", "=", "'", '"', "\\", "<", ">", "://", "***", "86", "0", "1"),
        *("b.cn", "password", "Password", "secret", "api_key", "token", "密码", "sk-", "LTAI"),
        *("Bearer ", "bEaReR ", "13812345678", "6200000000000005", "11010519491231002X"),
        *("4111111111111111", "192.168.0.1", "10.0.0.1", "3f9a0c2b7d1e4f6a8b9c0d1e2f3a4b5c"),
        *("5tQ8mZ3xYk9Wv2Rb7Nc1", "<hmac:0123456789abcdef0123>"),
        *("-----BEGIN RSA PRIVATE KEY-----", "-----END RSA PRIVATE KEY-----"),
    ]
)
_GLUED = st.lists(_TOKENS, max_size=14).map("".join)


@PROPS
@given(_GLUED)
def test_masking_glued_pieces_is_idempotent(text: str) -> None:
    for masker in (DEFAULT, WITH_IPV4, HASHED):
        once, _, _ = masker.mask_text(text)
        assert masker.mask_text(once) == (once, {}, [])


@PROPS
@given(st.one_of(mixed_text(), _GLUED).filter(lambda t: "*" not in t))
def test_counts_equal_the_replacements_made(text: str) -> None:
    masked, counts, hits = WITH_IPV4.mask_text(text)
    assert masked.count(STARS) == sum(counts.values()) == len(hits)
    assert all(masked[h.start : h.end] == STARS for h in hits)
    assert {h.rule for h in hits} == set(counts)


@PROPS
@given(mixed_text(), st.integers(8, 200))
def test_a_masked_field_never_grows_beyond_its_cap(text: str, cap: int) -> None:
    masker = Masker.from_config(
        MaskSettings(
            rules={"ipv4": True},
            replace={"mobile": "hmac:sha256", "email": "<an email address was here>"},
            max_field_bytes=cap,
        ),
        hmac_key=KEY,
    )
    masked, _, _ = masker.mask_text(text)
    if len(text.encode("utf-8", "surrogatepass")) <= cap:
        assert len(masked.encode("utf-8", "surrogatepass")) <= cap


@PROPS
@given(st.randoms(use_true_random=False), _CJK, _CJK)
def test_valid_id_numbers_are_masked_and_a_wrong_check_character_is_not(
    rng: random.Random, before: str, after: str
) -> None:
    ident = _ids(rng, 1)[0]
    masked, counts, _ = DEFAULT.mask_text(f"{before}{ident}{after}")
    assert (masked, counts) == (f"{before}***{after}", {"resident_id": 1})
    wrong = ident[:17] + rng.choice([c for c in "0123456789X" if c != ident[17]])
    counts = DEFAULT.mask_text(f"{before}{wrong}{after}")[1]
    # A wrong ID number can still be a Luhn-valid card number.
    card = wrong.isdigit() and _luhn(wrong) and wrong[0] in "234569"
    assert counts == ({"bank_card": 1} if card else {})


@PROPS
@given(st.sampled_from("234569"), st.integers(15, 18), st.randoms(use_true_random=False))
def test_cards_are_masked_exactly_when_luhn_holds(
    first: str, length: int, rng: random.Random
) -> None:
    number = first + "".join(rng.choice("0123456789") for _ in range(length))
    counts = DEFAULT.mask_text(f"卡号{number}。")[1]
    if _luhn(number):
        assert counts == {"bank_card": 1}
    else:
        assert "bank_card" not in counts


@PROPS
@given(st.integers(20, 40), st.randoms(use_true_random=False), _CJK)
def test_long_digit_runs_are_never_partly_masked(
    length: int, rng: random.Random, around: str
) -> None:
    # Plant valid card, ID and mobile numbers inside a long run: none may be masked.
    inner = rng.choice(["6200000000000005", "11010519491231002", "13812345678"])
    at = rng.randrange(1, length - len(inner)) if length - len(inner) > 1 else 1
    pad = "".join(rng.choice("0123456789") for _ in range(length))
    run = pad[:at] + inner + pad[at:]
    text = f"{around}{run}{around}"
    assert DEFAULT.mask_text(text) == (text, {}, [])
