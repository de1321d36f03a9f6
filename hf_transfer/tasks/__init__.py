"""The tasks a backbone is transferred to, one registry entry each (`TASKS`): `task.py` is the entry (what
differs between tasks), `registry.py` the four entries, `losses.py` the batch-mean losses some tasks train with."""

from .registry import AUTO_TASK, TASK_CHOICES, TASKS
from .task import Decision, LabelKind, Task

__all__ = ["TASKS", "TASK_CHOICES", "AUTO_TASK", "Task", "LabelKind", "Decision"]
