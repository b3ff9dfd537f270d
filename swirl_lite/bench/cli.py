"""`swirl-lite bench tools|rollout|judge|train|gpu|linear`: the benchmark commands, one click group.

Only click is imported at module level, so adding this group to the main CLI keeps `swirl-lite
--help` instant; each command imports its benchmark module when it runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from swirl_lite.architectures import ARCHES
from swirl_lite.cli_helpers import SET_HELP, fail, load_or_exit, write_json

RUN_ERRORS = (ValueError, FileNotFoundError, RuntimeError, OSError)
ARCH_CHOICES = tuple(ARCHES)
ARCH_HELP = ("A random-weight model of this architecture at the benches' size (gemma3: Gemma 3 270M's "
             "layers, sliding window 512; llama: SmolLM2 135M's), built offline, instead of the model. "
             "Without it: the model given (default the embedded SmolLM2-135M, a Llama).")


@click.group()
def bench() -> None:
    """Benchmarks that print speed and memory numbers."""


@bench.command(name="tools")
@click.option("--hotpotqa", "hotpotqa_path", type=click.Path(exists=True, dir_okay=False),
              help="HotpotQA file (original or hub layout): measure recall@1/@5 of supporting paragraphs.")
@click.option("--recipe", type=click.Path(dir_okay=False), help="Benchmark search on this recipe's data.")
@click.option("--docs", "n_docs", default=5000, show_default=True, help="Synthetic corpus size (no --recipe/--hotpotqa).")
@click.option("--queries", "n_queries", default=1000, show_default=True, help="Queries timed per mode.")
@click.option("--calls", "n_calls", default=5000, show_default=True, help="Calculator expressions timed per mode.")
def bench_tools(hotpotqa_path: str | None, recipe: str | None, n_docs: int, n_queries: int, n_calls: int) -> None:
    """Calls/s of each tool, single vs batched, and BM25 index build time."""
    from swirl_lite.bench import tools as tb
    from swirl_lite.console import console, summary_table

    calc = tb.bench_calculator(n_calls)
    console.print(summary_table("calculator", [
        ("expressions", calc["calls"]),
        ("single calls/s", calc["single_per_s"]),
        ("batched calls/s", calc["batched_per_s"]),
    ]))

    source, examples, docs = "synthetic", [], []
    if hotpotqa_path or recipe:
        from swirl_lite.config import DataConfig
        from swirl_lite.tasks import get_task

        data = DataConfig(task="hotpotqa", path=hotpotqa_path) if hotpotqa_path else load_or_exit(recipe).data
        try:
            task = get_task(data)
            examples = task.load(data.split, limit=data.limit, seed=data.seed, shuffle=data.shuffle)
            docs = task.corpus(examples)
        except (ValueError, FileNotFoundError) as exc:
            fail(exc)
        queries = [ex.question for ex in examples]
        source = hotpotqa_path or recipe
    if not examples or not docs:
        docs, queries = tb.synthetic_corpus(n_docs)
    queries = (queries * (n_queries // max(len(queries), 1) + 1))[:n_queries]
    s = tb.bench_search(docs, queries)
    console.print(summary_table("search (BM25, top-1)", [
        ("corpus", Path(source).name if source != "synthetic" else "synthetic"),
        ("documents", s["docs"]),
        ("index build s", s["build_s"]),
        ("cached index load s", s["cached_load_s"]),
        ("queries timed", s["queries"]),
        ("single queries/s", s["single_per_s"]),
        ("batched queries/s", s["batched_per_s"]),
    ]))
    if docs and any(p.get("supporting") for ex in examples for p in ex.meta.get("paragraphs", ())):
        rec = tb.hotpotqa_recall(examples, docs)
        console.print(summary_table("supporting-paragraph retrieval (question as query)", [
            ("questions", rec["questions"]),
            ("hit@1 (a supporting paragraph is the top result)", rec["hit@1"]),
            ("hit@5", rec["hit@5"]),
            ("recall@1 (share of supporting paragraphs found)", rec["recall@1"]),
            ("recall@5", rec["recall@5"]),
        ]))


@bench.command(name="rollout")
@click.option("--recipe", "recipe_path", type=click.Path(dir_okay=False), help="Recipe (default: embedded model, arithmetic).")
@click.option("--set", "overrides", multiple=True, help=SET_HELP + " Without --recipe: applied to the default.")
@click.option("--batch", default=16, show_default=True, help="The batch size compared with batch 1.")
@click.option("--questions", default=16, show_default=True, help="Questions (one trajectory each).")
@click.option("--max-steps", default=3, show_default=True, help="Step cap (0: the recipe's or task's).")
@click.option("--max-new-tokens", default=48, show_default=True, help="Tokens per action (0: the recipe's).")
@click.option("--threads", type=int, help="torch CPU threads (1 is steadier on a busy machine).")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), help=ARCH_HELP)
@click.option("--compare-openai", metavar="URL", help="Also run the rollouts through this OpenAI-compatible server "
              "(e.g. http://127.0.0.1:8000/v1) serving the same model.")
@click.option("--openai-model", help="--compare-openai: the served model's name (default: generate.openai.model).")
@click.option("--chunk-tokens", default=16, show_default=True,
              help="hf: tokens per round in the continuous run (0: whole turns).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers here.")
def bench_rollout(recipe_path, overrides, batch, questions, max_steps, max_new_tokens, threads, arch,
                  compare_openai, openai_model, chunk_tokens, json_path) -> None:
    """Rollout tokens/s and trajectories/s at batch 1 vs batch B on the same questions and model."""
    from swirl_lite.bench.rollout import DEFAULT_RECIPE, run_bench, with_arch

    recipe = load_or_exit(recipe_path, overrides, default=DEFAULT_RECIPE)
    try:
        with with_arch(recipe, arch) as recipe:
            result = run_bench(recipe, batch, questions, max_steps or None, max_new_tokens or None, threads,
                               compare_openai, openai_model, chunk_tokens)
    except RUN_ERRORS as exc:
        fail(exc)
    write_json(json_path, {**result, "arch": arch} if arch else result)


@bench.command(name="judge")
@click.option("--model", "models", multiple=True, default=("embedded",), show_default=True,
              help="Judge model(s): hub id, folder or 'embedded' (repeatable); 'none' for the reference judge only.")
@click.option("--mode", "modes", multiple=True, type=click.Choice(["logprob", "generate"]),
              default=("logprob", "generate"), show_default=True, help="Scoring modes to measure.")
@click.option("--math", "n_math", default=16, show_default=True, help="Math problems (6 labelled steps each).")
@click.option("--batch-size", default=8, show_default=True, help="Steps per forward pass, both modes.")
@click.option("--generate-limit", default=24, show_default=True, help="Steps judged in generate mode (slow).")
@click.option("--max-new-tokens", default=96, show_default=True, help="generate mode: rationale budget.")
@click.option("--seed", default=0, show_default=True, help="Seed of the math generator and subsets.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers here.")
def bench_judge(models, modes, n_math, batch_size, generate_limit, max_new_tokens, seed, json_path) -> None:
    """Judge accuracy per mode and model on labelled steps, agreement with the reference judge, steps/s."""
    from swirl_lite.bench.judge import run_bench

    names = [m for m in models if m != "none"]
    try:
        rows = run_bench(names, list(modes), n_math, batch_size, generate_limit, max_new_tokens, seed)
    except RUN_ERRORS as exc:
        fail(exc)
    write_json(json_path, rows)


@bench.command(name="train")
@click.option("--model", default="embedded", show_default=True, help="Policy: hub id, folder or 'embedded'.")
@click.option("--steps", default=None, type=int, help="RL steps per run (default: 2 bench, 8 --learn).")
@click.option("--4bit", "load_in_4bit", is_flag=True, help="Load policy and judge in 4-bit (needs CUDA).")
@click.option("--learn", is_flag=True, help="Run the learning check: held-out reward before vs after RL.")
@click.option("--reward", type=click.Choice(["format", "reference"]), default="format", show_default=True,
              help="--learn: the reward trained on and measured.")
@click.option("--seed", default=0, show_default=True, help="--learn: training and sampling seed.")
@click.option("--demonstrations", default=1, show_default=True,
              help="Demonstrations in each state (longer states gain more from sharing them).")
@click.option("--arch", type=click.Choice(ARCH_CHOICES), help=ARCH_HELP)
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers here.")
@click.option("--settled", is_flag=True, help="Time the loss with a settled state (all its actions scored "
              "the same) against none settled, in one process.")
@click.option("--sampling", is_flag=True, help="Time GRPO's sampling with every state in one generate call "
              "against one call per state, in one process.")
@click.option("--loss", is_flag=True, help="Time the GRPO loss four ways (one batch, length runs, no state "
              "gradient, sampled states) in one process, with how far their gradients differ.")
@click.option("--states", "n_states", default=2, show_default=True, help="--settled/--sampling/--loss: states per step.")
@click.option("--one", type=click.Choice(["per-row", "policy-only", "shared", "separate"]), hidden=True)
def bench_train(model, steps, load_in_4bit, learn, reward, seed, demonstrations, arch, json_path, settled, sampling,
                loss, n_states, one) -> None:
    """Samples/s and peak memory of RL training: judge shared vs separate, state shared vs per row."""
    from swirl_lite.bench import train as bt

    try:
        if settled:
            from swirl_lite.bench.settled import bench_settled

            result = bench_settled(model, states=n_states, demonstrations=demonstrations)
        elif loss:
            from swirl_lite.bench.loss import bench_loss

            result = bench_loss(model, states=n_states, demonstrations=demonstrations)
        elif sampling:
            from swirl_lite.bench.sampling import bench_sampling

            result = bench_sampling(model, states=n_states, demonstrations=demonstrations)
        elif one:
            result = bt.run_one(one, model, steps or 2, load_in_4bit, demonstrations)
        elif learn:
            from swirl_lite.bench.learn import learn as learn_check

            result = learn_check(model, steps or 8, seed, reward)
        else:
            result = bt.bench(model, steps or 2, load_in_4bit, demonstrations, arch)
    except RUN_ERRORS as exc:
        fail(exc)
    write_json(json_path, result)


@bench.command(name="linear")
@click.option("--model", default="embedded", show_default=True, help="Model: hub id, folder or 'embedded'.")
@click.option("--rows", default="1,4,16,32", show_default=True, help="Row counts timed per layer shape.")
@click.option("--decode-rows", default=16, show_default=True,
              help="Rows decoded greedily through the model (a multiple of the states, 8 rows each; rounded down).")
@click.option("--tokens", default=32, show_default=True, help="Tokens decoded per row.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the numbers here.")
def bench_linear(model, rows, decode_rows, tokens, json_path) -> None:
    """CPU linear layers with few rows: F.linear vs (weight @ x.T).T, per layer and in decoding."""
    from swirl_lite.bench.linear import bench_linear as run

    counts = _lengths(rows, "row counts", "1,4,16,32")
    if not counts:
        raise click.BadParameter("give at least one row count (e.g. 1,4,16,32)", param_hint="--rows")
    if decode_rows < 1 or tokens < 1:
        fail(ValueError("--decode-rows and --tokens must be at least 1"))
    try:
        result = run(model, counts, decode_rows, tokens)
    except RUN_ERRORS as exc:
        fail(exc)
    write_json(json_path, result)


def _lengths(value: str | None, what: str = "token counts", example: str = "600,3000") -> tuple[int, ...] | None:
    """`600,3000` -> (600, 3000); a usage error (exit 2) for anything else."""
    if not value:
        return None
    try:
        lengths = tuple(int(n) for n in value.split(","))
    except ValueError:
        lengths = ()
    if not lengths or min(lengths) < 1:
        raise click.BadParameter(f"{value!r}: give positive {what}, comma-separated (e.g. {example})")
    return lengths


@bench.command(name="gpu")
@click.option("--t4", is_flag=True, help="Cap memory at 15 GiB and compute as a T4 does (refuses bf16).")
@click.option("--tiny", is_flag=True, help="2-layer models, short states: the same steps on any device.")
@click.option("--out", default="runs/gpu-check", show_default=True, help="Folder for the runs and gpu_check.json.")
@click.option("--family", "families", multiple=True, type=click.Choice(sorted(ARCHES)),
              help="Only this family (repeatable; default: all).")
@click.option("--tokenizer", default=None, metavar="PATH_OR_ID",
              help="BPE tokenizer to build the families' tokenizers from (default: the embedded model's).")
@click.option("--states", default=None, metavar="N,N,...", callback=lambda ctx, param, v: _lengths(v),
              help="State lengths in tokens to generate from (default 600,1500,3000; --tiny 96,160).")
@click.option("--train-steps", type=click.IntRange(min=1), default=None, help="GRPO steps (default 3; --tiny 1).")
def bench_gpu(t4, tiny, out, families, tokenizer, states, train_steps) -> None:
    """Random-weight Gemma 3 1B / Llama 3.2 1B through the 4-bit recipe path: seconds, peak VRAM."""
    from swirl_lite.bench.gpu import run_check

    try:
        report = run_check(out, t4=t4, tiny=tiny, families=tuple(ARCHES[f] for f in families or ARCHES),
                           tokenizer=tokenizer, states=states, train_steps=train_steps)
    except RUN_ERRORS as exc:
        fail(exc)
    sys.exit(0 if report["ok"] else 1)

