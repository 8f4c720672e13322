"""The TUI's screens: thin clients over kdtui.backend."""
