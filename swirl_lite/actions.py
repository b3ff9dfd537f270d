"""Parse one model turn into its action (METHOD.md §1: exactly one action per step).

The rule for malformed output, stated once and used by generate, split, judge and train:
- the first *complete* action tag in the turn is the action; text after it is dropped (stop strings
  normally cut it there already);
- `no_tag`: no complete tag at all (also an opening tag that is never closed: `unclosed_tag`);
- `empty_query`: the tag is there but holds only whitespace;
- `two_actions`: a second opening tag follows the first action (counted; the first action stands);
- `repeated_query`: the same tool query as an earlier step (counted; the call is not re-run, and the
  model is told so in the tool result).
A turn with no usable action becomes a "none" step; the rollout feeds back a short format reminder.

Which tags are actions is the run's to say: callers pass `allowed`, the run's tools' tags plus
`answer` (`tools.base.action_tags`). `TAGS`, the built-in tools' tags, is only the default for a
caller with no run at hand, and always recognised so that a built-in tag the run lacks is named
(`unknown_tag`) rather than read as prose; every action's stop string is its closing tag.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache

TAGS = ("search_query", "math_exp", "answer")
STOP_STRINGS = tuple(f"</{t}>" for t in TAGS)


def stop_strings(tags: tuple[str, ...]) -> tuple[str, ...]:
    """Closing tags that end an action: the built-in ones plus those of user tools."""
    return tuple(f"</{t}>" for t in dict.fromkeys((*TAGS, *tags)))


@lru_cache(maxsize=32)
def _patterns(tags: tuple[str, ...]) -> tuple[re.Pattern, re.Pattern]:
    names = "|".join(re.escape(t) for t in sorted(tags, key=len, reverse=True))
    return re.compile(f"<({names})>"), re.compile(f"<({names})>(.*?)</\\1>", re.DOTALL)


@dataclass(frozen=True)
class Action:
    kind: str  # a tag from TAGS, or "none"
    query: str | None  # the stripped tag content
    text: str  # the turn cut just after the action's closing tag
    malformed: str | None = None  # rule name when something was wrong (see module docstring)


def parse_action(turn: str, allowed: tuple[str, ...] = TAGS) -> Action:
    """The first complete action in `turn`, cut after its closing tag.

    Built-in tags are always recognised (one that is not `allowed` is `unknown_tag`); tags of user
    tools are recognised when they are in `allowed`.
    """
    opening, first = _patterns(tuple(dict.fromkeys((*TAGS, *allowed))))
    match = first.search(turn)
    if match is None:
        rule = "unclosed_tag" if opening.search(turn) else "no_tag"
        return Action("none", None, turn, rule)
    kind, query = match.group(1), match.group(2).strip()
    text = turn[: match.end()]
    if kind not in allowed:
        return Action("none", query, text, "unknown_tag")
    if not query:
        return Action("none", "", text, "empty_query")
    rest = turn[match.end() :]
    return Action(kind, query, text, "two_actions" if opening.search(rest) else None)


def format_result(query: str, result: str) -> str:
    """The user turn that carries a tool result back (METHOD.md §1: `QUERY -> RESULT`)."""
    return f"{query} -> {result}"
