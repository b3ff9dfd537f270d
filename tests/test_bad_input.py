"""Every bad input a user can meet ends in one `error:` line that says what to fix, exit code 2
(usage) or 1 (runtime), and no traceback; skipped rows are counted by reason.

Model-free: generation goes to a loopback OpenAI-compatible stub (tests/openai_stub.py).
"""

from __future__ import annotations

import errno
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from openai_stub import chat_reply, serve

from swirl_lite.cli import main

ROWS = [
    {"question": "What is 2 + 2?", "answer": "4"},
    {"answer": "5"},  # no question
    {"question": "What is 3 + 3?", "answer": "6"},
    {"question": "What is 1 + 1?", "answer": ""},  # empty answer
    {"question": "What is 4 + 4?", "answer": "8"},
]
TOOLS_MODULE = '''
class NoBatch:
    name, tag = "nobatch", "nobatch"

class Raises:
    name, tag = "raises", "raises"
    def __init__(self):
        raise RuntimeError("licence server unreachable")
    def batch(self, queries):
        return queries

class BatchRaises:
    name, tag = "echo", "echo"
    def batch(self, queries):
        raise KeyError("boom")
'''


def write_recipe(tmp: Path, url: str = "http://127.0.0.1:9/v1", name: str = "r.yaml", **sections) -> str:
    """A model-free recipe: custom JSONL data, generation through the stub at `url`."""
    recipe = {
        "data": {"task": "custom", "path": str(tmp / "data.jsonl"), "kind": "math", "shuffle": False},
        "generate": {"backend": "openai", "samples_per_question": 1, "demonstrations": 0, "max_steps": 2,
                     "openai": {"base_url": url, "model": "stub", "max_retries": 0, "timeout_s": 1.0}},
        "output": {"dir": str(tmp / "runs")},
    }
    for section, values in sections.items():
        recipe[section] = {**recipe.get(section, {}), **values}
    path = tmp / name
    path.write_text(yaml.safe_dump(recipe))
    return str(path)


@pytest.fixture
def files(tmp_path, monkeypatch):
    (tmp_path / "data.jsonl").write_text("\n".join(json.dumps(r) for r in ROWS) + "\n")
    (tmp_path / "usertools_bad.py").write_text(TOOLS_MODULE)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    return tmp_path


def invoke(args: list[str]):
    result = CliRunner().invoke(main, args, catch_exceptions=True)
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    return result, errors


# ---------------------------------------------------------------- skipped rows are counted


def test_generate_counts_skipped_rows_in_summary_and_manifest(files):
    with serve() as url:
        result, errors = invoke(["generate", write_recipe(files, url)])
    assert result.exit_code == 0 and not errors, result.output
    assert "2 skipped (missing answer 1, missing question 1)" in result.output
    manifest = json.loads((files / "runs" / "r" / "manifest.json").read_text())
    entry = manifest["stages"]["generate"]
    assert entry["skipped"] == {"missing question": 1, "missing answer": 1}
    assert entry["questions"] == 3 and entry["trajectories"] == 3


def test_other_bad_rows_are_counted_by_reason(files):
    lines = [json.dumps(ROWS[0]), "[1, 2]", json.dumps(ROWS[2])]
    (files / "data.jsonl").write_text("\n".join(lines) + "\n")
    (files / "short.csv").write_text("question,answer\nWhat is 2 + 2?,4\nWhat is 5 + 5?\n")
    (files / "gsm.jsonl").write_text(json.dumps({"question": "q?", "answer": "no marker"}) + "\n"
                                     + json.dumps({"question": "q2?", "answer": "1+1=2\n#### 2"}) + "\n")
    from swirl_lite.config import DataConfig
    from swirl_lite.tasks import get_task

    for data, reasons in (
        (DataConfig(task="custom", path="data.jsonl", kind="math"), {"not a JSON object": 1}),
        (DataConfig(task="custom", path="short.csv", kind="math"), {"missing answer": 1}),
        (DataConfig(task="gsm8k", path="gsm.jsonl"), {"gold not parseable": 1}),
    ):
        task = get_task(data)
        task.load("train")
        assert dict(task.skip_reasons) == reasons, data.path


# ---------------------------------------------------------------- one line, exit 2 or 1, no traceback


@dataclass
class Case:
    name: str
    args: Callable[[Path, str], list[str]]  # (tmp folder, stub URL) -> CLI arguments
    code: int
    expect: str  # a piece of the one error line
    reply: Callable[[dict], tuple[int, bytes]] | None = None
    hang: bool = False
    patch: Callable | None = None  # (monkeypatch) -> None, for disks we cannot make in a test
    extra: dict = field(default_factory=dict)


def _user_folder(t: Path) -> str:
    (t / "runs" / "mine" / "split").mkdir(parents=True)
    (t / "runs" / "mine" / "split" / "thesis.txt").write_text("precious")
    return "output.name=mine"


def _non_utf8(t: Path, name: str, good: str) -> str:
    (t / name).write_bytes(good.encode() + b"\n" + b'{"question": "caf\xe9?", "answer": "1"}\n')
    return str(t / name)


def _read_only(monkeypatch) -> None:
    import swirl_lite.runs as runs

    def refuse(path, text):
        raise OSError(errno.EROFS, "Read-only file system", str(path))

    monkeypatch.setattr(runs, "write_text_atomic", refuse)


def _full_disk(monkeypatch) -> None:
    import swirl_lite.schema as schema

    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(schema.os, "fsync", full)


CASES = [
    # usage: the recipe or the command line (exit 2)
    Case("output.name ..", lambda t, u: ["validate", write_recipe(t), "--set", "output.name=.."], 2, "output.name: must be one folder name"),
    Case("output.name ../../x", lambda t, u: ["generate", write_recipe(t), "--set", "output.name=../../x"], 2, "output.name"),
    Case("output.name absolute", lambda t, u: ["split", write_recipe(t), "--force", "--set", f"output.name={t}"], 2, "output.name"),
    Case("output.name a user folder", lambda t, u: ["split", write_recipe(t), "--force", "--set", _user_folder(t)], 2, "was not made by swirl-lite"),
    Case("output.name empty", lambda t, u: ["validate", write_recipe(t), "--set", "output.name="], 2, "output.name: is empty"),
    Case("output.dir is a file", lambda t, u: [(t / "f").write_text("x") and "generate", write_recipe(t, output={"dir": str(t / "f")})], 2, "is a file"),
    Case("empty recipe", lambda t, u: [(t / "e.yaml").write_text("") or "validate", str(t / "e.yaml")], 2, "the recipe is empty; set at least data.task"),
    Case("recipe not UTF-8", lambda t, u: ["validate", (t / "b.yaml").write_bytes(b"data:\n  task: caf\xe9\n") and str(t / "b.yaml")], 2, "b.yaml:2: byte 0xe9"),
    Case("validate: unknown tool", lambda t, u: ["validate", write_recipe(t, tools={"use": ["abacus"]})], 2, "unknown tool 'abacus'"),
    Case("validate: missing module", lambda t, u: ["validate", write_recipe(t, tools={"use": ["nowhere_mod:Tool"]})], 2, "cannot import 'nowhere_mod'"),
    Case("validate: class without batch", lambda t, u: ["validate", write_recipe(t, tools={"use": ["usertools_bad:NoBatch"]})], 2, "no batch(queries) method"),
    Case("validate: missing data", lambda t, u: ["validate", write_recipe(t, data={"path": str(t / "none.jsonl")})], 2, "data.path: no such file"),
    Case("tools run --top-k 0", lambda t, u: ["tools", "run", "search", "x", "--top-k", "0"], 2, "--top-k"),
    # runtime: files, disks, network, endpoint replies, user code (exit 1)
    Case("generate: unknown tool", lambda t, u: ["generate", write_recipe(t, u, tools={"use": ["abacus"]})], 1, "unknown tool 'abacus'"),
    Case("tool constructor raises", lambda t, u: ["generate", write_recipe(t, u, tools={"use": ["usertools_bad:Raises"]})], 1, "constructor raised RuntimeError: licence server unreachable"),
    Case("tool batch raises", lambda t, u: ["tools", "run", "usertools_bad:BatchRaises", "x"], 1, "usertools_bad.py"),
    Case("hub id while offline", lambda t, u: ["generate", write_recipe(t, u, data={"path": "nobody/no-such-data"})], 1, "hub dataset 'nobody/no-such-data'"),
    Case("data not UTF-8", lambda t, u: ["generate", write_recipe(t, u, data={"path": _non_utf8(t, "d.jsonl", json.dumps(ROWS[0]))})], 1, "d.jsonl:2: byte 0xe9"),
    Case("corpus not UTF-8", lambda t, u: ["generate", write_recipe(t, u, tools={"use": ["search"], "corpus": _non_utf8(t, "c.jsonl", '{"text": "x"}')})], 1, "tools.corpus"),
    Case("data line not JSON", lambda t, u: [(t / "data.jsonl").write_text('{"question": "q", "answer": "1"}\n{oops\n') and "generate", write_recipe(t, u)], 1, "data.jsonl:2: not valid JSON"),
    Case("CSV without the answer column", lambda t, u: [(t / "q.csv").write_text("question,solution\nq?,1\n") and "generate", write_recipe(t, u, data={"path": str(t / "q.csv")})], 1, "data.answer_field: no column 'answer'"),
    Case("read-only disk", lambda t, u: ["generate", write_recipe(t, u)], 1, "Read-only file system; set output.dir to a writable folder", patch=_read_only),
    Case("full disk", lambda t, u: ["generate", write_recipe(t, u)], 1, "shard-00000.jsonl: No space left on device; free space", patch=_full_disk),
    Case("endpoint usage is a string", lambda t, u: ["generate", write_recipe(t, u)], 1, "usage is not an object", reply=lambda b: (200, chat_reply(usage="12"))),
    Case("endpoint content is a number", lambda t, u: ["generate", write_recipe(t, u)], 1, "content is not text", reply=lambda b: (200, chat_reply(content=7))),
    Case("endpoint reply not JSON", lambda t, u: ["generate", write_recipe(t, u)], 1, "the reply is not JSON", reply=lambda b: (200, b"<html>busy</html>")),
    Case("endpoint HTTP 401", lambda t, u: ["generate", write_recipe(t, u)], 1, "HTTP 401", reply=lambda b: (401, b'{"error": "bad key"}')),
    Case("endpoint never answers", lambda t, u: ["generate", write_recipe(t, u)], 1, "generate.openai.timeout_s=1", hang=True),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_is_one_line(case, files, monkeypatch):
    if case.patch:
        case.patch(monkeypatch)
    start = time.perf_counter()
    with serve(case.reply, hang=case.hang) as url:
        result, errors = invoke(case.args(files, url))
    assert "Traceback" not in result.output
    assert result.exit_code == case.code, result.output
    assert len(errors) == 1, result.output
    assert case.expect in errors[0], errors[0]
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert time.perf_counter() - start < 20
    assert not list(files.rglob(".shard-*.tmp-*")), "a failed write left a temporary shard"
    if (files / "runs" / "mine").exists():
        assert (files / "runs" / "mine" / "split" / "thesis.txt").read_text() == "precious"


def test_debug_shows_the_traceback(files, monkeypatch):
    args = ["tools", "run", "usertools_bad:BatchRaises", "x"]
    result = CliRunner().invoke(main, ["--debug", *args])
    assert isinstance(result.exception, KeyError)  # re-raised: the traceback reaches the terminal
    monkeypatch.setenv("SWIRL_LITE_DEBUG", "1")
    assert isinstance(CliRunner().invoke(main, args).exception, KeyError)
    monkeypatch.delenv("SWIRL_LITE_DEBUG")
    result, errors = invoke(args)
    assert result.exit_code == 1 and len(errors) == 1 and "--debug" in errors[0]


def test_validate_accepts_a_good_recipe_and_notes_downloads(files):
    result, errors = invoke(["validate", write_recipe(files)])
    assert result.exit_code == 0 and not errors, result.output
    result, errors = invoke(["validate", write_recipe(files, data={"task": "gsm8k", "path": None})])
    assert result.exit_code == 0 and "openai/gsm8k" in result.output and "not checked" in result.output


def test_calculator_overflowing_literal(files):
    result = CliRunner().invoke(main, ["tools", "run", "calculator", "1e999", "2*1e308"])
    assert result.exit_code == 0
    assert "1e999 -> error: number too large" in result.output
    assert "ValueError" not in result.output


def test_validate_reads_local_questions_as_the_stages_will(files):
    """validate counts the rows generate would skip, by reason, and refuses a file with no usable row."""
    result, errors = invoke(["validate", write_recipe(files)])
    assert result.exit_code == 0 and not errors, result.output
    assert "data: 3 questions from" in result.output
    assert "2 skipped (missing answer 1, missing question 1)" in result.output
    assert "evaluation reads the training questions" in result.output
    (files / "held.jsonl").write_text(json.dumps({"question": "What is 5 + 5?", "answer": "10"}) + "\n")
    result, errors = invoke(["validate", write_recipe(files, eval={"path": str(files / "held.jsonl")})])
    assert result.exit_code == 0 and "eval: 1 question from" in result.output
    assert "evaluation reads the training questions" not in result.output
    (files / "bad.jsonl").write_text(json.dumps({"question": "", "answer": "5"}) + "\n")
    result, errors = invoke(["validate", write_recipe(files, data={"path": str(files / "bad.jsonl")})])
    assert result.exit_code == 2 and len(errors) == 1, result.output
    assert "data: no usable question in" in errors[0] and "missing question 1" in errors[0]
