"""Task registry: `get_task(data_cfg)` turns the recipe's `data:` section into a Task.

Built-in names: gsm8k, hotpotqa, musique, arithmetic, multihop, custom. A user task can be given by import
path, `data.task: my_pkg.tasks:MyTask` (a class taking the DataConfig, implementing `base.Task`).
"""

from __future__ import annotations

from swirl_lite.config import DataConfig
from swirl_lite.tasks.arithmetic import Arithmetic
from swirl_lite.tasks.base import Document, Example, Grade, Task
from swirl_lite.tasks.custom import CustomTask
from swirl_lite.tasks.gsm8k import GSM8K
from swirl_lite.tasks.hotpotqa import HotpotQA
from swirl_lite.tasks.multihop import Multihop
from swirl_lite.tasks.musique import MuSiQue

TASKS: dict[str, type] = {
    "gsm8k": GSM8K,
    "hotpotqa": HotpotQA,
    "musique": MuSiQue,
    "arithmetic": Arithmetic,
    "multihop": Multihop,
    "custom": CustomTask,
}

__all__ = ["TASKS", "Document", "Example", "Grade", "Task", "get_task"]


def get_task(data_cfg: DataConfig | str) -> Task:
    """The task named by `data_cfg.task` (or a bare task name), configured by the rest of `data_cfg`."""
    if isinstance(data_cfg, str):
        data_cfg = DataConfig(task=data_cfg)
    name = data_cfg.task
    if ":" in name:
        from swirl_lite.imports import import_object

        cls = import_object(name, "data.task")
        task = cls(data_cfg)
        if not isinstance(task, Task):
            raise ValueError(f"data.task: {name!r} does not implement the Task protocol (swirl_lite.tasks.base)")
        return task
    if name not in TASKS:
        raise ValueError(f"data.task: unknown task {name!r}; valid: {', '.join(TASKS)} or package.module:Class")
    return TASKS[name](data_cfg)
