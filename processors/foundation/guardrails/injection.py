"""A scored, explainable prompt-injection / jailbreak heuristic (pure). Text is normalised
first (NFKC, case folding, zero-width removal, Cyrillic/Greek look-alikes folded to Latin), so
fullwidth or Cyrillic-spelled "ignore" matches like the ASCII word; weighted signals are
combined as a noisy-OR, so one strong phrase is enough and several weak ones add up."""

from __future__ import annotations

import base64
import binascii
import codecs
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = ["InjectionVerdict", "score_injection"]


@dataclass(frozen=True)
class InjectionVerdict:
    """``score`` in [0, 1]; ``signals`` name what matched; ``spans`` are character offsets into
    the text as given (not the normalised one)."""

    score: float
    signals: list[str]
    spans: list[tuple[int, int]]


@dataclass(frozen=True)
class _Signal:
    name: str
    weight: float
    pattern: re.Pattern[str]


def _signal(name: str, weight: float, *alternatives: str) -> _Signal:
    return _Signal(name, weight, re.compile("|".join(alternatives)))


@dataclass(frozen=True)
class _Signals:
    """Signals matched together, with one pattern matching where any of them does: most texts
    hold none, and one scan of the union is far cheaper than one scan per signal. Patterns with
    global flags (``(?m)``) cannot be joined; a set holding one has no union."""

    signals: tuple[_Signal, ...]
    any: re.Pattern[str] | None

    @classmethod
    def of(cls, signals: Iterable[_Signal]) -> _Signals:
        chosen = tuple(signals)
        if any(s.pattern.flags != _PLAIN_FLAGS for s in chosen):
            return cls(chosen, None)
        return cls(chosen, re.compile("|".join(f"(?:{s.pattern.pattern})" for s in chosen)))


_PLAIN_FLAGS = re.compile("").flags


_VERBS = r"(?:ignore|disregard|forget|override|bypass|discard|drop|skip|abandon|set aside|do not follow|don't follow|stop following|no longer follow)"  # noqa: E501
_PREVIOUS = r"(?:previous|prior|above|earlier|preceding|initial|original|system|existing|former|old|your|their|its|developer'?s?)"  # noqa: E501
_DIRECTIVES = r"(?:instructions?|prompts?|rules|directives?|directions|guidelines|guidance|context|messages|commands|programming|constraints|restrictions|policies|criteria)"  # noqa: E501
_HIDDEN_PROMPT = r"(?:(?:system|hidden|secret|internal|confidential|developer|pre-?) ?(?:prompt|instructions|message|rules|directives|guidelines|configuration)|your (?:\w+ )?(?:prompt|instructions|rules|directives|guidelines))"  # noqa: E501
_RULES = r"(?:restrictions|rules|limits|limitations|filters|guidelines|censorship|boundaries|constraints|ethics|morals|morality|safeguards|policies)"  # noqa: E501
_PERSONAS = r"(?:dan|stan|dude|aim|evilbot|evil ?gpt|unfiltered ?gpt|an? (?:unfiltered|uncensored|unrestricted|amoral|evil) (?:ai|assistant|model|chatbot))"  # noqa: E501
_SELF = r"(?:you|ai|model|assistant|chatbot|chatgpt|claude|gpt|bot)"
_JAILBREAK_MODES = r"(?:god|jailbreak|jailbroken|dan|unrestricted|sudo|evil|uncensored)"
_DEVICE_MODES = r"(?:developer|dev|debug|admin|maintenance)"

# Attack phrasings, matched on normalised text. Weights ~0.8+ decide alone at the 0.7 default.
_PHRASES: tuple[_Signal, ...] = (
    _signal(
        "ignore_previous_instructions",
        0.9,
        rf"\b{_VERBS}\b(?! (?:\w+ ){{0,3}}?(?:my|our)\b)(?: \w+){{0,3}}? (?:{_PREVIOUS}|all|any)"
        rf"(?: \w+){{0,2}}? {_DIRECTIVES}\b",
        rf"\b{_VERBS}\b(?: \w+){{0,2}}? {_DIRECTIVES} (?:above|before|given|you (?:were|have been)"
        r" given|you received)\b",
        rf"\b{_VERBS}\b (?:about )?(?:all |absolutely )?(?:everything|anything|what)"
        r"(?: \w+){0,4}? (?:above|before|previously|so far|told you|you (?:were|have been) told)\b",
        rf"\b(?:the|your|all|previous|prior|earlier|above|old) (?:\w+ )?{_DIRECTIVES}(?: above)?"
        r" (?:no longer apply|(?:are|is|have been) (?:now )?(?:void|cancel+ed|obsolete|revoked"
        r"|lifted|suspended|disabled))\b",
    ),
    _signal(
        "prompt_leak",
        0.85,
        rf"\b(?:reveal|show|print|display|output|repeat|recite|tell|give|leak|dump|share|expose|"
        rf"list|spell out|write out|copy|paste|quote|summari[sz]e|translate|paraphrase)\b"
        rf"(?: \w+){{0,4}}? {_HIDDEN_PROMPT}\b",
        rf"\bwhat (?:is|are|was|were) {_HIDDEN_PROMPT}\b",
        r"\b(?:original|initial|first) (?:prompt|instructions) (?:you (?:were|have been) given"
        r"|you received|given to you)\b",
        r"\b(?:repeat|print|output|reproduce)\b (?:back )?(?:all |everything |the (?:text|words) )"
        r"(?:\w+ ){0,3}?(?:above|before this|so far)\b",
    ),
    _signal(
        "persona_jailbreak",
        0.9,
        r"\bdo anything now\b",
        rf"\byou are (?:now |going to be |going to act as )?{_PERSONAS}\b",
        rf"\b(?:act|acting|pretend|roleplay|role-play|stay in character|respond|answer)"
        rf" (?:as|to be) {_PERSONAS}\b",
        r"\b(?:dan|stan|aim) mode\b",
    ),
    _signal(
        "jailbreak_mode",
        0.75,
        rf"\b(?:enable|activate|enter|switch (?:in)?to|turn on|unlock)\b(?: \w+){{0,2}}?"
        rf" {_JAILBREAK_MODES} mode\b",
        rf"\b{_JAILBREAK_MODES} mode (?:is )?(?:now )?(?:enabled|activated|on|unlocked)\b",
        rf"\b{_SELF}\b(?: \w+){{0,4}}? (?:with|in) (?:{_JAILBREAK_MODES}|{_DEVICE_MODES}) mode\b",
    ),
    _signal(
        "developer_mode",
        0.5,
        rf"\b(?:enable|activate|enter|switch (?:in)?to|turn on|unlock)\b(?: \w+){{0,2}}?"
        rf" {_DEVICE_MODES} mode\b",
        rf"\b{_DEVICE_MODES} mode (?:is )?(?:now )?(?:enabled|activated|on|unlocked)\b",
    ),
    _signal(
        "no_restrictions",
        0.8,
        rf"\b(?:pretend|imagine|act|behave|respond|answer|reply)(?: as if| like| that)? (?:you\b"
        rf"|you're|an? (?:ai|model|assistant|chatbot|version of you))(?: \w+){{0,5}}? (?:no|without"
        rf"|free (?:of|from)|zero)(?: \w+){{0,2}}? {_RULES}\b",
        rf"\b(?:behave|respond|answer|reply|act) (?:with|without) (?:zero |no |any )?(?:\w+ )?"
        rf"{_RULES}\b",
        r"\b(?:not|no longer|never) (?:be )?(?:bound|restricted|limited|constrained) by\b",
        rf"\b{_SELF}\b(?: \w+){{0,3}}? (?:ha(?:s|ve)|with|without) (?:no|zero|any) (?:\w+ )?"
        rf"{_RULES}\b",
        rf"\b{_SELF}\b(?: \w+){{0,4}}? (?:is|that is|who is) (?:uncensored|unfiltered|unrestricted"
        rf"|amoral|free (?:of|from) (?:any |all )?{_RULES})\b",
    ),
    _signal(
        "safety_bypass",
        0.7,
        r"\b(?:bypass|disable|ignore|turn off|switch off|deactivate|remove|circumvent|evade)\b"
        r"(?: \w+){0,2}? (?:(?:safety|content|ethical|moderation|openai|anthropic)"
        r" (?:filter(?:s|ing)?|guidelines|polic(?:y|ies)|restrictions|rules)|guardrails"
        r"|safeguards)\b",
    ),
    _signal(
        "ignore_user",
        0.6,
        r"\b(?:ignore|disregard|forget)\b (?:the |this )?user'?s?"
        r" (?:request|question|message|input|prompt)",
    ),
    _signal(
        "new_instructions",
        0.55,
        r"\b(?:your )?new (?:instructions|task|rules|objective|directives?) (?:is|are|:)",
        r"\bfrom now on,? you (?:will|are|must|shall|should)\b",
    ),
    _signal(
        "refusal_suppression",
        0.5,
        r"\b(?:never|do not|don't|you (?:cannot|can't|must not|will not)) (?:refuse[sd]?|decline"
        r"|apologi[sz]e|say (?:no|that you can't)|add (?:any )?(?:warnings|disclaimers))\b",
        r"\bwithout (?:any )?(?:warnings|disclaimers|moralizing|moralising|lectures|censorship)\b",
        r"\b(?:comply with|obey) (?:every|all|any) (?:request|command|instruction)s?\b",
    ),
    _signal(
        "data_exfiltration",
        0.45,
        r"\b(?:reveal|list|print|show|give|send|share|leak|dump|forward|output|disclose)\b"
        r"(?: me)?(?: all| the| any| every)?(?: \w+)? (?:api keys|passwords?|credentials|secrets"
        r"|(?:confidential|private|stored|sensitive|internal) (?:data|information|files|records)"
        r"|(?:emails|conversation|chat history) to)\b",
        r"\bask (?:them|the user|users) for (?:their|his|her) (?:password|credentials|card)",
    ),
    _signal(
        "roleplay_override",
        0.45,
        r"\b(?:you are now|you will now act as|act as if you were|pretend to be|roleplay as"
        r"|role-play as|stay in character|you're no longer an? (?:ai|assistant))\b",
    ),
    _signal(
        "addressed_to_ai",
        0.45,
        r"\b(?:attention|note|instructions?|message) (?:to|for) (?:any |all )?(?:ai|llm|language"
        r" model|assistant|chatbot)s?\b",
        r"\battention,? (?:ai|llm|assistant|chatbot)s?\b",
        r"\bif you are an? (?:ai|llm|large language model|language model|ai assistant)\b",
        r"\b(?:ai|llm|language model)s?(?: \w+)? (?:reading|processing|summari[sz]ing|parsing)"
        r" this\b",
    ),
    _signal("jailbreak_word", 0.45, r"\bjailbr(?:eak|oken)\w*"),
    _signal(
        "hypothetical_framing",
        0.25,
        r"\b(?:hypothetically|in a fictional world|purely for educational purposes"
        r"|for educational purposes only)\b",
    ),
)
# Role-override structure: forged turns and chat-template markup, matched line by line. A
# forged system turn that addresses the model counts more than a pasted transcript's turns.
_TURN_START = r"(?m)^ ?(?:#{1,6} ?|\[|<)?"
_STRUCTURE: tuple[_Signal, ...] = (
    _signal("chat_template_token", 0.8, r"<\|[a-z_]+\|>", r"\[/?inst\]", r"<</?sys>>"),
    _signal(
        "fake_system_turn",
        0.7,
        _TURN_START + r"(?:system|developer|admin|root)(?: override| message| prompt| update"
        r"| notice)?\]? ?: ?\n? ?(?:you\b|your\b|the (?:user|assistant)\b|from now\b|new\b|ignore"
        r"|disregard|override|previous\b|all\b|do not\b|always\b|never\b)",
    ),
    _signal("fake_role_turn", 0.5, r"(?m)^ ?(?:system|assistant|developer|admin|root) ?: ?\S"),
    _signal(
        "instruction_header",
        0.5,
        r"(?m)^ ?#{2,} ?(?:new )?(?:instructions?|system(?: prompt)?|response|assistant)\b",
    ),
    _signal("role_tag", 0.5, r"</?(?:system|assistant|admin|developer|instructions?|sys)>"),
)
# Text *about* attacks (a question, an article, a test) is damped when it quotes the attack
# or asks about it; attackers can borrow that framing, which is a documented limit.
_DISCUSSION_TOPIC = re.compile(
    r"\b(?:prompt injections?|injection attacks?|jailbreak(?:s|ing)?(?: prompts?| attempts?)?"
    r"|attackers?|malicious (?:users?|prompts?|inputs?)|llms?|chatbots?|bots?|language models?)\b"
)
_DISCUSSION_FRAME = re.compile(
    r"\b(?:what is|what are|explain|how (?:do|can|to|should|does)|should (?:we|i)|detect\w*"
    r"|prevent\w*|defend\w*|mitigat\w*|protect\w*|classif\w*|examples? of|such as|research\w*"
    r"|paper|article|blog|test (?:suite|case)s?|dataset|filter\w* out|block\w*|recogni[sz]e)\b"
)
_QUOTES = (('"', '"'), ("'", "'"), ("\u201c", "\u201d"), ("`", "`"), ("\u00ab", "\u00bb"))
_DISCUSSION_DAMPING = 0.6
_ENCODED_WEIGHT = 0.85
_HIDDEN_PHRASE_WEIGHT = 0.8
_INVISIBLE_WEIGHT = 0.35
_HOMOGLYPH_WEIGHT = 0.4
_DECODED_MIN_WEIGHT = 0.6  # phrases strong enough to count when found inside a payload
_ALL_PHRASES = _Signals.of(_PHRASES)
_STRONG_PHRASES = _Signals.of(s for s in _PHRASES if s.weight >= _DECODED_MIN_WEIGHT)
_ALL_STRUCTURE = _Signals.of(_STRUCTURE)

_ZERO_WIDTH = frozenset(
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
)
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
_LOOKALIKES = str.maketrans(
    "аеорсухіјѕԁɡһӏвмтнкαεορτυνικχ",  # Cyrillic, then Greek
    "aeopcyxijsdghlbmthkaeoptuvikx",
)
_LEET = str.maketrans("013457@$", "oieastas")  # same length, so offsets survive
_SPLIT_LETTERS = re.compile(r"\b(?:[a-z][-._*|/ ]){3,}[a-z]\b")
_SPLIT_SEPARATORS = str.maketrans("", "", "-._*|/ ")
_WORD = re.compile(r"\w+")
_BASE64_BLOB = re.compile(r"(?<![\w+/=])[A-Za-z0-9+/]{24,}={0,2}(?![\w+/=])")
_HEX_BLOB = re.compile(r"(?<![0-9A-Fa-f])(?:[0-9A-Fa-f]{2}){16,}(?![0-9A-Fa-f])")


@dataclass(frozen=True)
class _Normalised:
    """Normalised text and, for each of its characters, the index it came from."""

    text: str
    origin: tuple[int, ...]

    def span(self, start: int, end: int) -> tuple[int, int]:
        return self.origin[start], self.origin[end - 1] + 1


def _normalise(text: str) -> _Normalised:
    """NFKC + casefold + look-alike folding per character; zero-width characters dropped;
    whitespace runs become one space (one newline if they held one, for line-anchored rules)."""
    out: list[str] = []
    origin: list[int] = []
    for i, ch in enumerate(text):
        if ch in _ZERO_WIDTH or ch in _BIDI_CONTROLS:
            continue
        if ch.isspace():
            if out and out[-1] in " \n":
                if ch == "\n":
                    out[-1] = "\n"
                continue
            folded = "\n" if ch == "\n" else " "
        elif ch.isascii():
            folded = ch.lower()
        else:
            folded = unicodedata.normalize("NFKC", ch).casefold().translate(_LOOKALIKES)
        out.extend(folded)
        origin.extend([i] * len(folded))
    return _Normalised("".join(out), tuple(origin))


def _hits(text: str, signals: _Signals) -> Iterator[tuple[_Signal, int, int]]:
    if signals.any is not None and signals.any.search(text) is None:
        return
    for signal in signals.signals:
        for m in signal.pattern.finditer(text):
            yield signal, m.start(), m.end()


def _phrase_text(normalised: str) -> str:
    """What phrases are matched on: lines joined (a phrase may wrap) and leetspeak digits
    read as letters; both keep the length, so offsets still map back."""
    return normalised.replace("\n", " ").translate(_LEET)


def _strong_phrase(text: str) -> bool:
    """Whether decoded or de-obfuscated text holds an attack phrase that would count alone."""
    return next(_hits(text, _STRONG_PHRASES), None) is not None


def _decoded(blob: str, hex_encoded: bool) -> str | None:
    try:
        raw = (
            bytes.fromhex(blob) if hex_encoded else base64.b64decode(blob + "=" * (-len(blob) % 4))
        )
    except (binascii.Error, ValueError):
        return None
    text = raw.decode("utf-8", errors="replace")
    printable = sum(c.isprintable() or c.isspace() for c in text)
    return text if printable >= 0.9 * len(text) else None


def _encoded_payloads(text: str) -> Iterator[tuple[int, int]]:
    """Base64 or hex blobs that decode to attack phrasing."""
    for pattern, hex_encoded in ((_BASE64_BLOB, False), (_HEX_BLOB, True)):
        for m in pattern.finditer(text):
            decoded = _decoded(m.group(), hex_encoded)
            if decoded is not None and _strong_phrase(_phrase_text(_normalise(decoded).text)):
                yield m.span()


def _hidden_phrases(flat: str) -> Iterator[tuple[str, tuple[int, int]]]:
    """Attack phrasing that only shows once the text is rot13-decoded, reversed or has its
    letter-by-letter separators ("i-g-n-o-r-e") removed; spans are in ``flat``."""
    n = len(flat)
    for _, start, end in _hits(codecs.encode(flat, "rot13"), _STRONG_PHRASES):
        yield "rot13_payload", (start, end)
    for _, start, end in _hits(flat[::-1], _STRONG_PHRASES):
        yield "reversed_payload", (n - end, n - start)
    runs = list(_SPLIT_LETTERS.finditer(flat))
    if runs:
        joined = _SPLIT_LETTERS.sub(lambda m: m.group().translate(_SPLIT_SEPARATORS), flat)
        if _strong_phrase(joined) and not _strong_phrase(flat):
            yield from (("split_letters", m.span()) for m in runs)


def _invisible_characters(text: str) -> Iterator[int]:
    """Bidi overrides anywhere, and zero-width characters inside a word (next to emoji a
    zero-width joiner is legitimate)."""
    for i, ch in enumerate(text):
        inside_word = 0 < i < len(text) - 1 and text[i - 1].isalpha() and text[i + 1].isalpha()
        if ch in _BIDI_CONTROLS or (ch in _ZERO_WIDTH and inside_word):
            yield i


def _mixed_script_words(text: str) -> Iterator[tuple[int, int]]:
    """Words mixing Latin with Cyrillic or Greek letters: look-alike spoofing."""
    for m in _WORD.finditer(text):
        scripts = {unicodedata.name(c, "").split(" ", 1)[0] for c in m.group() if c.isalpha()}
        if "LATIN" in scripts and scripts & {"CYRILLIC", "GREEK"}:
            yield m.span()


def score_injection(text: str) -> InjectionVerdict:
    """Score ``text``; each signal counts once (its weight), combined as 1 - prod(1 - w)."""
    norm = _normalise(text)
    found: dict[str, float] = {}
    spans: list[tuple[int, int]] = []
    phrase_spans: list[tuple[int, int]] = []

    def note(name: str, weight: float, span: tuple[int, int]) -> None:
        found[name] = max(found.get(name, 0.0), weight)
        spans.append(span)

    flat = _phrase_text(norm.text)
    for signal, start, end in _hits(flat, _ALL_PHRASES):
        note(signal.name, signal.weight, norm.span(start, end))
        phrase_spans.append((start, end))
    for signal, start, end in _hits(norm.text, _ALL_STRUCTURE):
        note(signal.name, signal.weight, norm.span(start, end))
    for name, (start, end) in _hidden_phrases(flat):
        note(name, _HIDDEN_PHRASE_WEIGHT, norm.span(start, end))
    for span in _encoded_payloads(text):
        note("encoded_payload", _ENCODED_WEIGHT, span)
    if not text.isascii():
        for i in _invisible_characters(text):
            note("invisible_characters", _INVISIBLE_WEIGHT, (i, i + 1))
        for span in _mixed_script_words(text):
            note("homoglyphs", _HOMOGLYPH_WEIGHT, span)

    miss = 1.0
    for weight in found.values():
        miss *= 1.0 - weight
    score = 1.0 - miss
    signals = sorted(found)
    if found and _is_discussion(norm.text, phrase_spans):
        score *= _DISCUSSION_DAMPING
        signals.append("discussion_context")
    return InjectionVerdict(round(score, 4), signals, sorted(set(spans)))


def _is_discussion(text: str, phrase_spans: list[tuple[int, int]]) -> bool:
    """About attacks (a topic word), and either quoting every matched phrase or asking."""
    if not _DISCUSSION_TOPIC.search(text):
        return False
    quoted = bool(phrase_spans) and all(_quoted(text, s, e) for s, e in phrase_spans)
    return quoted or ("?" in text and _DISCUSSION_FRAME.search(text) is not None)


def _quoted(text: str, start: int, end: int) -> bool:
    """Opened just before the phrase and closed later on the same line."""
    line_end = text.find("\n", end)
    after = text[end : line_end if line_end >= 0 else len(text)]
    return any(
        opening in text[max(0, start - 3) : start] and closing in after
        for opening, closing in _QUOTES
    )
