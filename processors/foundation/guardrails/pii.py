"""PII and secret detection (pure). Each entity has a candidate regex and, wherever the format
carries one, a validator (Luhn, mod-97, SSA rules, ``ipaddress``, JWT header), so numbers that
merely look like an entity (order ids, ISBNs, versions, hashes) are not reported."""

from __future__ import annotations

import base64
import binascii
import bisect
import ipaddress
import json
import math
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from processors.foundation.config import PiiEntity

__all__ = ["PiiFinding", "find_pii", "settled_length"]


@dataclass(frozen=True)
class PiiFinding:
    """``text[start:end]`` is the detected value (character offsets, end exclusive)."""

    entity: PiiEntity
    start: int
    end: int


_Detector = Callable[[str], Iterator[tuple[int, int]]]

# --- email ---------------------------------------------------------------------------------

_EMAIL = re.compile(  # not the user part of a URL ("https://user:token@host")
    r"(?:(?<=mailto:)|(?<![\w.%+/:-]))[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,63}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w@-])"
)


def _emails(text: str) -> Iterator[tuple[int, int]]:
    for m in _EMAIL.finditer(text):
        if ".." not in m.group():
            yield m.span()


# --- phone ---------------------------------------------------------------------------------

# Never the tail or head of a longer run of digit groups (card numbers, ISBNs, ids).
_NOT_AFTER_DIGITS = r"(?<![\w+.-])(?<!\d[ .-])"
_NOT_BEFORE_DIGITS = r"(?![\w-])(?![ .-]?\d)"
_PHONE_INTERNATIONAL = re.compile(
    _NOT_AFTER_DIGITS
    + r"\+[1-9]\d{0,2}(?:[ .-]?\(\d{1,4}\)|[ .-]?\d{1,5}){2,6}"
    + _NOT_BEFORE_DIGITS
)
# NANP: (NXX) NXX-XXXX, NXX-NXX-XXXX, NXX.NXX.XXXX, optional leading 1.
_PHONE_NANP = re.compile(
    _NOT_AFTER_DIGITS
    + r"(?:1[ .-]?)?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[ .-]\d{4}"
    + _NOT_BEFORE_DIGITS
)
# Trunk-prefixed national numbers (UK, FR, DE, ...): 0 then groups split by one separator
# character used throughout, so "01.02.2024 10:30" is not read as a number.
_PHONE_TRUNK = re.compile(
    _NOT_AFTER_DIGITS + r"0[1-9]\d{0,3}([ .-])\d{2,8}(?:\1\d{2,8}){0,3}" + _NOT_BEFORE_DIGITS
)
# A bare digit run is a phone number only when the text says so just before it.
_PHONE_CONTEXT = re.compile(
    r"(?i)\b(?:phone|tel|telephone|mobile|cell|call|fax|whatsapp|sms|text me)\b\D{0,20}?"
    r"(?<!\d)(\+?\d{10,12})(?!\d)"
)


def _phone_digits_ok(value: str) -> bool:
    digits = sum(c.isdigit() for c in value)
    if value.startswith("+"):
        return 8 <= digits <= 15  # E.164 allows 15 including the country code
    if value.startswith("0"):
        return 10 <= digits <= 11
    return digits in (10, 11)


def _phones(text: str) -> Iterator[tuple[int, int]]:
    for pattern in (_PHONE_INTERNATIONAL, _PHONE_NANP, _PHONE_TRUNK):
        for m in pattern.finditer(text):
            if _phone_digits_ok(m.group()):
                yield m.span()
    for m in _PHONE_CONTEXT.finditer(text):
        if _phone_digits_ok(m.group(1)):
            yield m.span(1)


# --- credit card ---------------------------------------------------------------------------

_CARD = re.compile(r"(?<![\d.,-])\d(?:[ -]?\d){12,18}(?![\d-]|[.,]\d)")
# (first digits, allowed lengths): Visa, Mastercard (51-55, 2221-2720), Amex, Discover,
# Diners, JCB, UnionPay, Maestro.
_IIN_RANGES: tuple[tuple[int, int, frozenset[int]], ...] = (
    (4, 4, frozenset({13, 16, 19})),
    (51, 55, frozenset({16})),
    (2221, 2720, frozenset({16})),
    (34, 34, frozenset({15})),
    (37, 37, frozenset({15})),
    (6011, 6011, frozenset({16, 17, 18, 19})),
    (644, 649, frozenset({16, 17, 18, 19})),
    (65, 65, frozenset({16, 17, 18, 19})),
    (300, 305, frozenset({14, 16, 17, 18, 19})),
    (36, 36, frozenset({14, 16, 17, 18, 19})),
    (38, 39, frozenset({14, 16, 17, 18, 19})),
    (3528, 3589, frozenset({16, 17, 18, 19})),
    (62, 62, frozenset({16, 17, 18, 19})),
    (50, 50, frozenset({13, 14, 15, 16, 17, 18, 19})),
    (56, 69, frozenset({13, 14, 15, 16, 17, 18, 19})),
)


def _luhn_ok(digits: str) -> bool:
    """The Luhn checksum every payment card number carries."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (2 if i % 2 else 1)
        total += d - 9 if d > 9 else d
    return total % 10 == 0


def _known_iin(digits: str) -> bool:
    return any(
        low <= int(digits[: len(str(low))]) <= high and len(digits) in lengths
        for low, high, lengths in _IIN_RANGES
    )


def _cards(text: str) -> Iterator[tuple[int, int]]:
    """The longest prefix, cut at a separator, that is a valid card: a card number followed by
    more digits ("4111 1111 1111 1111 12 25") is still found."""
    for m in _CARD.finditer(text):
        value = m.group()
        if " " in value and "-" in value:
            continue  # mixed separators: a list of numbers, not one card
        cuts = [i for i, ch in enumerate(value) if ch in " -"]
        for cut in [len(value), *reversed(cuts)]:
            digits = value[:cut].replace(" ", "").replace("-", "")
            if len(digits) >= 13 and _luhn_ok(digits) and _known_iin(digits):
                yield m.start(), m.start() + cut
                break


# --- IBAN ----------------------------------------------------------------------------------

_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21,
    "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18,
    "FR": 27, "GB": 22, "GI": 23, "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22,
    "IL": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LI": 21,
    "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15,
    "PK": 24, "PL": 28, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24,
    "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29,
}  # fmt: skip
_IBAN_START = re.compile(r"(?<![A-Za-z0-9])([A-Za-z]{2})\d{2}(?= ?[A-Za-z0-9])")


def _iban_ok(compact: str) -> bool:
    """ISO 13616: the country's length and the mod-97 check digits."""
    compact = compact.upper()
    if _IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isalnum():
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in rearranged)) % 97 == 1


def _ibans(text: str) -> Iterator[tuple[int, int]]:
    """Reads exactly the country's length of characters (single spaces allowed between
    them), so a word after the IBAN is never swallowed."""
    for m in _IBAN_START.finditer(text):
        length = _IBAN_LENGTHS.get(m.group(1).upper())
        if length is None:
            continue
        compact: list[str] = []
        end = m.start()
        while end < len(text) and len(compact) < length:
            ch = text[end]
            if ch.isascii() and ch.isalnum():
                compact.append(ch)
            elif ch != " " or text[end - 1] == " ":
                break
            end += 1
        if end < len(text) and text[end].isalnum():
            continue
        if _iban_ok("".join(compact)):
            yield m.start(), end


# --- US SSN --------------------------------------------------------------------------------

_SSN = re.compile(r"(?<![\w-])(\d{3})-(\d{2})-(\d{4})(?![\w-])")


def _ssn_ok(area: str, group: str, serial: str) -> bool:
    """SSA rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def _ssns(text: str) -> Iterator[tuple[int, int]]:
    for m in _SSN.finditer(text):
        if _ssn_ok(*m.groups()):
            yield m.span()


# --- IP addresses --------------------------------------------------------------------------

_IPV4 = re.compile(r"(?<![\w.])(?:\d{1,3}\.){3}\d{1,3}(?!\w|\.\d)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9A-Fa-f]{1,4}|(?:\d{1,3}\.){3}\d{1,3})?"
    r"(?![\w:.])"
)
_VERSION_WORD = re.compile(r"(?i)\b(?:version|ver|release|v)\s*$")


def _ip_worth_reporting(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback and unspecified addresses identify no one."""
    return not (address.is_loopback or address.is_unspecified)


def _ips(text: str) -> Iterator[tuple[int, int]]:
    for m in _IPV4.finditer(text):
        if _VERSION_WORD.search(text, max(0, m.start() - 12), m.start()):
            continue
        try:
            v4 = ipaddress.IPv4Address(m.group())
        except ValueError:
            continue
        if _ip_worth_reporting(v4):
            yield m.span()
    for m in _IPV6.finditer(text):
        value = m.group()
        if not any(c.isdigit() for c in value):
            continue  # "dead::beef" style words, C++/Rust paths
        try:
            v6 = ipaddress.IPv6Address(value)
        except ValueError:
            continue
        if _ip_worth_reporting(v6):
            yield m.span()


# --- secrets -------------------------------------------------------------------------------

_KEY_FORMATS = re.compile(
    r"(?<![\w-])(?:"
    r"sk-ant-[A-Za-z0-9_-]{20,}"  # Anthropic
    r"|sk-(?:proj-|svcacct-)?[A-Za-z0-9_-]{20,}"  # OpenAI
    r"|[sr]k_(?:live|test)_[A-Za-z0-9]{20,}"  # Stripe secret / restricted
    r"|gh[pousr]_[A-Za-z0-9]{36,}"  # GitHub tokens
    r"|github_pat_[A-Za-z0-9_]{22,}"
    r"|xox[abposr]-[A-Za-z0-9-]{10,}"  # Slack
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"  # AWS access key id
    r"|AIza[0-9A-Za-z_-]{35}"  # Google API key
    r"|glpat-[A-Za-z0-9_-]{20,}"  # GitLab
    r")(?![\w-])"
)
_PRIVATE_KEY = re.compile(  # the whole block; a truncated one up to its last base64 line
    r"-----BEGIN[A-Z ]*PRIVATE KEY-----"
    r"(?:[\s\S]*?-----END[A-Z ]*PRIVATE KEY-----|(?:\s*[A-Za-z0-9+/=]{16,})*)"
)
_JWT = re.compile(r"(?<![\w-])eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}")
# A value assigned to a secret-sounding name: flagged even when it is hex or a UUID.
_ASSIGNED_SECRET = re.compile(
    r"(?i)(?<![a-z0-9])(?:api[_-]?key|apikey|secret(?:[_-]?(?:access[_-]?)?key)?|client[_-]?secret"
    r"|access[_-]?key(?:[_-]?id)?|private[_-]?key|(?:auth|access|refresh|api|bearer)?[_-]?token"
    r"|password|passwd|pwd)[\"']?\s*[:=]\s*[\"']?([A-Za-z0-9+/_=.\-]{8,})"
    r"|\bbearer\s+([A-Za-z0-9+/_=.\-]{16,})"
)
_TOKEN = re.compile(r"(?<![\w+=-])[\w+-]{20,}={0,2}(?![\w+=-])", re.ASCII)
_HEX_OR_UUID = re.compile(r"[0-9a-fA-F]+|[0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")
_INTEGRITY_HASH = re.compile(r"sha(?:256|384|512)-")  # subresource integrity, not a secret
_MIN_ENTROPY_BITS = 3.8


def _shannon_entropy(value: str) -> float:
    """Bits per character of the value's own character distribution."""
    counts = Counter(value)
    return -sum(n / len(value) * math.log2(n / len(value)) for n in counts.values())


def _looks_random(token: str) -> bool:
    """Random tokens mix upper, lower and digits and have high entropy; identifiers, words
    and hex digests (which need a ``key=`` context) do not."""
    if _HEX_OR_UUID.fullmatch(token):
        return False
    classes = (
        any(c.isupper() for c in token),
        any(c.islower() for c in token),
        sum(c.isdigit() for c in token) >= 2,
    )
    return all(classes) and _shannon_entropy(token) >= _MIN_ENTROPY_BITS


def _jwt_ok(token: str) -> bool:
    header = token.split(".", 1)[0]
    try:
        decoded = json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    except (binascii.Error, ValueError):
        return False
    return isinstance(decoded, dict) and "alg" in decoded


def _assigned_value_ok(value: str) -> bool:
    """Placeholders (``YOUR_API_KEY``, ``xxxxxxxx``) carry no digit or repeat one character."""
    return any(c.isdigit() for c in value) and len(set(value.lower())) > 3


def _secrets(text: str) -> Iterator[tuple[int, int]]:
    yield from (m.span() for m in _KEY_FORMATS.finditer(text))
    yield from (m.span() for m in _PRIVATE_KEY.finditer(text))
    yield from (m.span() for m in _JWT.finditer(text) if _jwt_ok(m.group()))
    for m in _ASSIGNED_SECRET.finditer(text):
        group = 1 if m.group(1) is not None else 2
        if _assigned_value_ok(m.group(group)):
            yield m.span(group)
    for m in _TOKEN.finditer(text):
        if _INTEGRITY_HASH.match(m.group()) or text.endswith("base64,", 0, m.start()):
            continue
        if _looks_random(m.group()):
            yield m.span()


# --- all -----------------------------------------------------------------------------------

_DETECTORS: dict[PiiEntity, _Detector] = {
    "secret": _secrets,
    "credit_card": _cards,
    "iban": _ibans,
    "us_ssn": _ssns,
    "email": _emails,
    "ip_address": _ips,
    "phone": _phones,
}
_PRIORITY = {entity: rank for rank, entity in enumerate(_DETECTORS)}
# The fewest digits (``\d``, as the patterns read them) a finding of each entity holds: a text
# with fewer cannot hold one, and most prompts skip most detectors on one count.
_MIN_DIGITS: dict[PiiEntity, int] = {
    "credit_card": 13,
    "us_ssn": 9,
    "phone": 8,
    "iban": 2,
    "ip_address": 1,
}
_DIGIT = re.compile(r"\d")


def _may_hold(entity: PiiEntity, text: str, digits: int) -> bool:
    if digits < _MIN_DIGITS.get(entity, 0):
        return False
    return entity != "email" or "@" in text


def find_pii(text: str, entities: Iterable[PiiEntity]) -> list[PiiFinding]:
    """Findings for the requested entities, in text order and never overlapping: when two
    candidates overlap, the longer wins (then the more specific entity, in ``_DETECTORS``
    order), so a card number is not also reported as a phone number."""
    wanted = set(entities)
    digits = len(_DIGIT.findall(text))
    candidates = [
        PiiFinding(entity, start, end)
        for entity, detect in _DETECTORS.items()
        if entity in wanted and _may_hold(entity, text, digits)
        for start, end in detect(text)
        if end > start
    ]
    candidates.sort(key=lambda f: (f.start - f.end, _PRIORITY[f.entity], f.start))
    chosen: list[PiiFinding] = []  # sorted by start, pairwise disjoint
    starts: list[int] = []
    for finding in candidates:
        i = bisect.bisect_left(starts, finding.start)
        clear_before = i == 0 or chosen[i - 1].end <= finding.start
        clear_after = i == len(chosen) or finding.end <= chosen[i].start
        if clear_before and clear_after:
            chosen.insert(i, finding)
            starts.insert(i, finding.start)
    return chosen


# --- streaming -----------------------------------------------------------------------------

# The most characters one finding that may contain whitespace reads, match and lookaround:
# international phone 46 + 2, a card's 19 digits and 18 separators + 3, an IBAN's 34
# characters with single spaces between them + 1. Every other pattern (emails, IPs, SSNs,
# keys, tokens, an assigned secret's value) is one run of non-whitespace characters.
_SPACED_REACH: dict[PiiEntity, int] = {"phone": 48, "credit_card": 40, "iban": 68}
# Phones and cards are made of these characters only, and need this many digits at least.
_PHONE_OR_CARD_CHARS = frozenset("0123456789 ()+.-")
_LEAST_DIGITS: dict[PiiEntity, int] = {"phone": 8, "credit_card": 13}
# Where an IBAN could begin (its country and check digits), whatever follows.
_IBAN_OPENING = re.compile(r"(?<![A-Za-z0-9])[A-Za-z]{2}\d{2}")
# A private-key block spans lines up to its END line: open while that line has not come, or
# while its header is still arriving.
_OPEN_PRIVATE_KEY = re.compile(
    r"-----BEGIN[A-Z ]*(?:-{0,4}\Z|PRIVATE KEY-----(?![\s\S]*?-----END[A-Z ]*PRIVATE KEY-----))"
)


def settled_length(text: str, entities: Iterable[PiiEntity]) -> int:
    """How much of ``text``'s start keeps its findings whatever is appended to it, so a stream
    may release that much. Unsettled: the trailing run of non-whitespace (a finding without
    whitespace grows while it touches the end, however long: a token, a URL-borne email), an
    unfinished private-key block, and what a spaced pattern (phone, card, IBAN) could still
    read (``_spaced_settled``)."""
    wanted = set(entities)
    if not wanted:
        return len(text)
    run = len(text)
    while run and not text[run - 1].isspace():
        run -= 1
    settled = min(run, _spaced_settled(text, wanted, run))
    if "secret" in wanted and (block := _OPEN_PRIVATE_KEY.search(text)) is not None:
        settled = min(settled, block.start())
    return max(settled, 0)


def _spaced_settled(text: str, wanted: set[PiiEntity], run: int) -> int:
    """Where the spaced patterns leave ``text`` settled. Where a candidate may be near the end
    (an IBAN's opening, or a run of phone-and-card characters with enough digits for one, in
    the last two reaches), the last reach, taken twice because a finding that changes can free
    a shorter candidate it overlapped, one reach further. Else only the trailing run of
    phone-and-card characters while it holds a digit (it may still grow into a number), from
    the start of the word it continues."""
    reaches = [_SPACED_REACH[e] for e in wanted if e in _SPACED_REACH]
    if not reaches:
        return len(text)
    reach = max(reaches)
    window = max(len(text) - 2 * reach, 0)
    conservative = min(run, len(text) - reach) - reach
    if "iban" in wanted and _IBAN_OPENING.search(text, max(window - 3, 0)):
        return conservative
    least = min((_LEAST_DIGITS[e] for e in wanted if e in _LEAST_DIGITS), default=None)
    if least is None:
        return len(text)
    start = window
    while start and text[start - 1] in _PHONE_OR_CARD_CHARS:
        start -= 1
    digits = 0
    for char in text[start:]:
        if char not in _PHONE_OR_CARD_CHARS:
            digits = 0
        elif char.isdigit():
            digits += 1
            if digits >= least:
                return conservative
    tail = len(text)
    while tail and text[tail - 1] in _PHONE_OR_CARD_CHARS:
        tail -= 1
    if not any(char.isdigit() for char in text[tail:]):
        return len(text)
    while tail and not text[tail - 1].isspace():
        tail -= 1  # a word the number continues (a token ending in digits) is held with it
    return tail
