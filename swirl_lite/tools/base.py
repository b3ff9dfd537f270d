"""The Tool contract: one batch call per tool per rollout step (METHOD.md §1: tools never throttle).

A tool is any object with `name`, `tag` and `batch(queries)`. Two attributes are optional:
- `description`: what the policy's prompt says about it, the text after "call ..." in the list of
  things a turn may do (`describe` builds one from the tag and name when it is absent);
- `judge_hint`: what an LLM judge should consider when it rates a call of this tool (`judge_hint`
  builds the paper's generic criterion when it is absent).
Everything else follows from the tag: the action is `<tag>QUERY</tag>`, its stop string is
`</tag>`, and prompts, the action parser, split, the judge's view, the RL reward's action counts, RL
stop strings and the report's tool table all read the run's tools, never a built-in list. The
built-in calculator and search are tools like any other.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol, runtime_checkable

ANSWER = "answer"  # the action that ends a trajectory; every other parsed action is a tool call
NO_ACTION = "none"  # the kind of a turn with no usable action


@runtime_checkable
class Tool(Protocol):
    name: str  # registry name, e.g. "calculator"
    tag: str  # the action tag it serves, e.g. "math_exp"

    def batch(self, queries: list[str]) -> list[str]:
        """One result string per query, in order. Never raises for a bad query: returns an error string."""
        ...


def describe(tool: Tool) -> str:
    """The prompt's line for `tool`: its `description`, or one built from its tag and name."""
    text = getattr(tool, "description", None)
    if isinstance(text, str) and text.strip():
        return text.strip()
    return f"<{tool.tag}>QUERY</{tool.tag}> runs the {tool.name} tool on QUERY"


def judge_hint(tool: Tool | None, tag: str) -> str:
    """The judge's criteria for a call of `tool`: its `judge_hint` (a complete paragraph: what the
    assistant does, which step to judge, what is GOOD and BAD), else the paper's search criterion
    (METHOD.md §3: likely to help answer the question) said of this tool."""
    text = getattr(tool, "judge_hint", None) if tool is not None else None
    if isinstance(text, str) and text.strip():
        return text.strip()
    name = tool.name if tool is not None else tag
    return (
        "The assistant answers the question step by step with tools, one tool call per step. "
        f"Judge ONLY the last step, a call of the {name} tool.\n"
        f"GOOD: the {name} call asks for something needed to answer the question that the earlier "
        "results do not already give, so it is likely to help.\n"
        f"BAD: the call is unrelated to the question, repeats an earlier call, or asks for something "
        "the earlier results already gave."
    )


def action_tags(tools: Iterable[Tool] | Iterable[str]) -> tuple[str, ...]:
    """The tags a run accepts: every tool's tag (tools or tags given), then `answer`."""
    tags = [t if isinstance(t, str) else t.tag for t in tools]
    return tuple(dict.fromkeys([*tags, ANSWER]))


def is_tool_call(kind: str) -> bool:
    """Whether a parsed action kind is a tool call (not the answer, not a malformed turn)."""
    return kind not in (ANSWER, NO_ACTION)
