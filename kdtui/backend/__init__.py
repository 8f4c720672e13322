"""Workers and recipes. Nothing here imports Textual: the TUI is a thin client."""
