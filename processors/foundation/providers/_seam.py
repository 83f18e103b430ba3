"""Where a continuation meets the answer it continues (pure). A model asked to go on from a cut
answer may first restate its end: an instruction-following model ("...the capital of Fra" +
"France is"), or any model after a prefill whose trailing whitespace the API made us strip.
The seam holds the continuation's first characters back until it knows how many of them repeat
the answer's end, and passes on only what is new.

After an instruction, a repeat counts when it starts at a word's start in the answer and has
a letter in it ("Fra" + "France" joins; "the" + "e" and "4111 11" + "11 1111" keep every
character, since a number cut short cannot be told from one restated), looked for within the
answer's last ``_WINDOW`` characters or as the whole answer (a model that starts over).
After a prefill only repeated whitespace is dropped."""

from __future__ import annotations

__all__ = ["Seam"]

_WINDOW = 256


class Seam:
    def __init__(self, before: str, *, restates: bool) -> None:
        """``restates``: the continuation was asked for by instruction and may repeat words."""
        self._before = before
        self._restates = restates
        self._held = ""
        self._deciding = bool(before)

    def push(self, piece: str) -> str:
        """The part of ``piece`` that is new text; empty while the overlap is undecided."""
        if not self._deciding:
            return piece
        self._held += piece
        return "" if self._could_repeat_more() else self._settle()

    def finish(self) -> str:
        """What is still held, now that the continuation ended."""
        return self._settle() if self._deciding else ""

    def _settle(self) -> str:
        self._deciding = False
        held, self._held = self._held, ""
        fits = [k for k in self._lengths(1) if k <= len(held) and self._before.endswith(held[:k])]
        return held[max(fits, default=0) :]

    def _could_repeat_more(self) -> bool:
        """Whether a longer repeat than what is held could still be under way."""
        held = self._held
        return any(self._before[-k:].startswith(held) for k in self._lengths(len(held) + 1))

    def _lengths(self, shortest: int) -> list[int]:
        """The repeat lengths that may count, from ``shortest`` up."""
        before = self._before
        spaces = len(before) - len(before.rstrip())
        lengths = list(range(shortest, spaces + 1))
        if self._restates:
            longer = [*range(max(shortest, spaces + 1), min(len(before), _WINDOW) + 1), len(before)]
            lengths += [
                k for k in dict.fromkeys(longer) if k >= shortest and _word(before[-k:], before, k)
            ]
        return lengths


def _word(repeat: str, before: str, k: int) -> bool:
    """``repeat`` (the last ``k`` characters of ``before``) starts at a word's start and has a
    letter in it."""
    starts = k == len(before) or not before[-k - 1].isalnum() or not repeat[0].isalnum()
    return starts and any(c.isalpha() for c in repeat)
