"""Interactive chat: type a question, watch each action, tool call and result stream by, get the answer.

`swirl-lite chat RECIPE [--adapter PATH]` loads the recipe's model (plus an adapter, e.g.
`runs/<name>/train/adapter`) and runs the same rollout loop as evaluation (METHOD.md §5: greedy,
the task's step cap and tools) on each line typed. It reads plain lines from stdin, so it works in
any terminal and in a pipe; `exit`, `quit` or end of input (Ctrl-D) quits. For QA tasks the search
tool needs a corpus: the paragraphs of the eval split's questions (`eval.split`, `eval.n_questions`),
or `tools.corpus` when set.
"""

from __future__ import annotations

import re
import sys
from typing import TextIO

from swirl_lite.config import Recipe
from swirl_lite.console import console
from swirl_lite.schema import Step, Trajectory
from swirl_lite.tasks.base import Example

QUIT = ("exit", "quit", ":q")
_ACTION_OPEN = re.compile(r"<(?:search_query|math_exp|answer)>")
PROMPT = "[bold]question>[/] "


def show_step(traj: Trajectory, step: Step) -> None:
    """Print one step as it happens: the thought, then the action and what came back."""
    thought = _ACTION_OPEN.split(step.text, maxsplit=1)[0].strip()
    if thought:
        console.print(f"  [dim]{step.index + 1}. {_safe(thought)}[/]")
    if step.action == "answer":
        console.print(f"  [bold green]answer[/] {_safe(step.query)}")
    elif step.action == "none":
        console.print(f"  [yellow]malformed turn ({step.malformed})[/]: {_safe(step.text[:200])}")
        if step.result:
            console.print(f"    [dim]-> {_safe(step.result)}[/]")
    else:
        console.print(f"  [cyan]{step.action}[/] {_safe(step.query)}")
        console.print(f"    [dim]-> {_safe((step.result or '')[:400])}[/]")


def _safe(text: str | None) -> str:
    """Model output is untrusted: never let it inject rich markup."""
    from rich.markup import escape

    return escape(text or "")


def answer_one(recipe: Recipe, llm, task, tools, question: str, number: int, demos: int) -> Trajectory | None:
    """One question through the rollout engine, streaming its steps; returns the trajectory."""
    from swirl_lite.backends import SamplingParams
    from swirl_lite.rollout import rollout

    params = SamplingParams(temperature=0.0, top_p=1.0, max_new_tokens=recipe.generate.max_new_tokens, seed=0)
    example = Example(id=f"chat-{number}", question=question, answer="")
    result = None
    for traj in rollout(
        llm, task, tools, [(example, 0)],
        max_steps=recipe.eval.max_steps or task.max_steps,
        batch_size=1,
        params=params,
        demonstrations=demos,
        max_malformed_in_a_row=recipe.generate.max_malformed_in_a_row,
        on_step=show_step,
    ):
        result = traj
    return result


def chat(recipe: Recipe, llm, stream: TextIO | None = None, demos: int | None = None) -> int:
    """The read-answer loop over `stream` (stdin by default); returns the questions answered.
    `demos`: demonstrations in the prompt (default `generate.demonstrations`, else 0)."""
    from swirl_lite.tasks import get_task
    from swirl_lite.tools import build_tools

    stream = stream if stream is not None else sys.stdin
    demos = demos if demos is not None else recipe.generate.demonstrations or 0
    task = get_task(recipe.data)
    examples: list[Example] = []
    if task.kind == "qa" and not recipe.tools.corpus:
        examples = task.load(recipe.eval.split, limit=recipe.eval.n_questions, seed=recipe.eval.seed)
    tools = build_tools(list(recipe.tools.use), recipe.tools, task, examples)
    console.print(
        f"[bold]swirl-lite chat[/] task {task.name}, tools {', '.join(sorted(t.name for t in tools.values())) or 'none'}, "
        f"at most {recipe.eval.max_steps or task.max_steps} steps. Type a question; 'exit' or Ctrl-D quits."
    )
    answered = 0
    while True:
        console.print(PROMPT, end="")
        line = stream.readline()
        if not line:
            console.print()
            break
        question = line.strip()
        if not question:
            continue
        if question.lower() in QUIT:
            break
        traj = answer_one(recipe, llm, task, tools, question, answered, demos)
        answered += 1
        if traj is None or traj.final_answer is None:
            reason = traj.stop_reason if traj is not None else "error"
            console.print(f"[yellow]no answer[/] ({reason}, {len(traj.steps) if traj else 0} steps)")
        else:
            console.print(f"[bold]=> {_safe(traj.final_answer)}[/]  [dim]({len(traj.steps)} steps)[/]")
    return answered


def load_chat_llm(recipe: Recipe, adapter: str | None):
    """(LLM, demonstrations): the recipe's backend over its model with `adapter` (or model.adapter)."""
    from swirl_lite.backends import demonstrations_for, load_llm

    llm, _ = load_llm(recipe, adapter or recipe.model.adapter)
    return llm, demonstrations_for(recipe, llm)
