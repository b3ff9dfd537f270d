"""Import paths in recipes: `package.module:name` names user code (a task, a tool, a grader).

The current directory is put on `sys.path` first, so a module next to the recipe works from the
console script. Every failure is one line naming the recipe field (`what`) and the fix.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any


def import_object(spec: str, what: str) -> Any:
    """`package.module:attr` -> the attribute; a one-line error naming `what` otherwise."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise ValueError(f"{what}: {spec!r} is not an import path of the form package.module:name")
    if os.getcwd() not in sys.path:  # `my_tools:MyTool` next to the recipe works from a console script
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"{what}: cannot import {module_name!r} ({exc})") from None
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"{what}: module {module_name!r} has no {attr!r}") from None
