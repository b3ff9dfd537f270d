"""What every click command shares: loading a recipe (or a default one) with `--set` overrides,
failing with one line, and writing a `--json` file. Only click-free stdlib at module level, so the
command modules that import this stay instant to load (`swirl-lite --help`)."""

from __future__ import annotations

import sys
from typing import NoReturn

SET_HELP = "Override a recipe value, e.g. --set generate.temperature=0.7 (repeatable)."
DEBUG_KEY = "swirl_lite.debug"  # set in click's context meta by `swirl-lite --debug`


def load_or_exit(recipe_path: str | None, overrides: tuple[str, ...] = (), default: dict | None = None):
    """The recipe at `recipe_path`, or `default` (a recipe dict) when there is none, with the
    overrides applied either way. A bad recipe prints every problem, one line each, and exits 2."""
    import copy

    from swirl_lite.config import RecipeError, apply_overrides, build_recipe, load_recipe

    try:
        if recipe_path:
            return load_recipe(recipe_path, overrides)
        return build_recipe(apply_overrides(copy.deepcopy(default or {}), list(overrides)), "--set")
    except RecipeError as exc:
        recipe_exit(exc)


def recipe_exit(exc) -> NoReturn:
    """A RecipeError's problems, one line each, then exit 2."""
    from swirl_lite.console import error

    for line in exc.errors:
        error(line)
    sys.exit(2)


def fail(exc: Exception | str) -> NoReturn:
    """One line for the error (`errors.explain`: what failed, where, what to do) and exit 2 for a
    usage problem or 1 for a runtime one; with `--debug` or SWIRL_LITE_DEBUG=1, the traceback."""
    from swirl_lite.console import error
    from swirl_lite.errors import debug_requested, explain

    if isinstance(exc, str):
        error(exc)
        sys.exit(1)
    import click

    ctx = click.get_current_context(silent=True)
    if debug_requested() or (ctx is not None and ctx.meta.get(DEBUG_KEY)):
        raise exc
    message, code = explain(exc)
    error(message)
    sys.exit(code)


def write_json(path: str | None, data) -> None:
    """Write `data` as indented JSON to `path` (atomically); nothing when `path` is None."""
    if path:
        import json

        from swirl_lite.runs import write_text_atomic

        write_text_atomic(path, json.dumps(data, indent=2))
