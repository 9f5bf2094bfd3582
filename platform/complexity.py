"""The MAC/parameter counter moved to ``models.complexity`` (models import nothing of ours);
this old import path re-exports it."""

from models.complexity import Complexity, complexity, count_macs, count_params

__all__ = ["Complexity", "complexity", "count_macs", "count_params"]
