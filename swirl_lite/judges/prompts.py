"""The process judge's prompts: criteria per action kind, built on the paper's (METHOD.md §3).

The paper's judge sees the whole trajectory and is told to rate only the last action: a final answer
is good if it follows from the results so far; a search query is good if it is likely to help answer
the question. We add the analogue for a calculation (the right next step). The wording is ours.
A tool's criteria come with the tool (`judge_hint`, `tools/base.py`), so a user tool is judged by
what its author says matters, or by the paper's search criterion said of that tool.

Departure: rather than pasting the raw chat (instructions, demonstrations, chat markup), the state is
rendered compactly: the question, the earlier actions with their results, and the action to judge.
Small judges read that far better, and it keeps judge prompts short.

`PROMPT_VERSION` is part of every judge's cache identity: change it whenever the wording changes.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from swirl_lite.actions import TAGS, parse_action
from swirl_lite.schema import SubTrajectory
from swirl_lite.tools.base import ANSWER, judge_hint

PROMPT_VERSION = "p1"
RESULT_CHARS = 400  # an earlier search result is trimmed to this in the judge's view
_QUESTION = re.compile(r"(?:^|\n)Question:\s*(.+)\s*$", re.DOTALL)


@dataclass
class PriorStep:
    kind: str  # action kind, "none" for a malformed turn
    query: str | None
    result: str | None  # the tool result (the part after " -> "), or the rollout's reminder


@dataclass
class JudgeView:
    """What a judge needs from a state and action, independent of chat formatting."""

    question: str
    prior: list[PriorStep]
    kind: str
    query: str | None
    thought: str  # the text before the action tag
    malformed: str | None


def _question_index(messages: list[dict], prompt_len: int | None) -> int:
    """Index of the user message holding the real question (demonstration questions come before)."""
    if prompt_len is not None and 0 < prompt_len <= len(messages):
        return prompt_len - 1
    for i in range(len(messages) - 1, -1, -1):
        msg = messages[i]
        if msg.get("role") == "user" and _QUESTION.search(str(msg.get("content", ""))):
            return i
    return 0


def split_result(query: str | None, content: str) -> str:
    """The RESULT of a `QUERY -> RESULT` user turn (the whole turn when it has another shape)."""
    if query is not None and content.startswith(f"{query} -> "):
        return content[len(query) + 4 :]
    head, sep, tail = content.partition(" -> ")
    return tail if sep else content


def view_of(sub: SubTrajectory, tags: tuple[str, ...] = TAGS) -> JudgeView:
    """The question, the trajectory's own earlier steps, and the action to judge, every turn parsed
    with the run's action `tags` (`tools.base.action_tags`), so a user tool's calls are actions."""
    messages = list(sub.prompt)
    qi = _question_index(messages, sub.meta.get("prompt_len"))
    match = _QUESTION.search(str(messages[qi].get("content", ""))) if messages else None
    question = sub.meta.get("question") or (match.group(1).strip() if match else "")
    prior: list[PriorStep] = []
    for i in range(qi + 1, len(messages)):
        msg = messages[i]
        if msg.get("role") != "assistant":
            continue
        act = parse_action(str(msg.get("content", "")), tags)
        reply = messages[i + 1] if i + 1 < len(messages) and messages[i + 1].get("role") == "user" else None
        result = split_result(act.query, str(reply["content"])) if reply else None
        prior.append(PriorStep(act.kind, act.query, result))
    text = str(sub.completion[0]["content"]) if sub.completion else ""
    act = parse_action(text, tags)
    thought = text.split(f"<{act.kind}>", 1)[0].strip() if act.kind != "none" else text.strip()
    return JudgeView(question, prior, act.kind, act.query, thought, act.malformed)


# ---------------------------------------------------------------- prompt text

_NAMES = {ANSWER: "Answer", "none": "Malformed turn"}


def step_name(kind: str, tools: Mapping[str, Any]) -> str:
    """How the judge's view names a step: its tool's name ("Calculator"), "Answer", or the tag."""
    tool = tools.get(kind)
    return _NAMES.get(kind) or (str(tool.name).capitalize() if tool is not None else kind)

_ANSWER_CRITERIA = (
    "The assistant gives its final answer to the question. Judge ONLY this last step.\n"
    "GOOD: the answer follows from the question and the results of the earlier steps, and "
    "answers what was asked.\n"
    "BAD: the answer is not supported by the earlier results, contradicts them, or answers a "
    "different question."
)


def criteria(kind: str, tools: Mapping[str, Any]) -> str:
    """What the judge weighs for an action of `kind`: the answer's criteria, or the serving tool's
    `judge_hint` (`tools.base.judge_hint`; built-in tools carry the paper's criteria)."""
    return _ANSWER_CRITERIA if kind == ANSWER else judge_hint(tools.get(kind), kind)


_ASK = {
    "logprob": "Is the last step GOOD or BAD? Reply with one word.",
    "generate": (
        "First explain your reasoning in one or two sentences. Then write a last line that is "
        "exactly `Verdict: GOOD` or `Verdict: BAD`."
    ),
}


def _trim(text: str | None, limit: int = RESULT_CHARS) -> str:
    text = " ".join((text or "").split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def render_view(view: JudgeView, tools: Mapping[str, Any]) -> str:
    lines = [f"Question: {view.question}", "", "Earlier steps:"]
    if not view.prior:
        lines.append("(none, this is the first step)")
    for n, step in enumerate(view.prior, 1):
        query = step.query if step.query is not None else "(no valid action)"
        lines.append(f"{n}. {step_name(step.kind, tools)}: {query} -> {_trim(step.result)}")
    lines += ["", "Last step (the one to judge):"]
    if view.thought:
        lines.append(f"Thought: {_trim(view.thought, 600)}")
    lines.append(f"{step_name(view.kind, tools)}: {view.query}")
    return "\n".join(lines)


def process_messages(view: JudgeView, mode: str, tools: Mapping[str, Any]) -> list[dict]:
    """The judge's chat for one step (a tool call of the run's `tools` ({tag: Tool}) or an answer)."""
    body = f"{criteria(view.kind, tools)}\n\n{render_view(view, tools)}\n\n{_ASK[mode]}"
    return [{"role": "user", "content": body}]


def outcome_messages(question: str, gold: str, prediction: str, mode: str) -> list[dict]:
    """The optional LLM outcome grader (METHOD.md §3/§5: a YES/NO partial-match check)."""
    ask = (
        "Reply with one word, YES or NO."
        if mode == "logprob"
        else "Explain in one sentence, then write a last line that is exactly `Verdict: YES` or `Verdict: NO`."
    )
    body = (
        "Decide whether a predicted answer to a question is correct. It is correct (YES) if it "
        "means the same as the gold answer, even if worded differently or only partly matching "
        "in form; otherwise NO.\n\n"
        f"Question: {question}\nGold answer: {gold}\nPredicted answer: {prediction}\n\n{ask}"
    )
    return [{"role": "user", "content": body}]
