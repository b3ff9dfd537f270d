"""Chat: a scripted session through the CLI; each action, tool result and the answer stream by."""

from __future__ import annotations

import io

import yaml
from click.testing import CliRunner
from test_evaluate import ScriptedLLM, reply

import swirl_lite.chat as chat_module
from swirl_lite.cli import main
from swirl_lite.config import build_recipe


def test_chat_scripted_session(tmp_path, monkeypatch):
    recipe = tmp_path / "chat.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"task": "gsm8k"}, "output": {"dir": str(tmp_path)}}))
    monkeypatch.setattr(chat_module, "load_chat_llm", lambda recipe, adapter: (ScriptedLLM(sloppy=False), 0))
    result = CliRunner().invoke(main, ["chat", str(recipe)], input="What is 3 plus 13?\n\nHello there\nexit\nWhat is 1 plus 1?\n")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "math_exp 3 + 13" in out and "-> 16" in out and "answer 16" in out and "=> 16 (2 steps)" in out
    assert "=> 0 (1 steps)" in out  # the second question: answered at once
    assert "math_exp 1 + 1" not in out  # nothing after `exit` is read


def test_chat_ends_at_eof_and_escapes_markup(capsys):
    class Shouty(ScriptedLLM):
        def generate(self, conversations, params, seeds=None):
            return [reply(r.text.replace("Done.", "[bold red]Done.[/]")) for r in super().generate(conversations, params)]

    recipe = build_recipe({"data": {"task": "gsm8k"}})
    answered = chat_module.chat(recipe, Shouty(sloppy=True), io.StringIO("What is 5 plus 15?\n"))
    assert answered == 1
    out = capsys.readouterr().out
    assert "[bold red]Done.[/]" in out and "=> 21" in out  # model text printed as text, not markup


def test_chat_rejects_missing_adapter(tmp_path):
    recipe = tmp_path / "chat.yaml"
    recipe.write_text(yaml.safe_dump({"data": {"task": "gsm8k"}}))
    result = CliRunner().invoke(main, ["chat", str(recipe), "--adapter", str(tmp_path / "nope")], input="exit\n")
    assert result.exit_code == 2 and "does not exist" in result.output


def test_chat_tiny_model_through_cli(tmp_path, tiny_model_dir):
    """The real loading path: a random 2-layer model writes no action tag in 8 tokens, so each of its
    two turns streams as a malformed turn with the format hint, the step cap ends the question, and
    the loop asks again and ends at end of input."""
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "model": {"name": tiny_model_dir},
        "data": {"task": "arithmetic"},
        "generate": {"max_new_tokens": 8, "demonstrations": 0},
        "eval": {"max_steps": 2},
    }))
    result = CliRunner().invoke(main, ["chat", str(recipe)], input="What is 2 plus 2?\n")
    assert result.exit_code == 0, result.output
    out = " ".join(result.output.split())
    assert "task arithmetic, tools calculator, at most 2 steps" in out
    assert out.count("malformed turn (no_tag)") == 2
    assert out.count("-> Your last turn had no action tag.") == 2
    assert "no answer (step_cap, 2 steps)" in out and "=> " not in out
    assert out.count("question>") == 2  # asked again after the answer, then end of input
