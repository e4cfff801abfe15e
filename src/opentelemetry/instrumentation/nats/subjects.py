"""NATS subject helpers: wildcard matching and pattern sets."""

from __future__ import annotations

from collections.abc import Iterable


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


class SubjectSet:
    """A set of NATS subject patterns with a bounded per-subject answer cache."""

    __slots__ = ("_cache", "patterns")

    _MAX_CACHE = 4096

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        self.patterns: tuple[str, ...] = tuple(p for p in patterns if p)
        self._cache: dict[str, bool] = {}

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def __contains__(self, subject: object) -> bool:
        if not self.patterns or not isinstance(subject, str):
            return False
        hit = self._cache.get(subject)
        if hit is None:
            hit = any(matches(p, subject) for p in self.patterns)
            if len(self._cache) >= self._MAX_CACHE:
                self._cache.clear()
            self._cache[subject] = hit
        return hit
