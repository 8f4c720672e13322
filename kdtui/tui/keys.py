"""The TUI's key language, in one place: the keys that mean the same on every screen.

Screens add their own keys, but never give a global key another meaning (a test checks every screen and dialog):
``q`` always goes back (a dialog closes, else the app quits), ``?`` always lists the keys of where you are, and
F1-F8 always switch screens. Lazygit and k9s are the models.
"""

from __future__ import annotations

from textual.binding import Binding

# F5 stays the SQL console's "run" (as in every SQL tool); Training takes the next free key.
SCREEN_KEYS = {"f1": "leaderboard", "f2": "triage", "f3": "predictions", "f4": "sql", "f6": "captures",
               "f7": "training", "f8": "jobs"}

# Footers show a screen's own keys, then `?`; the F-keys are in each screen's title and in `?`'s list, so an
# 80-column footer keeps the keys that matter there.
GLOBAL_BINDINGS: list[Binding | tuple[str, str] | tuple[str, str, str]] = [
    # Not priority: a focused editor or input takes `?` and `q` as text first.
    Binding("question_mark", "toggle_keys", "Keys"),
    Binding("q", "back", "Back/quit", show=False),
    *(Binding(key, f"mode('{mode}')", mode.capitalize(), priority=True, show=False)
      for key, mode in SCREEN_KEYS.items()),
    Binding("ctrl+q", "quit", "Quit", priority=True, show=False),
]

# key -> the action it runs, on every screen; a screen or dialog may bind one of these only to the same action.
GLOBAL_ACTIONS = {b.key: b.action for b in GLOBAL_BINDINGS if isinstance(b, Binding)}
# A dialog's own "close" is what `q` means there.
BACK_ACTIONS = {"back", "close", "cancel", "answer(False)"}


def key_conflicts(bindings: list[Binding | tuple[str, str] | tuple[str, str, str]]) -> list[str]:
    """Each binding in ``bindings`` that gives a global key another meaning, as ``"key: action"``."""
    found = []
    for binding in bindings:
        if not isinstance(binding, Binding):
            binding = Binding(binding[0], binding[1])
        for key in (k.strip() for k in binding.key.split(",")):
            expected = GLOBAL_ACTIONS.get(key)
            if expected is None or binding.action == expected:
                continue
            if key == "q" and binding.action in BACK_ACTIONS:
                continue
            found.append(f"{key}: {binding.action}")
    return found
