"""NATS subject helpers: wildcard matching, pattern sets, and a bounded per-subject cache."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


def is_wildcard(subject: str) -> bool:
    """True when ``subject`` contains a ``*`` or ``>`` token."""
    return "*" in subject or ">" in subject


def pattern_error(pattern: str) -> str | None:
    """Why ``pattern`` is not a valid NATS subject pattern, or ``None`` when it is.

    Tokens are separated by ``.`` and must not be empty or contain whitespace; ``*`` and ``>`` are
    wildcards only as whole tokens, and ``>`` only as the last token."""
    if any(c.isspace() for c in pattern):
        return "contains whitespace"
    tokens = pattern.split(".")
    for i, tok in enumerate(tokens):
        if not tok:
            return "has an empty token"
        if tok == ">" and i != len(tokens) - 1:
            return "'>' is allowed only as the last token"
        if tok not in ("*", ">") and ("*" in tok or ">" in tok):
            return "wildcards '*' and '>' must be whole tokens"
    return None


def matches(pattern: str, subject: str) -> bool:
    """NATS wildcard match: ``*`` matches one token, a final ``>`` one or more."""
    p_tokens = pattern.split(".")
    s_tokens = subject.split(".")
    for i, tok in enumerate(p_tokens):
        if tok == ">" and i == len(p_tokens) - 1:
            return len(s_tokens) > i
        if i >= len(s_tokens):
            return False
        if tok != "*" and tok != s_tokens[i]:
            return False
    return len(p_tokens) == len(s_tokens)


class Generations(Generic[K, V]):
    """A bounded cache in two generations: full, it turns over instead of being cleared.

    Lookups read ``recent`` directly (fast path: a plain dict, so a hit costs what a dict lookup
    costs); after a miss, :meth:`recall` looks in ``older`` and moves a found entry back to
    ``recent``. When ``recent`` holds ``cap`` entries it becomes ``older`` and the previous
    ``older`` is dropped: at most twice ``cap`` entries, and whatever is still in use survives every
    turnover (no cliff where everything is rebuilt at once)."""

    __slots__ = ("cap", "older", "recent")

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.recent: dict[K, V] = {}
        self.older: dict[K, V] = {}

    def size(self) -> int:
        """Entries held (at most twice ``cap``)."""
        return len(self.recent) + len(self.older)

    def get(self, key: K) -> V | None:
        """The entry for ``key`` from either generation (see :meth:`recall`), or ``None``."""
        value = self.recent.get(key)
        return value if value is not None else self.recall(key)

    def recall(self, key: K) -> V | None:
        """The entry for ``key`` from the older generation (moved back to the recent one), or ``None``."""
        value = self.older.pop(key, None)
        if value is not None:
            self.remember(key, value)
        return value

    def remember(self, key: K, value: V) -> None:
        if len(self.recent) >= self.cap:
            self.older = self.recent
            self.recent = {}
        self.recent[key] = value


class SubjectSet(Generations[str, bool]):
    """A set of NATS subject patterns with a bounded per-subject answer cache."""

    __slots__ = ("patterns",)

    _MAX_CACHE = 4096

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        super().__init__(self._MAX_CACHE)
        self.patterns: tuple[str, ...] = tuple(p for p in patterns if p)

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __contains__(self, subject: object) -> bool:
        if not self.patterns or not isinstance(subject, str):
            return False
        hit = self.get(subject)
        if hit is None:
            hit = any(matches(p, subject) for p in self.patterns)
            self.remember(subject, hit)
        return hit
