"""`swirl-lite doctor [RECIPE]`: what this machine has, against what swirl-lite was tested with.

Reports Python, torch, CUDA and the GPU with its free memory, the versions of the GPU stack against
the tested pins in `constraints/`, whether the model hub answers, and for a recipe a rough estimate of
peak memory against what is free, with advice when it will not fit.

The estimate is arithmetic, not a measurement (`memory_estimate.py` lists its parts): peak memory
of each stage (generate, filter, train, evaluate) in the dtype `precision.choose` picks for the card.
Beside it, the fit `swirl-lite plan` predicts for this card (or the one `--capability` names): the
wall time and the peak memory against the card's. `swirl-lite bench gpu` measures the real numbers.
"""

from __future__ import annotations

import importlib.metadata as md
import platform
from pathlib import Path

from swirl_lite.config import Recipe
from swirl_lite.memory_estimate import StageMemory, stage_memory

PINS_FILE = Path(__file__).resolve().parent / "data" / "constraints-gpu.txt"
STACK = ("torch", "transformers", "peft", "trl", "accelerate", "bitsandbytes", "datasets", "unsloth", "unsloth-zoo", "vllm")
def tested_pins(path: Path = PINS_FILE) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if "==" in line:
            name, version = line.split("==", 1)
            pins[name.strip().lower()] = version.strip()
    return pins


def installed(name: str) -> str | None:
    try:
        return md.version(name)
    except md.PackageNotFoundError:
        return None


def estimate_memory(recipe: Recipe, capability: tuple[int, int] | None | str = "detect") -> list[StageMemory] | None:
    """Peak memory per stage on a card of `capability` ("detect": this machine; None: CPU)."""
    from swirl_lite.precision import choose

    dtype = choose(recipe.model, capability).dtype
    return stage_memory(recipe, 4 if dtype == "float32" else 2)


def hub_reachable(timeout: float = 3.0) -> bool:
    import httpx

    try:
        return httpx.head("https://huggingface.co", timeout=timeout, follow_redirects=True).status_code < 500
    except httpx.HTTPError:
        return False


def run_doctor(recipe: Recipe | None, check_hub: bool = True,
               capability: tuple[int, int] | None | str = "detect") -> list[tuple[str, str, str]]:
    """Rows (check, value, verdict) for the summary table; verdict is ok / warn / info."""
    rows: list[tuple[str, str, str]] = [("python", platform.python_version(), "ok")]
    try:
        import torch
    except ImportError:
        return [*rows, ("torch", "not installed", "warn: pip install torch")]
    rows.append(("torch", torch.__version__, "ok"))
    free_gb = None
    if torch.cuda.is_available():
        free, total = torch.cuda.mem_get_info()
        free_gb = free / 1024**3
        rows.append(("GPU", torch.cuda.get_device_name(0), "ok"))
        rows.append(("GPU memory free", f"{free_gb:.1f} / {total / 1024**3:.1f} GiB", "ok"))
    else:
        rows.append(("GPU", "none (no CUDA device)", "info: CPU only; fine for the quickstart, slow beyond"))
    pins = tested_pins()
    for name in STACK[1:]:
        version = installed(name)
        pin = pins.get(name)
        if version is None:
            optional = name in ("unsloth", "unsloth-zoo", "vllm")
            rows.append((name, "not installed", "info: optional" if optional else "warn: pip install -e ."))
        elif pin and version != pin:
            rows.append((name, version, f"warn: tested GPU stack pins {pin} (constraints-gpu.txt)"))
        else:
            rows.append((name, version, "ok"))
    if check_hub:
        reachable = hub_reachable()
        rows.append(("model hub", "reachable" if reachable else "unreachable",
                     "ok" if reachable else "info: use local paths and model.name: embedded"))
    if recipe is not None:
        from swirl_lite.precision import choose

        chosen = choose(recipe.model, capability)
        rows.append(("precision", chosen.dtype, f"info: {chosen.reason}"))
        rows.extend(_memory_rows(recipe, free_gb, capability))
        rows.append(plan_row(recipe, capability))
    return rows


def plan_row(recipe: Recipe, capability: tuple[int, int] | None | str) -> tuple[str, str, str]:
    """`swirl-lite plan`'s fit on this machine's card ("detect") or the one of `capability`."""
    from swirl_lite.errors import UsageError
    from swirl_lite.plan import CARDS, card_for, hours, predict

    name = ""
    if capability == "detect":
        import torch

        from swirl_lite.precision import device_capability

        capability = device_capability()
        name = torch.cuda.get_device_name(0) if capability else ""
    key = card_for(capability, name)
    try:
        plan = predict(recipe, key)
    except UsageError as exc:
        return (f"plan ({key})", "-", f"warn: {exc}")
    stages = ", ".join(f"{s.stage} {hours(s.seconds)}" for s in plan.stages if s.seconds >= 60)
    value = f"{hours(plan.total_seconds)}, peak {plan.peak_gb:.1f} GiB ({stages})"
    card = CARDS[key]
    if plan.fits:
        return (f"plan ({key})", value, f"ok: fits a {card.name}'s {card.memory_gb:g} GiB (predicted; "
                                        f"swirl-lite plan RECIPE --gpu {key})")
    return (f"plan ({key})", value, f"warn: over a {card.name}'s {card.memory_gb:g} GiB at the limits; lower "
                                    "generate.batch_size or model.max_seq_length")


def _memory_rows(recipe: Recipe, free_gb: float | None, capability) -> list[tuple[str, str, str]]:
    stages = estimate_memory(recipe, capability)
    if stages is None:
        return [("peak memory (est.)", "unknown model size", "info: run swirl-lite bench gpu")]
    top = max(stages, key=lambda s: s.total)
    value = f"{top.total:.1f} GiB ({top.stage}; per stage below)"
    if free_gb is None or capability != "detect":
        return [("peak memory (est.)", value, "info: no GPU here to compare with" if free_gb is None else "info")]
    if top.total <= 0.9 * free_gb:
        return [("peak memory (est.)", value, f"ok: fits in {free_gb:.1f} GiB free")]
    advice = []
    if not recipe.model.load_in_4bit:
        advice.append("model.load_in_4bit=true")
    if not recipe.train.gradient_checkpointing:
        advice.append("train.gradient_checkpointing=true")
    advice.append("lower train.per_device_batch_size (raise gradient_accumulation_steps)")
    advice.append("lower generate.batch_size or model.max_seq_length")
    return [("peak memory (est.)", value, f"warn: may not fit {free_gb:.1f} GiB free; try " + ", ".join(advice))]
