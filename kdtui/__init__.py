"""kdtui: a terminal workstation for LLM knowledge-distillation research."""

__version__ = "0.1.0"
