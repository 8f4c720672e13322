"""The TUI screens."""
