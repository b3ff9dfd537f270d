"""The shared prompt: instructions, optional demonstrations, then the question, as chat messages.

METHOD.md §1: the prompt gives the tag formats and the step budget, says not to repeat a query, that
results come back as `QUERY -> RESULT`, and to either call the tool or answer, never both. The
wording is ours, not the paper's.

Departures: the instructions sit in the FIRST user message, because Gemma's chat template has no
system role. Small models follow a format far better after seeing it, so `demonstrations=N`
prepends N short worked trajectories (ours, see `demos.py`) as earlier chat turns, built exactly the
way the rollout builds a real trajectory (assistant action, user `QUERY -> RESULT`, ...).

The instructions follow the run's tools: a task kind's written text (below) explains the tags it
was written for (math: the calculator, QA: search) and is used when the run serves exactly those;
any other set of tools (a user tool with a new tag, or two tools) gets instructions composed from
each tool's `describe` line (`tools/base.py`), so the policy is told about every tag it may use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from swirl_lite.actions import format_result
from swirl_lite.tasks.base import Example
from swirl_lite.tools.base import ANSWER, Tool, describe


@dataclass(frozen=True)
class DemoStep:
    thought: str
    tag: str  # the action tag, e.g. "math_exp", "search_query" or "answer"
    query: str
    result: str | None = None  # the tool result; None for the final answer


@dataclass(frozen=True)
class Demonstration:
    question: str
    steps: tuple[DemoStep, ...]
    source: str | None = None  # id of the dataset row it was built from (never shown to the model)


def same_question(demo: Demonstration, example: Example) -> bool:
    """Whether `demo` was built from `example` (same row id, or the same question text)."""
    def norm(q: str) -> str:
        return " ".join(q.split()).casefold()

    return demo.source == example.id or norm(demo.question) == norm(example.question)


_MATH = """\
You solve math word problems step by step, using a calculator.

Each of your turns does exactly ONE of these two things:
1. Think briefly (a sentence or two), then call the calculator once: <math_exp>EXPRESSION</math_exp>
   EXPRESSION uses numbers, + - * / ** and parentheses, for example <math_exp>(12 + 8) / 4</math_exp>
2. Give the final answer and stop: <answer>NUMBER</answer>
Never call the calculator and answer in the same turn.

After each calculator call I reply with one line, `EXPRESSION -> RESULT`. Use these results; do not \
repeat an expression you have already computed. You have at most {max_steps} turns, the answer \
included. The answer is only the final number, without units."""

_QA = """\
You answer questions by searching a collection of encyclopedia paragraphs.

Each of your turns does exactly ONE of these two things:
1. Think briefly (a sentence or two), then search once: <search_query>QUERY</search_query>
   A good query names the one thing you need next, for example <search_query>Eiffel Tower architect</search_query>
2. Give the final answer and stop: <answer>ANSWER</answer>
Never search and answer in the same turn.

After each search I reply with one line, `QUERY -> RESULT`, where RESULT is the best-matching \
paragraph as `Title: text`. Look up one fact at a time. Do not repeat a query; if a search did not \
help, search for something else. You have at most {max_steps} turns, the answer included. The \
answer is a short phrase (a name, a date, a number, yes or no), not a sentence."""

INSTRUCTIONS = {"math": _MATH, "qa": _QA}
WRITTEN_FOR = {"math": ("math_exp",), "qa": ("search_query",)}  # the tool tags each text explains

_INTRO = {
    "math": "You solve math word problems step by step, using tools.",
    "qa": "You answer questions step by step, using tools.",
}
_SLOT = {"math": "NUMBER", "qa": "ANSWER"}
_ANSWER_RULE = {
    "math": "The answer is only the final number, without units.",
    "qa": "The answer is a short phrase (a name, a date, a number, yes or no), not a sentence.",
}


def composed_instructions(kind: str, max_steps: int, tools: Sequence[Tool]) -> str:
    """Instructions that explain every tool of the run by its `describe` line."""
    lines = [
        _INTRO[kind],
        "",
        "Each of your turns does exactly ONE of these two things:",
        "1. Think briefly (a sentence or two), then call ONE of these tools once:",
        *(f"   - {describe(t)}" for t in tools),
        f"2. Give the final answer and stop: <{ANSWER}>{_SLOT[kind]}</{ANSWER}>",
        "Never call a tool and answer in the same turn.",
        "",
        "After each tool call I reply with one line, `QUERY -> RESULT`. Use these results; do not "
        f"repeat a query. You have at most {max_steps} turns, the answer included. {_ANSWER_RULE[kind]}",
    ]
    return "\n".join(lines)


def instructions(kind: str, max_steps: int, tools: Sequence[Tool] | None = None) -> str:
    """The instruction block for a task kind ('math' or 'qa'), step budget and the run's tools
    (None: the tools the kind's written text explains)."""
    if tools is None or tuple(t.tag for t in tools) == WRITTEN_FOR[kind]:
        return INSTRUCTIONS[kind].format(max_steps=max_steps)
    return composed_instructions(kind, max_steps, tools)


def question_text(question: str) -> str:
    return f"Question: {question.strip()}"


def action_text(step: DemoStep) -> str:
    """One assistant turn: a short thought, then exactly one action tag."""
    return f"{step.thought}\n<{step.tag}>{step.query}</{step.tag}>"


def demo_messages(demo: Demonstration) -> list[dict]:
    """The turns of one worked trajectory after its question message."""
    messages: list[dict] = []
    for step in demo.steps:
        messages.append({"role": "assistant", "content": action_text(step)})
        if step.result is not None:
            messages.append({"role": "user", "content": format_result(step.query, step.result)})
    return messages


def build_prompt(
    kind: str,
    question: str,
    max_steps: int,
    demonstrations: Sequence[Demonstration] = (),
    tools: Sequence[Tool] | None = None,
) -> list[dict]:
    """Chat messages that open a trajectory: the state s_0 of METHOD.md §2.

    The first user message carries the instructions and the first question (a demonstration's, or
    the real one when there are none); each later question is its own user message.
    """
    questions = [d.question for d in demonstrations] + [question]
    head = f"{instructions(kind, max_steps, tools)}\n\n{question_text(questions[0])}"
    messages: list[dict] = [{"role": "user", "content": head}]
    for i, demo in enumerate(demonstrations):
        messages.extend(demo_messages(demo))
        messages.append({"role": "user", "content": question_text(questions[i + 1])})
    return messages
