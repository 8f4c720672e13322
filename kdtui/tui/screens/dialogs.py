"""Small modal dialogs shared by the screens."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import Input, Label, Static

from kdtui.render import as_text, visible


class InputScreen(ModalScreen[str | None]):
    """Ask for one line of text; Enter returns it, Escape returns None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, prompt: str, placeholder: str = "", value: str = "",
                 suggestions: list[str] | None = None) -> None:
        super().__init__()
        self.prompt, self.placeholder, self.value = prompt, placeholder, value
        self.suggestions = suggestions or []

    def compose(self) -> ComposeResult:
        with Vertical(id="input-box"):
            yield Label(self.prompt)
            suggester = SuggestFromList(self.suggestions, case_sensitive=False) if self.suggestions else None
            yield Input(value=self.value, placeholder=self.placeholder, suggester=suggester, id="dialog-input")
            if self.suggestions:
                shown = ", ".join(self.suggestions[:8]) + (" …" if len(self.suggestions) > 8 else "")
                yield Label(as_text(f"→ completes: {shown}", style="dim"))

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(self.completed(event.value))

    def completed(self, typed: str) -> str:
        """What Enter means: the completion shown (the first suggestion the typed text begins, as the suggester
        draws it), else the text as typed."""
        text = typed.strip()
        if not text or text in self.suggestions:
            return typed
        return next((s for s in self.suggestions if s.lower().startswith(text.lower())), typed)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmScreen(ModalScreen[bool]):
    """A yes/no question: y confirms, n or escape declines."""

    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(id="input-box"):
            yield Label(as_text(self.question))
            yield Label(as_text("y: yes · n / esc: no", style="dim"))

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class DetailScreen(ModalScreen[None]):
    """A read-only view of one long text (a prediction in full)."""

    BINDINGS = [Binding("escape,q,enter", "close", "Close")]

    def __init__(self, title: str, body: Text | str) -> None:
        super().__init__()
        self.title_text, self.body = title, body

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="detail-box") as box:
            box.border_title = as_text(self.title_text)
            yield Static(self.body)

    def action_close(self) -> None:
        self.dismiss(None)


def _visible_strings(table: Any) -> Any:
    """String columns with control characters made visible (see ``kdtui.render.visible``)."""
    import pyarrow as pa

    columns = []
    for column in table.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pa.array([None if v is None else visible(v, 2_000) for v in column.to_pylist()], pa.string())
        columns.append(column)
    return pa.table(columns, names=[visible(n) for n in table.column_names])


async def replace_grid(old: Any, table: Any, cursor_type: Any = "cell") -> Any:
    """Swap a fast data grid for one showing ``table`` (an Arrow table), keeping id and focus.

    The grid draws only the rows on screen, so a 10k-row result paints at once.
    """
    from textual_fastdatatable import ArrowBackend

    from kdtui.tui.screens.grid import Grid

    focused = old.has_focus
    parent = old.parent
    siblings = list(parent.children)
    following = siblings[siblings.index(old) + 1] if siblings.index(old) + 1 < len(siblings) else None
    shown = _visible_strings(table)
    # Labels given as Text: the grid would parse plain strings as markup ("[/INST]" raises, "[a-z]" vanishes).
    grid = Grid(backend=ArrowBackend(shown), id=old.id, cursor_type=cursor_type,
                     column_labels=[Text(name) for name in shown.column_names],
                     max_column_content_width=60, render_markup=False)
    await old.remove()
    await parent.mount(grid, before=following)
    if focused:
        grid.focus()
    return grid
