"""The records that flow between stages: Trajectory, Step, SubTrajectory, Verdict (and Document,
a search paragraph), their JSONL files, and `split_trajectory` (METHOD.md §2), the one mapping from
a trajectory to its sub-trajectories that split and evaluate share.

Each is a plain dataclass written as one JSON object per line. `schema_version` lets a later
release read (or refuse, with a clear message) files written by an older one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1

@dataclass
class Document:
    """One paragraph of a search corpus (the paper's per-split database, METHOD.md §1)."""

    id: str
    title: str
    text: str


@dataclass
class Step:
    """One model turn and what the tools made of it."""

    index: int
    text: str  # the raw assistant turn as generated (thought + one action tag)
    action: str  # a tag of the run's tools, "answer", or "none" when no action could be parsed
    query: str | None = None  # the content of the action tag
    tool: str | None = None  # the tool that ran the query (None for answers and malformed turns)
    result: str | None = None  # the tool result, appended as the user turn `QUERY -> RESULT`
    malformed: str | None = None  # name of the malformed-output rule that fired, if any
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class Trajectory:
    """One multi-step attempt at one question (sample `sample` of K)."""

    id: str  # f"{question_id}#{sample}"
    question_id: str
    sample: int
    task: str
    question: str
    gold: Any
    messages: list[dict]  # the whole chat: prompt turns, then assistant and tool-result turns
    prompt_len: int  # how many leading messages are the prompt (instructions, demonstrations, question)
    steps: list[Step] = field(default_factory=list)
    final_answer: str | None = None
    correct: bool | None = None
    score: float | None = None  # graded score in [0, 1] (F1 for QA, 0/1 for math)
    stop_reason: str = ""  # "answer" | "step_cap" | "malformed" | "context" | "error"
    malformed: dict[str, int] = field(default_factory=dict)
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    meta: dict = field(default_factory=dict)  # task-specific gold material (steps, supporting facts)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: dict) -> Trajectory:
        data = dict(data)
        data["steps"] = [Step(**s) for s in data.get("steps", [])]
        return _build(cls, data)


@dataclass
class SubTrajectory:
    """State s_i (the chat before action i) and action a_i (the i-th assistant turn)."""

    id: str  # f"{trajectory_id}/{step}"
    trajectory_id: str
    question_id: str
    step: int
    kind: str  # the action kind of a_i
    prompt: list[dict]  # the state, as chat messages (TRL's conversational "prompt")
    completion: list[dict]  # [{"role": "assistant", "content": a_i}] (TRL's "completion")
    task: str = ""
    outcome: bool | None = None  # the whole trajectory's graded correctness
    gold: Any = None
    meta: dict = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    @classmethod
    def from_dict(cls, data: dict) -> SubTrajectory:
        return _build(cls, dict(data))


@dataclass
class Verdict:
    """A judge's rating of one action given its state."""

    sub_id: str
    judge: str  # the judge's cache identity (model, mode, prompt version)
    label: str  # "GOOD" | "BAD" | "invalid"
    score: float  # in [0, 1]; P(GOOD) for logprob judges, 1/0 for verdicts
    rationale: str | None = None

    @classmethod
    def from_dict(cls, data: dict) -> Verdict:
        return _build(cls, dict(data))


def _build(cls, data: dict):
    version = data.get("schema_version", SCHEMA_VERSION)
    if version > SCHEMA_VERSION:
        raise ValueError(
            f"record written by a newer swirl-lite (schema {version} > {SCHEMA_VERSION}); upgrade swirl-lite"
        )
    names = {f.name for f in fields(cls)}
    return cls(**{k: v for k, v in data.items() if k in names})


def to_dict(record) -> dict:
    return asdict(record)


# ---------------------------------------------------------------- JSONL files


def write_jsonl(path: str | Path, records: Iterable[Any]) -> int:
    """Write records (dataclasses or dicts) atomically: a temporary file renamed when complete."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    count = 0
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            for record in records:
                data = record if isinstance(record, dict) else asdict(record)
                fh.write(json.dumps(data, ensure_ascii=False) + "\n")
                count += 1
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:  # a full disk or a kill mid-write: leave no half file behind
        tmp.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.filename is None:  # fsync/write name no file: say which
            raise OSError(exc.errno, exc.strerror or str(exc), str(path)) from exc
        raise
    return count


def read_jsonl(path: str | Path, skip_bad: bool = False, keep_non_objects: bool = False) -> Iterator[Any]:
    """The JSON objects of a JSONL file, one per non-blank line.

    A line that is not a JSON object raises ValueError naming the file and line, unless `skip_bad`
    (for a file of finished work whose torn lines, cut by a kill, are redone anyway), or unless
    `keep_non_objects`, which yields such a value as it is (data loading counts it as a skipped
    row). A byte that is not UTF-8 raises ValueError naming the file and line.
    """
    for _, row in numbered_jsonl(path, skip_bad, keep_non_objects):
        yield row


def numbered_jsonl(path: str | Path, skip_bad: bool = False, keep_non_objects: bool = False) -> Iterator[tuple[int, Any]]:
    """(line number, JSON value) for each non-blank line: `read_jsonl` with the line numbers."""
    from swirl_lite.errors import read_utf8

    for lineno, line in enumerate(read_utf8(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
            problem = None if isinstance(row, dict) or keep_non_objects else f"not a JSON object (got {line.strip()[:40]!r})"
        except json.JSONDecodeError as exc:
            problem = f"not valid JSON ({exc.msg})"
        if problem is None:
            yield lineno, row
        elif not skip_bad:
            raise ValueError(f"{path}:{lineno}: {problem}")


def shard_paths(folder: str | Path) -> list[Path]:
    """Finished shards of a sharded JSONL folder, in order (temporary files are ignored)."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.glob("*.jsonl") if not p.name.startswith("."))


def read_shards(folder: str | Path) -> Iterator[dict]:
    for path in shard_paths(folder):
        yield from read_jsonl(path)


def split_trajectory(traj: Trajectory) -> list[SubTrajectory]:
    """The k sub-trajectories of a trajectory with k assistant turns (after the prompt), METHOD.md
    §2: sub-trajectory i has the state s_i (every message before the i-th assistant turn) and the
    action a_i (that turn). Each action's kind is the one the rollout parsed with the run's tags."""
    from swirl_lite.actions import parse_action

    turns = [i for i in range(traj.prompt_len, len(traj.messages)) if traj.messages[i].get("role") == "assistant"]
    meta = {**traj.meta, "question": traj.question, "prompt_len": traj.prompt_len}
    subs = []
    for step, idx in enumerate(turns):
        content = str(traj.messages[idx].get("content", ""))
        kind = traj.steps[step].action if step < len(traj.steps) else parse_action(content).kind
        subs.append(
            SubTrajectory(
                id=f"{traj.id}/{step}",
                trajectory_id=traj.id,
                question_id=traj.question_id,
                step=step,
                kind=kind,
                prompt=[dict(m) for m in traj.messages[:idx]],
                completion=[{"role": "assistant", "content": content}],
                task=traj.task,
                outcome=traj.correct,
                gold=traj.gold,
                meta=meta,
            )
        )
    return subs


@dataclass(frozen=True)
class Series:
    """One number the train stage logs per step: the trainer's log key, its name in the report's
    training history, its labels (the live line's short one, the report's), and whether it is a share."""

    log_key: str
    name: str
    short: str
    label: str
    share: bool
    method: str  # "swirl" or "sft": whose steps log it


# What the live train line, report.md's training line and report.html's plot show, in this order.
# `reward` and `loss` are TRL's; the actions/* shares are logged by training/reward.py.
TRAINING_SERIES = (
    Series("reward", "reward", "reward", "reward", False, "swirl"),
    Series("actions/valid", "valid_share", "valid", "valid actions", True, "swirl"),
    Series("actions/answer", "answer_share", "answer", "answers", True, "swirl"),
    Series("loss", "loss", "loss", "loss", False, "sft"),
)
