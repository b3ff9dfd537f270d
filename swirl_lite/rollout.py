"""The batched multi-step loop shared by generate, evaluate and chat (METHOD.md §1 and §5).

The loop runs in rounds. In each round the backend moves every active trajectory's next turn on;
each turn that is done (cut at its first complete action, parsed by `actions.parse_action`) leaves
the batch at once: its tool call joins that round's calls, grouped by tag, each tool running ONE
`batch` call per round; the result comes back as a user turn `QUERY -> RESULT` and the trajectory
rejoins the next round with its next turn. A trajectory ends at `<answer>` (graded by the task), at
the step cap, or when its chat no longer fits the context; its slot goes at once to a waiting
(question, sample) job, so the batch stays full.

How far a round goes is the backend's (`backends.Advancing`): `openai` and `vllm` keep one request
in flight per trajectory (a server's request, or one in vLLM's own engine) and a round ends at the
first finished turns, so the engine's continuous batching is never idled by a step barrier. The
`hf` backend with `generate.chunk_tokens: N` generates up to N tokens per round, so no trajectory
waits more than that for another's long action (continuous batching). Its default, 0, finishes every
turn in each round (lockstep): each round re-enters `generate` and re-lays every row's cache out, so
on a 2-core CPU rounds gain only where actions differ much in length and prompts are long (README,
Benchmarks: 0.94x lockstep on learn-cpu's arithmetic, 1.17x on learn-cpu-search's questions). Either
way a trajectory that joins the batch runs its prompt through the model before the round, beside the
others joining then (`HFLLM._prefill`), so the continuing rows are not padded to it. A backend
without `advance` (scripted ones) is lockstep too.
Turns are seeded per (trajectory, step), so the trajectories do not depend on the engine or on what
shares the batch (up to float noise).

Malformed turns never stop the batch (rules in `actions.py`): a turn with no usable action becomes a
"none" step answered by a short format reminder, so the model can recover on its next turn; a
repeated tool query is not run again, and its result says so. Every rule that fires is counted in
`Trajectory.malformed` and named on the step.

Departure from the paper: the paper does not say how it treats malformed turns; the reminder turn
is ours. Steps with a malformed action still count towards the step cap. A small model that has
lost the format tends to stay lost (the 135M default repeats a tag-less turn to the step cap), so
`max_malformed_in_a_row=N` ends a trajectory after N consecutive turns with no usable action
(stop reason "malformed"); unset, only the step cap ends it.
"""

from __future__ import annotations

import dataclasses
import inspect
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from swirl_lite.actions import format_result, parse_action, stop_strings
from swirl_lite.backends import LLM, Advancing, Completion, SamplingParams, Turn, make_llm, seed_for
from swirl_lite.schema import Step, Trajectory
from swirl_lite.tasks.base import Example, Task
from swirl_lite.tools.base import Tool, action_tags

__all__ = ["LLM", "MALFORMED_RULES", "Completion", "SamplingParams", "make_llm", "reminder", "rollout"]

MALFORMED_RULES = ("no_tag", "unclosed_tag", "unknown_tag", "empty_query", "two_actions", "repeated_query")
REPEATED_NOTE = "[repeated query: not run again; the earlier result was] "

OnStep = Callable[[Trajectory, Step], None]
OnDone = Callable[[Trajectory], None]


@dataclass(eq=False)  # identity, not field equality: `active.remove` must drop this one
class _Active:
    traj: Trajectory
    example: Example
    started: float
    seen: dict[tuple[str, str], str] = field(default_factory=dict)  # (tag, query) -> result
    turn: Turn | None = None  # the next turn while the backend generates it


def advance(llm: LLM, turns: list[Turn], params: SamplingParams) -> list[Completion | None]:
    """One round of `turns` on `llm`: its own `advance` (continuous batching), else one `generate`
    call that finishes them all (lockstep)."""
    if isinstance(llm, Advancing):
        return llm.advance(turns, params)
    return list(llm.generate([t.conversation for t in turns], params, [t.seed for t in turns]))


def reminder(rule: str, tags: tuple[str, ...]) -> str:
    """The user turn after a turn with no usable action: what went wrong and the expected format."""
    why = {
        "no_tag": "had no action tag",
        "unclosed_tag": "opened an action tag but never closed it",
        "unknown_tag": "used an action tag that is not available here",
        "empty_query": "had an empty action tag",
    }.get(rule, "had no usable action")
    tools = " or ".join(f"<{t}>...</{t}>" for t in tags if t != "answer")
    use = f"call a tool with {tools}, or " if tools else ""
    return f"Your last turn {why}. Think briefly, then {use}give the final answer with <answer>...</answer>."


def task_prompt(task: Task, example: Example, max_steps: int, demonstrations: int,
                tools: Sequence[Tool] = ()) -> list[dict]:
    """The task's prompt for `example`, told about the run's `tools` when the task takes them (the
    built-in tasks do; a user task written against the older protocol gets its own prompt)."""
    if tools and "tools" in inspect.signature(task.prompt).parameters:
        return task.prompt(example, max_steps, demonstrations, tools=list(tools))
    return task.prompt(example, max_steps, demonstrations)


def start(example: Example, sample: int, task: Task, max_steps: int, demonstrations: int,
          tools: Sequence[Tool] = ()) -> Trajectory:
    """A fresh trajectory whose messages are the task's prompt (state s_0)."""
    prompt = [dict(m) for m in task_prompt(task, example, max_steps, demonstrations, tools)]
    return Trajectory(
        id=f"{example.id}#{sample}",
        question_id=example.id,
        sample=sample,
        task=task.name,
        question=example.question,
        gold=example.answer,
        messages=prompt,
        prompt_len=len(prompt),
        malformed=dict.fromkeys(MALFORMED_RULES, 0),
        meta=dict(example.meta),
    )


def rollout(
    llm: LLM,
    task: Task,
    tools: Mapping[str, Tool],
    jobs: list[tuple[Example, int]],
    *,
    max_steps: int,
    batch_size: int,
    params: SamplingParams,
    demonstrations: int = 0,
    max_malformed_in_a_row: int | None = None,
    on_step: OnStep | None = None,
    on_done: OnDone | None = None,
) -> Iterator[Trajectory]:
    """Run every (example, sample) job to the end; yield each trajectory as it finishes.

    `tools` maps an action tag to the tool that serves it (`tools.build_tools`). Sampling seeds are
    derived from `params.seed`, the trajectory id and the step, so a trajectory is reproducible
    whatever shares its batch (where the backend allows).
    """
    if batch_size < 1 or max_steps < 1:
        raise ValueError("rollout: batch_size and max_steps must be at least 1")
    tags = action_tags(tools)
    extra = tuple(s for s in stop_strings(tags) if s not in params.stop)
    if extra:  # a user tool with its own tag: stop at its closing tag too
        params = dataclasses.replace(params, stop=(*params.stop, *extra))
    queue = deque(jobs)
    active: list[_Active] = []
    while queue or active:
        while queue and len(active) < batch_size:
            example, sample = queue.popleft()
            traj = start(example, sample, task, max_steps, demonstrations, list(tools.values()))
            active.append(_Active(traj, example, time.time()))
        for a in active:
            if a.turn is None:
                a.turn = Turn(a.traj.messages, seed_for(params.seed, a.traj.id, len(a.traj.steps)))
        completions = advance(llm, [a.turn for a in active], params)
        if len(completions) != len(active):
            raise RuntimeError(f"backend returned {len(completions)} turns for {len(active)} conversations")
        finished: list[_Active] = []
        stepped: list[tuple[_Active, Step]] = []
        calls: dict[str, list[tuple[_Active, Step]]] = {}
        for a, completion in zip(active, completions, strict=True):
            if completion is None:  # still generating: it goes on next round
                continue
            a.turn = None
            if getattr(completion, "finish_reason", "stop") == "context":
                a.traj.stop_reason = "context"
                finished.append(a)
                continue
            step = _take_turn(a, completion, task, tags)
            stepped.append((a, step))
            if step.action == "answer":
                finished.append(a)
            elif step.action in tools and step.malformed != "repeated_query":
                calls.setdefault(step.action, []).append((a, step))
        _run_tools(tools, calls)
        for a, step in stepped:
            if step.result is not None:
                a.traj.messages.append({"role": "user", "content": _user_turn(step)})
            if a not in finished and len(a.traj.steps) >= max_steps:
                a.traj.stop_reason = "step_cap"
                finished.append(a)
            elif a not in finished and _lost(a.traj.steps, max_malformed_in_a_row):
                a.traj.stop_reason = "malformed"
                finished.append(a)
            if on_step is not None:
                on_step(a.traj, step)
        for a in finished:
            a.traj.seconds = round(time.time() - a.started, 3)
            active.remove(a)
            if on_done is not None:
                on_done(a.traj)
            yield a.traj


def _take_turn(a: _Active, completion: Completion, task: Task, tags: tuple[str, ...]) -> Step:
    """Parse one generated turn into a Step, append the assistant message, handle answer/none/repeat."""
    traj = a.traj
    action = parse_action(completion.text, allowed=tags)
    step = Step(
        index=len(traj.steps),
        text=action.text,
        action=action.kind,
        query=action.query,
        malformed=action.malformed,
        prompt_tokens=completion.prompt_tokens,
        completion_tokens=completion.completion_tokens,
    )
    traj.steps.append(step)
    traj.prompt_tokens += completion.prompt_tokens
    traj.completion_tokens += completion.completion_tokens
    traj.messages.append({"role": "assistant", "content": action.text})
    if action.kind == "answer":
        traj.final_answer = task.extract_answer(action.text)
        grade = task.grade(traj.final_answer, a.example)
        traj.correct, traj.score, traj.stop_reason = bool(grade.correct), float(grade.score), "answer"
    elif action.kind == "none":
        step.result = reminder(action.malformed or "no_tag", tags)
    else:
        key = (action.kind, action.query or "")
        if key in a.seen:
            step.malformed = "repeated_query"
            step.result = REPEATED_NOTE + a.seen[key]
    if step.malformed:
        traj.malformed[step.malformed] = traj.malformed.get(step.malformed, 0) + 1
    return step


def _lost(steps: list[Step], limit: int | None) -> bool:
    """The last `limit` turns all had no usable action (the model has lost the format)."""
    return bool(limit) and len(steps) >= limit and all(s.action == "none" for s in steps[-limit:])


def _run_tools(tools: Mapping[str, Tool], calls: dict[str, list[tuple[_Active, Step]]]) -> None:
    """One batch call per tool for the whole step; a tool that raises fails only its own queries."""
    for tag, items in calls.items():
        tool = tools[tag]
        queries = [step.query or "" for _, step in items]
        try:
            results = list(tool.batch(queries))
            if len(results) != len(queries):
                raise RuntimeError(f"returned {len(results)} results for {len(queries)} queries")
        except Exception as exc:  # a broken tool must not stop the batch; the model sees the error
            results = [f"error: tool {tool.name} failed ({type(exc).__name__}: {exc})"] * len(queries)
        for (a, step), result in zip(items, results, strict=True):
            step.tool, step.result = tool.name, str(result)
            a.seen[(tag, step.query or "")] = step.result


def _user_turn(step: Step) -> str:
    if step.action in ("none", "answer"):
        return step.result or ""
    return format_result(step.query or "", step.result or "")
