r"""Masking secrets and personal data in record text before it is encoded. Pure: no I/O.

Users paste keys, phone numbers, ID and card numbers into chat boxes; the application logs every
prompt and result; the Logstore is read by many. The engine calls `Masker.mask_fields` on each
record's fields (`TEXT_FIELDS` names which, by event kind) before encoding, so the original
never reaches an output. The Python Stream and the Rust core must give byte-identical results:
what follows is the exact contract.

Rules
-----
Built-in rules (`BUILTIN_RULES`; all on except `ipv4`) come first, as the alternatives listed
below in `_ORDER`, then the user's rules in config order. Each alternative is a regex
(`_PATTERNS`: their exact text is part of this contract) in which a *value* part (the groups
`(?P<v>..)`; none: the whole match) is replaced; what the alternative matches around the value
is kept. `\b` is the ASCII word boundary (word characters `[0-9A-Za-z_]`: Chinese text and full-
width punctuation are not, so a number written between Chinese characters has boundaries around
it); `(?i:..)` folds ASCII letters only. Python compiles with `re.ASCII`; Rust writes `(?-u:\b)`
and `(?i-u:..)` for the same (with that translation the combined regex of every built-in and a
user rule gave the same spans and groups in Rust's `regex` 1.13 as in `re`, over 85,000 searches
of mixed text).

- private_key: a PEM `-----BEGIN ... PRIVATE KEY-----` up to and including the first
  `-----END ... PRIVATE KEY-----` after it, or else to the end of the text; the whole block is
  the value.
- alibaba_access_key: `LTAI` + 12 to 30 letters or digits as a whole word; `LTAI` is kept.
- api_key: `sk-` at a word start + 20 to 200 of `[0-9A-Za-z_-]` (the first not `_-`); `sk-`
  kept. Validator: the value holds an ASCII digit and an ASCII letter (kebab-case words are
  not keys), and no `[0-9A-Za-z_-]` follows it (longer runs are not keys; the bound keeps a
  run of many `sk-` linear to scan).
- bearer_token: `Bearer` (any case) + blanks + at least 8 token characters; the value must hold a
  digit (prose such as "Bearer authentication" is not a token).
- password_pair: a key word (password, passwd, pwd, passphrase, secret, secret_key, api_key,
  token and access/refresh/auth/id/session/security token, and the Chinese words for password
  and pass phrase) with no boundary before it (`db_password`, `userPassword`), an optional
  (escaped) quote, `:` `=` or a full-width colon, then the value: up to the closing quote (or a
  backslash) when quoted, else printable ASCII up to a blank, quote, backslash or `<>,;&)]}`
  (so Chinese text right after a value is kept), not starting with `*` (a masked value).
- password_pair, in URLs (alternative `url_userinfo`, after password_pair): `:` + a value of 1
  to 256 characters without blanks or `/@*<>` + `@` (bounded: a run of colons stays linear); the
  value counts as a password_pair when, right before the colon, 1 to 256 user-info characters
  `[0-9A-Za-z._~%!$&'()*+,;=-]` follow `://` (checked on the text as it was: the user name
  itself may be masked by another match, which starts earlier).
- email: the local part is the value (the domain is kept): `\b` + `[0-9A-Za-z_]` + up to 63 of
  `[0-9A-Za-z._%+-]`, `@`, dot-separated DNS labels, a final label of 2-24 letters, `\b`.
  Validator: not followed by `@` (the kept domain would be the local part of a second match).
- mobile, resident_id, bank_card: one alternative, a whole run of 11-19 ASCII digits with an
  optional final `X`/`x`, between word boundaries (so never a part of a longer run, such as a
  20-digit order number), classified below.
- ipv4 (off by default): four dotted octets 0-255 between word boundaries. Validator: not
  preceded by `.`; not followed by `.` unless a blank or the end follows that dot (a version
  such as 1.2.3.4.5 is not an address; the test does not look past the dot, where a value may
  have been masked).
- a user rule `(regex, prefix)` is `(?:prefix)(?P<v>regex)`: text matching `prefix` is kept.
  User regexes are compiled with the same ASCII meaning and may not use what the Rust `regex`
  crate lacks (look-arounds, back-references, atomic groups, possessive repeats, conditionals),
  named groups or unscoped inline flags; `compile_custom` refuses them with a reason.

A digit run `d` (its length `n` counting a final `X`) is tried against the enabled digit rules,
first accepted wins: resident_id (`n` = 18, the first digit 1-9, `d[6:14]` a real date `YYYYMMDD`
with 1900 <= YYYY <= 2099, and the GB 11643 check character: weights
7,9,10,5,8,4,2,1,6,3,7,9,10,5,8,4,2 over the first 17 digits, sum mod 11 indexing "10X98765432",
compared with `d[17]` upper-cased); bank_card (no `X`, 16 <= `n` <= 19, the first digit one of
2 3 4 5 6 9, the Luhn check; snowflake ids and epoch timestamps start with 1 and are left alone);
mobile (no `X`; `n` = 11 and `1[3-9]`, or `n` = 13 and `861[3-9]`: then `86` is kept). A run
that none accepts is rejected.

The scan
--------
All enabled alternatives form one regex, in rule order, each `(?:...)` followed by an empty
group naming it (which closes last: `lastindex`); values are named groups inside. Starting at 0,
the text is searched from position `p` with leftmost-first semantics (the earliest start wins;
at the same start the earlier alternative; within an alternative the usual greedy/lazy order:
Python `re` and Rust `regex` agree on these patterns, which use no look-arounds, back-references
or possessive repeats). The search sees the text before `p` (for `\b`). For a match `m` with
value span `[vs, ve)` (the first value group that took part; none: the whole match):
- rejected (its validator says no, or the value is empty): the alternatives after the rejected
  one are tried at `m.start` (the first, in order, that matches there, as if the regex held
  only them, anchored); that match is judged the same way. When none is accepted at
  `m.start`, the search goes on from one character after it, so a match may still begin
  inside the rejected one;
- already masked (the value equals the rule's fixed replacement, or for a hash replacement
  looks like one, `<hmac:` + 20 lowercase hex + `>`): left as it is, not counted; the search
  goes on from `ve`;
- otherwise text `[vs, ve)` becomes the replacement, the rule's count goes up by one, and the
  search goes on from `ve`. What the match holds outside the value is kept unchanged; text it
  kept after the value (an email's domain, which may run into a `password:` word) is searched
  again.

Replacements: `***` (the default), a fixed text, or `hmac:sha256`: `<hmac:` + the first 20
lowercase hex digits of HMAC-SHA256(key, value as UTF-8) + `>`, so equal values can be
correlated without being revealed. (The brackets end it with a character no email local part or
key value holds, and 20 hex digits can never be a digit run the digit rules take: a hash is
never masked again.) A fixed replacement that masking would change on its own is refused. A
replacement may be longer than the value; a field that changed is then cut to its longest prefix
of whole characters within `max_field_bytes` UTF-8 bytes. A text with no accepted match is
returned unchanged (the same object).

Masking is idempotent for the built-in rules, with `***` or hash replacements (a property test
glues pieces of secrets and look-alikes in any order to look for exceptions): their
replacements never match again, or match as "already masked". A user rule whose regex matches
a part (not all) of its own replacement is refused; user replacements that only context makes
match again (a fixed text next to a key word, say) are the user's to avoid.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Callable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any, Final

STARS: Final = "***"
HMAC_SHA256: Final = "hmac:sha256"
_HMAC_HEX = 20
_HMAC_SHAPE = re.compile(r"<hmac:[0-9a-f]{20}>", re.ASCII)
_HMAC_SAMPLES = ("<hmac:0123456789abcdef0123>", "<hmac:01234567890123456789>")

#: Built-in rules in match order, and whether each is on by default.
BUILTIN_RULES: Final[dict[str, bool]] = {
    "private_key": True,
    "alibaba_access_key": True,
    "api_key": True,
    "bearer_token": True,
    "password_pair": True,
    "email": True,
    "mobile": True,
    "resident_id": True,
    "bank_card": True,
    "ipv4": False,
}
_DIGIT_RULES: Final = ("resident_id", "bank_card", "mobile")
_ORDER: Final = (
    "private_key",
    "alibaba_access_key",
    "api_key",
    "bearer_token",
    "password_pair",
    "url_userinfo",  # the password_pair rule, in a URL
    "email",
    "digits",  # mobile, resident_id and bank_card share one alternative
    "ipv4",
)

#: Fields masked per event kind (`None`: raw records); other kinds get `_ALL_TEXT`.
TEXT_FIELDS: Final[dict[str | None, tuple[str, ...]]] = {
    "llm_call": ("message", "error_message", "parse_error"),
    "prompt": ("message", "parse_error"),
    "result": ("message", "parse_error"),
    "feedback": ("message", "comment", "parse_error"),  # `comment`: what the user typed
    "log": ("message", "parse_error"),
    None: ("__raw_log__", "parse_error"),
}
_ALL_TEXT: Final = ("message", "__raw_log__", "error_message", "parse_error")
_FIELDS_OF: Final[dict[object, tuple[str, ...]]] = {k: v for k, v in TEXT_FIELDS.items() if k}
_RAW_TEXT: Final = TEXT_FIELDS[None]

_LABEL = r"[0-9A-Za-z](?:[0-9A-Za-z-]{0,61}[0-9A-Za-z])?"
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])"
_PEM = r"-----BEGIN[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_PEM_END = r"-----END[A-Z ]{0,40}PRIVATE KEY(?: BLOCK)?-----"
_FULL_WIDTH_COLON = "\uff1a"  # the character itself goes into the pattern
_SECRET_KEYS = (
    r"(?i:passw(?:or)?d|passphrase|pwd|secret(?:[_-]?key)?|api[_-]?key"
    r"|(?:(?:access|refresh|auth|id|session|security)[_-]?)?token)|密码|口令"
)

# Built-in alternatives; `(?P<v>...)` marks values (renamed per alternative when combined).
_PATTERNS: Final[dict[str, str]] = {
    "private_key": rf"(?P<v>{_PEM}(?s:.*?{_PEM_END}|.*))",
    "alibaba_access_key": r"\bLTAI(?P<v>[0-9A-Za-z]{12,30})\b",
    "api_key": r"\bsk-(?P<v>[0-9A-Za-z][0-9A-Za-z_-]{19,199})",
    "bearer_token": r"\b(?i:bearer)[ \t]+(?P<v>[0-9A-Za-z._~+/=-]{8,})",
    "password_pair": (
        rf"(?:{_SECRET_KEYS})(?:\\?[\"'])?[ \t]*[:={_FULL_WIDTH_COLON}][ \t]*"
        r"(?:\\?\"(?P<v>[^\"\\\r\n]+)|\\?'(?P<v>[^'\\\r\n]+)|(?P<v>[!#-%(+\--:=?-\[^-|~][!#-%(*+\--:=?-\[^-|~]*))"
    ),
    "url_userinfo": r":(?P<v>[^\t\n\x0b\x0c\r /@*<>]{1,256})@",
    "email": (
        r"\b(?P<v>[0-9A-Za-z_][0-9A-Za-z._%+-]{0,63})"
        rf"@{_LABEL}(?:\.{_LABEL})*\.[A-Za-z]{{2,24}}\b"
    ),
    "digits": r"\b[0-9]{11,19}[Xx]?\b",
    "ipv4": rf"\b{_OCTET}(?:\.{_OCTET}){{3}}\b",
}
_VALUE_GROUP = re.compile(r"\(\?P<v>")
_ELEVEN_DIGITS = re.compile(r"[0-9][0-9]{10}").search  # a leading class: `re` skips to digits
_IPV4_START = re.compile(r"[0-9]\.[0-9]").search


_ID_WEIGHTS: Final = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK: Final = "10X98765432"
_DAYS: Final = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


class MaskConfigError(ValueError):
    """A rule the masker cannot use; the message names the rule and is meant for the user."""


@dataclass(frozen=True, slots=True)
class CustomRule:
    """A user's rule: `regex` is masked, text matching `prefix` right before it is kept."""

    name: str
    regex: str
    prefix: str = ""
    replace: str = STARS  # STARS, a fixed text, or HMAC_SHA256


@dataclass(frozen=True, slots=True)
class MaskSettings:
    """Plain data the engine builds a Masker from (the config's `mask` section)."""

    enabled: bool = True
    rules: Mapping[str, bool] = field(default_factory=dict)  # built-in name -> on/off
    replace: Mapping[str, str] = field(default_factory=dict)  # built-in name -> replacement
    custom: tuple[CustomRule, ...] = ()
    max_field_bytes: int = 512 * 1024


Replacer = Callable[[str], str]


@dataclass(frozen=True, slots=True)
class _Rule:
    name: str
    replace: Replacer
    masked: Callable[[str], bool]  # True: the value already is this rule's replacement


# (text, value start, value end, match end) -> (rule, span to replace) or None: rejected
_Decide = Callable[[str, int, int, int], tuple[_Rule, int, int] | None]


@dataclass(frozen=True, slots=True)
class _Alternative:
    """One group of the combined regex; `decide` picks its rule (and value span) or rejects."""

    values: tuple[int, ...]  # group numbers of its value groups
    decide: _Decide
    later: int  # bits of the alternatives after this one (tried at its start when it is rejected)


@dataclass(frozen=True, slots=True)
class _Source:
    """An alternative before compilation; `key`: its name in `_ORDER` ("" for user rules)."""

    key: str
    regex: str
    decide: _Decide


@dataclass(frozen=True, slots=True)
class _Compiled:
    search: Callable[[str, int], re.Match[str] | None]
    match: Callable[[str, int], re.Match[str] | None]
    alts: dict[int, _Alternative]  # by the group number of the alternative's marker


@dataclass(frozen=True, slots=True)
class Hit:
    """One replacement: its rule and where the replacement sits in the masked text."""

    rule: str
    start: int
    end: int


class Masker:
    """One combined regex over every enabled rule, applied to the text fields of records.

    Speed (Python only; no effect on results): before the regex runs, cheap substring tests
    (`_for`) tell which built-in alternatives could match anywhere in the text; those that
    cannot are left out of the regex for that text (a regex per combination, compiled once).
    Leaving out an alternative that matches nowhere changes no leftmost-first result. Most
    text passes no gate and costs only the tests.
    """

    def __init__(self, alternatives: list[_Source], rule_names: tuple[str, ...], cap: int) -> None:
        """Use `from_config`; `alternatives` in match order (built-ins first, by `_ORDER`)."""
        self.rule_names = rule_names
        self._cap = cap
        self._sources = alternatives
        bit = {a.key: 1 << i for i, a in enumerate(alternatives)}
        self._gate_bits = [bit.get(key, 0) for key in _ORDER]
        self._always = sum(1 << i for i, a in enumerate(alternatives) if not a.key)
        self._compiled: dict[int, _Compiled] = {}
        self.active = bool(alternatives)

    def _regex(self, bits: int) -> _Compiled:
        """The combined regex of the alternatives in `bits`, in match order."""
        compiled = self._compiled.get(bits)
        if compiled is not None:
            return compiled
        sources = []
        chosen = [(i, a) for i, a in enumerate(self._sources) if bits >> i & 1]
        for i, alt in chosen:
            renamed = _number_values(alt.regex, f"_a{i}v")
            # The group naming the alternative is empty and last: it closes last, so it is
            # `lastindex`, and the alternative still starts with its own first character,
            # which `re` tests before entering a branch.
            sources.append(f"(?:{renamed})(?P<_a{i}>)")
        regex = re.compile("|".join(sources), re.ASCII)
        index = regex.groupindex
        alts = {}
        for i, alt in chosen:
            values = sorted(n for name, n in index.items() if name.startswith(f"_a{i}v"))
            later = bits & ~((2 << i) - 1)
            alts[index[f"_a{i}"]] = _Alternative(tuple(values), alt.decide, later)
        compiled = _Compiled(regex.search, regex.match, alts)
        self._compiled[bits] = compiled
        return compiled

    def _for(self, text: str) -> _Compiled | None:
        """The regex of the alternatives that may match in `text`: each test below is a
        necessary condition for one built-in alternative to match anywhere in it."""
        pem, ak, sk, bearer, pair, url, email, digits, ipv4 = self._gate_bits
        bits = self._always
        if pem and "-----BEGIN" in text:
            bits |= pem
        if ak and "LTAI" in text:
            bits |= ak
        if sk and "sk-" in text:
            bits |= sk
        if bearer or pair:
            low = text.lower()
            if bearer and "bearer" in low:
                bits |= bearer
            if pair and (
                "pass" in low
                or "pwd" in low
                or "secret" in low
                or "api" in low
                or "token" in low
                or "密码" in text
                or "口令" in text
            ):
                bits |= pair
        if url and "://" in text:
            bits |= url
        if email and "@" in text:
            bits |= email
        if digits and _ELEVEN_DIGITS(text) is not None:
            bits |= digits
        if ipv4 and _IPV4_START(text) is not None:
            bits |= ipv4
        return self._regex(bits) if bits else None

    @classmethod
    def from_config(cls, settings: MaskSettings, hmac_key: bytes | None = None) -> Masker:
        """The masker for `settings`; MaskConfigError names a rule it cannot build."""
        if not settings.enabled:
            return cls([], (), settings.max_field_bytes)
        unknown = sorted((set(settings.rules) | set(settings.replace)) - set(BUILTIN_RULES))
        if unknown:
            raise MaskConfigError(
                f"unknown built-in rule {unknown[0]!r} (one of: {', '.join(BUILTIN_RULES)})"
            )
        rules = {
            name: _rule(name, settings.replace.get(name, STARS), hmac_key)
            for name, default in BUILTIN_RULES.items()
            if settings.rules.get(name, default)
        }
        alts = _builtin_alternatives(rules)
        names = [n for n in BUILTIN_RULES if n in rules]
        for custom in settings.custom:
            if custom.name in names:
                raise MaskConfigError(f"rule {custom.name!r} is defined twice")
            rule = _rule(custom.name, custom.replace, hmac_key)
            alts.append(_Source("", compile_custom(custom), _checker(custom.name, rule)))
            names.append(custom.name)
        masker = cls(alts, tuple(names), settings.max_field_bytes)
        replacements = {**settings.replace, **{c.name: c.replace for c in settings.custom}}
        for name, replace in replacements.items():
            for sample in _HMAC_SAMPLES if replace == HMAC_SHA256 else (replace,):
                again = masker.mask_text(sample)[1]
                if again:
                    raise MaskConfigError(
                        f"rule {name!r}: its replacement {replace!r} would be masked again "
                        f"(by {', '.join(again)}); choose a text no rule matches"
                    )
        return masker

    def _hits(
        self, compiled: _Compiled, text: str, m: re.Match[str] | None
    ) -> Iterator[tuple[_Rule, int, int]]:
        """Accepted matches from `m` on, in order: (rule, value start, value end)."""
        search = compiled.search
        alts = compiled.alts
        while m is not None:
            alt = alts[m.lastindex or 0]
            start, end = m.span()
            vs, ve = start, end
            for group in alt.values:
                s = m.start(group)
                if s >= 0:
                    vs, ve = s, m.end(group)
                    break
            decided = alt.decide(text, vs, ve, end)
            if decided is None or decided[1] == decided[2]:
                # Rejected: the later alternatives may still match at this start.
                if alt.later:
                    rest = self._regex(alt.later)
                    m = rest.match(text, start)
                    if m is not None:
                        alts = rest.alts
                        continue
                alts = compiled.alts
                m = search(text, start + 1)
                continue
            alts = compiled.alts
            yield decided
            # On from the value's end: text the match kept after it (an email's domain) is
            # searched again, as it may start a match of its own.
            m = search(text, decided[2])

    def mask_text(self, text: str) -> tuple[str, dict[str, int], list[Hit]]:
        """The masked text, the replacements per rule, and where they landed."""
        compiled = self._for(text)
        if compiled is None:
            return text, {}, []
        m = compiled.search(text, 0)
        if m is None:
            return text, {}, []
        parts: list[str] = []
        counts: dict[str, int] = {}
        spans: list[Hit] = []
        last = 0
        size = 0
        for rule, vs, ve in self._hits(compiled, text, m):
            value = text[vs:ve]
            if rule.masked(value):
                continue
            replacement = rule.replace(value)
            parts.append(text[last:vs])
            size += vs - last
            spans.append(Hit(rule.name, size, size + len(replacement)))
            parts.append(replacement)
            size += len(replacement)
            last = ve
            counts[rule.name] = counts.get(rule.name, 0) + 1
        if not counts:
            return text, {}, []
        parts.append(text[last:])
        return _cap("".join(parts), self._cap), counts, spans

    def mask_fields(self, fields: MutableMapping[str, Any]) -> dict[str, int]:
        """Mask the text fields of one record in place; replacements per rule (empty: none)."""
        if not self.active:
            return {}
        total: dict[str, int] = {}
        event = fields.get("event")
        get = fields.get
        for name in _FIELDS_OF.get(event, _ALL_TEXT) if type(event) is str else _RAW_TEXT:
            value = get(name)
            if type(value) is not str or not value or self._for(value) is None:
                continue  # the common case: no alternative can match anywhere in the value
            masked, counts, _ = self.mask_text(value)
            if counts:
                fields[name] = masked
                for rule, n in counts.items():
                    total[rule] = total.get(rule, 0) + n
        return total


def _builtin_alternatives(rules: dict[str, _Rule]) -> list[_Source]:
    """The alternatives of the enabled built-in rules, in `_ORDER`."""
    alts: list[_Source] = []
    for name in _ORDER:
        if name == "digits":
            digit_rules = [rules[n] for n in _DIGIT_RULES if n in rules]
            if digit_rules:
                alts.append(_Source(name, _PATTERNS[name], _digit_decider(digit_rules)))
        elif name == "url_userinfo":
            if "password_pair" in rules:
                decide = _url_decider(rules["password_pair"])
                alts.append(_Source(name, _PATTERNS[name], decide))
        elif name in rules:
            alts.append(_Source(name, _PATTERNS[name], _checker(name, rules[name])))
    return alts


def text_fields(event: object) -> tuple[str, ...]:
    """The fields masked in a record of this `event` kind (None: a raw record)."""
    return TEXT_FIELDS.get(event if isinstance(event, str) else None, _ALL_TEXT)


def compile_custom(rule: CustomRule) -> str:
    """The alternative of a user rule, checked; MaskConfigError names the rule and the problem."""
    where = f"rule {rule.name!r}"
    for part, source in (("regex", rule.regex), ("prefix", rule.prefix)):
        problem = _unportable(source)
        if problem:
            raise MaskConfigError(f"{where}: {part} uses {problem}, which the Rust core lacks")
        try:
            re.compile(source, re.ASCII)
        except re.error as exc:
            raise MaskConfigError(f"{where}: {part} is not a valid regex: {exc}") from None
        if "(?P<" in source:
            raise MaskConfigError(f"{where}: {part} has a named group; use (?:...) instead")
    if not rule.regex:
        raise MaskConfigError(f"{where}: regex is empty")
    source = f"(?:{rule.prefix})(?P<v>{rule.regex})" if rule.prefix else f"(?P<v>{rule.regex})"
    try:
        re.compile(source, re.ASCII)
    except re.error as exc:
        if "global flags" in str(exc):
            raise MaskConfigError(
                f"{where}: inline flags must be scoped, e.g. (?i:...) instead of (?i)"
            ) from None
        raise MaskConfigError(f"{where}: not a valid regex: {exc}") from None
    if re.fullmatch(rule.regex, "", re.ASCII) is not None:
        raise MaskConfigError(f"{where}: regex matches the empty text; it must match a value")
    # A replacement the rule fully matches is left alone when masked again; one it matches a
    # part of would be masked again and again.
    samples = _HMAC_SAMPLES if rule.replace == HMAC_SHA256 else (rule.replace,)
    for sample in samples:
        if re.search(rule.regex, sample, re.ASCII) and not re.fullmatch(
            rule.regex, sample, re.ASCII
        ):
            raise MaskConfigError(
                f"{where}: regex matches a part of its replacement {rule.replace!r}; "
                "masking the text again would change it again"
            )
    return source


_UNPORTABLE = (
    (re.compile(r"(?<!\\)\(\?(?:<?[=!])"), "a look-around"),
    (re.compile(r"(?<!\\)\(\?P="), "a back-reference"),
    (re.compile(r"(?<!\\)\\[1-9]"), "a back-reference"),
    (re.compile(r"(?<!\\)\(\?\("), "a conditional group"),
    (re.compile(r"(?<!\\)\(\?>"), "an atomic group"),
    (re.compile(r"(?<![\\])[*+?}]\+"), "a possessive repeat"),
)


def _unportable(source: str) -> str | None:
    for pattern, what in _UNPORTABLE:
        if pattern.search(source):
            return what
    return None


def _rule(name: str, replace: str, key: bytes | None) -> _Rule:
    if replace == HMAC_SHA256:
        if not key:
            raise MaskConfigError(
                f"rule {name!r}: replace {HMAC_SHA256} needs a key (mask.hmac_key_file)"
            )
        secret = key

        def digest(value: str) -> str:
            mac = hmac.new(secret, value.encode("utf-8", "surrogatepass"), hashlib.sha256)
            return f"<hmac:{mac.hexdigest()[:_HMAC_HEX]}>"

        return _Rule(name, digest, lambda v: _HMAC_SHAPE.fullmatch(v) is not None)
    if replace.startswith("hmac:"):
        raise MaskConfigError(f"rule {name!r}: unknown hash {replace!r} (use {HMAC_SHA256})")
    return _Rule(name, lambda _: replace, replace.__eq__)


def _checker(name: str, rule: _Rule) -> _Decide:
    """The decider of a non-digit alternative: its validator, if it has one."""
    if name == "api_key":
        return lambda t, s, e, _: (rule, s, e) if _key_shaped(t, s, e) else None
    if name == "bearer_token":
        return lambda t, s, e, _: (rule, s, e) if _has_digit(t, s, e) else None
    if name == "email":
        return lambda t, s, e, end: None if t.startswith("@", end) else (rule, s, e)
    if name == "ipv4":
        return lambda t, s, e, _: (rule, s, e) if _lone_address(t, s, e) else None
    return lambda _t, s, e, _end: (rule, s, e)


def _url_decider(rule: _Rule) -> _Decide:
    """`:password@` counts when user info and `://` come right before the colon."""

    def decide(text: str, s: int, e: int, _end: int) -> tuple[_Rule, int, int] | None:
        at = s - 1  # the colon
        user = at
        while user > 0 and at - user < _USERINFO_MAX and text[user - 1] in _USERINFO:
            user -= 1
        if user == at or not text.startswith("://", user - 3) or user < 3:
            return None
        return rule, s, e

    return decide


_USERINFO: Final = frozenset(
    "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz._~%!$&'()*+,;=-"
)
_USERINFO_MAX: Final = 256


def _digit_decider(rules: list[_Rule]) -> _Decide:
    def decide(text: str, s: int, e: int, _end: int) -> tuple[_Rule, int, int] | None:
        run = text[s:e]
        for rule in rules:
            name = rule.name
            if name == "resident_id" and resident_id_valid(run):
                return rule, s, e
            if name == "bank_card" and bank_card_valid(run):
                return rule, s, e
            if name == "mobile" and run[-1] not in "Xx":  # a phone number never ends in X
                n = len(run)
                if n == 11 and run[0] == "1" and run[1] in "3456789":
                    return rule, s, e
                if n == 13 and run.startswith("861") and run[3] in "3456789":
                    return rule, s + 2, e
        return None

    return decide


def resident_id_valid(text: str) -> bool:
    """A mainland resident ID number (GB 11643): date of birth and check character."""
    if len(text) != 18 or not text[:17].isascii() or not text[:17].isdigit() or text[0] == "0":
        return False
    year, month, day = int(text[6:10]), int(text[10:12]), int(text[12:14])
    if not (1900 <= year <= 2099 and 1 <= month <= 12 and day >= 1):
        return False
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if day > _DAYS[month - 1] + (1 if month == 2 and leap else 0):
        return False
    total = sum(int(c) * w for c, w in zip(text, _ID_WEIGHTS, strict=False))
    return _ID_CHECK[total % 11] == text[17].upper()


def bank_card_valid(text: str) -> bool:
    """16-19 digits from a card issuer range (2-6, 9) passing the Luhn check."""
    if not 16 <= len(text) <= 19 or not text.isascii() or not text.isdigit():
        return False
    if text[0] not in "234569":
        return False
    total = 0
    for i, ch in enumerate(reversed(text)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _has_digit(text: str, s: int, e: int) -> bool:
    return any("0" <= c <= "9" for c in text[s:e])


def _key_shaped(text: str, s: int, e: int) -> bool:
    """A whole token holding a digit and a letter."""
    if e < len(text) and text[e] in _KEY_CHARS:
        return False
    value = text[s:e]
    return any("0" <= c <= "9" for c in value) and any(c.isascii() and c.isalpha() for c in value)


_KEY_CHARS: Final = frozenset("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz_-")


def _lone_address(text: str, s: int, e: int) -> bool:
    """Not a part of a longer dotted run such as a version `1.2.3.4.5`."""
    if s > 0 and text[s - 1] == ".":
        return False
    # A dot right after may end a sentence only: what follows the dot may have been masked.
    return not (e + 1 < len(text) and text[e] == "." and text[e + 1] not in " \t\r\n")


def _number_values(source: str, prefix: str) -> str:
    """`(?P<v>` -> `(?P<{prefix}0>`, `(?P<{prefix}1>`, ...: group names must be unique."""
    parts = _VALUE_GROUP.split(source)
    return parts[0] + "".join(f"(?P<{prefix}{n}>{part}" for n, part in enumerate(parts[1:]))


def _cap(text: str, limit: int) -> str:
    """`text` cut to its longest prefix of whole characters within `limit` UTF-8 bytes."""
    if len(text) * 4 <= limit:
        return text
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= limit:
        return text
    return data[:limit].decode("utf-8", "ignore")
