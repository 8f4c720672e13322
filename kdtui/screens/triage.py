"""Triage queue: resolve, by keyboard, the answers extraction could not settle.

Every decision is written to the store's append-only triage log the moment the
key is pressed (in a worker thread); the screen moves on at once.
"""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.events import Key
from textual.message import Message
from textual.widgets import Footer, Header, Static

from kdtui.backend.queries import TriageItem, run_names, triage_item, triage_queue
from kdtui.errors import KdtuiError
from kdtui.extract import answers_match, scan_numbers
from kdtui.screens.base import StoreScreen
from kdtui.screens.dialogs import InputScreen

TYPING_CHARS = set("0123456789.-")


def format_value(value: float | None) -> str:
    if value is None:
        return "no answer"
    return f"{value:g}" if abs(value) < 1e15 else f"{value:.6g}"


class TriageScreen(StoreScreen):
    """One prediction at a time: accept a candidate, type a value, or mark no answer."""

    BINDINGS = [
        Binding("n", "no_answer", "No answer"),
        Binding("space,s", "skip", "Skip"),
        Binding("backspace,u", "undo", "Undo"),
        Binding("j", "next", "Next"),
        Binding("k", "previous", "Prev"),
        Binding("g", "gold", "Gold"),
        Binding("slash", "filter", "Filter run"),
        Binding("e", "edit", "Type value"),
        Binding("escape", "clear_typing", "Clear", show=False),
    ]

    class QueueLoaded(Message):
        def __init__(self, items: list[TriageItem], focus: tuple[int, str] | None, generation: int) -> None:
            super().__init__()
            self.items = items
            self.focus = focus
            self.generation = generation

    class RunNames(Message):
        def __init__(self, names: list[str]) -> None:
            super().__init__()
            self.names = names

    class Decided(Message):
        def __init__(self, decision_id: int, run_id: int, item_id: str, value: float | None) -> None:
            super().__init__()
            self.decision_id, self.run_id, self.item_id, self.value = decision_id, run_id, item_id, value

    class Undone(Message):
        def __init__(self, item: TriageItem | None) -> None:
            super().__init__()
            self.item = item

    def __init__(self) -> None:
        super().__init__()
        self.items: list[TriageItem] = []
        self.index = 0
        self.run_filter: str | None = None
        self.show_gold = False
        self.typing = ""
        self.decisions: list[int] = []  # this session's decisions, newest last, for undo
        self.generation = 0  # a load superseded by a newer one is dropped
        self.focus_request: tuple[int, str] | None = None  # kept until a load has shown it

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Triage — loading…", id="tr-status", classes="status")
        yield Static(id="question", classes="panel")
        with VerticalScroll(id="response-scroll", classes="panel"):
            yield Static(id="response")
        yield Static(id="candidates", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#question", Static).border_title = "Question"
        self.query_one("#response-scroll").border_title = "Response"
        self.query_one("#candidates", Static).border_title = "Answer"
        self.load()

    # ------------------------------------------------------------------ loading

    def load(self) -> None:
        self.generation += 1
        self._load(self.focus_request, self.generation)

    @work(thread=True, group="triage-load")
    def _load(self, focus: tuple[int, str] | None, generation: int) -> None:
        try:
            items = triage_queue(self.kdtui.store, self.run_filter)
            if focus is not None and not any((i.run_id, i.item_id) == focus for i in items):
                extra = triage_item(self.kdtui.store, *focus)
                if extra is not None:
                    items.insert(0, extra)
            self.post_message(self.QueueLoaded(items, focus, generation))
        except KdtuiError as exc:
            self.post_message(self.Failed(str(exc)))

    def focus_item(self, run_id: int, item_id: str) -> None:
        """Open one prediction (from the predictions browser), queued or not."""
        self.focus_request = (run_id, item_id)
        self.load()

    @on(QueueLoaded)
    def _loaded(self, message: QueueLoaded) -> None:
        if message.generation != self.generation:
            return
        if message.focus == self.focus_request:
            self.focus_request = None
        current = self.current
        # Items decided on this screen stay in the queue (counted as done), whatever the
        # store said: a reload can overtake the worker still writing the last decision.
        decided = {(i.run_id, i.item_id): i for i in self.items
                   if i.triaged and (not self.run_filter or i.run_name == self.run_filter)}
        fresh = [decided.pop((i.run_id, i.item_id), i) for i in message.items]
        self.items = sorted([*fresh, *decided.values()], key=lambda i: (i.run_id, i.item_id))
        target = message.focus or ((current.run_id, current.item_id) if current else None)
        self.index = next((i for i, it in enumerate(self.items) if (it.run_id, it.item_id) == target), 0)
        if message.focus is None and self.items and self.items[self.index].triaged:
            self._advance()
        self.show_item()

    @property
    def current(self) -> TriageItem | None:
        return self.items[self.index] if 0 <= self.index < len(self.items) else None

    # ------------------------------------------------------------------ drawing

    def show_item(self) -> None:
        item = self.current
        done = sum(i.triaged for i in self.items)
        scope = f"run {self.run_filter}" if self.run_filter else "all runs"
        status = self.query_one("#tr-status", Static)
        if item is None:
            status.update(f"Triage · {scope} · nothing needs review ({done} decided) · / to filter")
            self.query_one("#question", Static).update("")
            self.query_one("#response", Static).update("")
            self.query_one("#candidates", Static).update("")
            return
        status.update(f"Triage · {scope} · {done} done / {len(self.items) - done} remaining · "
                      f"item {self.index + 1} of {len(self.items)} · {item.run_name} · {item.item_id}")
        self.query_one("#question", Static).update(item.question)
        self.query_one("#response", Static).update(self._highlighted(item))
        self.query_one("#candidates", Static).update(self._answer_panel(item))

    def _highlighted(self, item: TriageItem) -> Text:
        """The response with every candidate number marked and the extracted one emphasised."""
        text = Text(item.response or "(empty response)")
        for number in scan_numbers(item.response):
            if answers_match(number.value, item.value):
                text.stylize("bold black on yellow", number.start, number.end)
            elif any(answers_match(number.value, c) for c in item.candidates):
                text.stylize("underline cyan", number.start, number.end)
        return text

    def _answer_panel(self, item: TriageItem) -> Text:
        text = Text()
        for key, value in enumerate(item.candidates[:9], start=1):
            style = "bold yellow" if answers_match(value, item.final_value) else "cyan"
            text.append(f" {key}", style="bold reverse")
            text.append(f" {format_value(value)}  ", style=style)
        if not item.candidates:
            text.append(" no numbers found; type a value (e) or n for no answer", style="dim")
        text.append("\n")
        state = f"decided: {format_value(item.final_value)}" if item.triaged else \
            f"extracted: {format_value(item.value)} ({item.rule})"
        text.append(f" {state}   ")
        text.append(f"gold: {format_value(item.gold)}" if self.show_gold else "gold: hidden (g)",
                    style="green" if self.show_gold else "dim")
        if self.typing:
            text.append(f"   typing: {self.typing}▏ (enter to set, esc to clear)", style="bold magenta")
        return text

    # ---------------------------------------------------------------- decisions

    def decide(self, value: float | None) -> None:
        item = self.current
        if item is None:
            return
        item.triaged, item.final_value = True, value
        self._write(item.run_id, item.item_id, value)
        self._advance()
        self.show_item()

    @work(thread=True, group="triage-write")
    def _write(self, run_id: int, item_id: str, value: float | None) -> None:
        try:
            decision = self.kdtui.store.decide(run_id, item_id, value)
            self.post_message(self.Decided(decision, run_id, item_id, value))
        except KdtuiError as exc:
            self.post_message(self.Failed(f"decision not saved: {exc}"))

    @on(Decided)
    def _decided(self, message: Decided) -> None:
        self.decisions.append(message.decision_id)

    def _advance(self) -> None:
        """Move to the next undecided item after the current one (wrapping)."""
        for step in range(1, len(self.items) + 1):
            candidate = (self.index + step) % len(self.items)
            if not self.items[candidate].triaged:
                self.index = candidate
                return

    def on_key(self, event: Key) -> None:
        item = self.current
        char = event.character or ""
        if self.typing and event.key == "enter":
            event.stop()
            self._commit_typing()
        elif item is not None and char in TYPING_CHARS and (self.typing or char not in "123456789"
                                                             or not item.candidates):
            event.stop()
            self.typing += char
            self.show_item()
        elif item is not None and char in "123456789" and char:
            event.stop()
            slot = int(char) - 1
            if slot < len(item.candidates):
                self.decide(item.candidates[slot])
            else:
                self.notify(f"no candidate {char}", severity="warning")

    def _commit_typing(self) -> None:
        text, self.typing = self.typing, ""
        try:
            self.decide(float(text))
        except ValueError:
            self.notify(f"not a number: {text!r}", severity="error")
            self.show_item()

    def action_clear_typing(self) -> None:
        self.typing = ""
        self.show_item()

    def action_edit(self) -> None:
        def done(value: str | None) -> None:
            if value:
                self.typing = value.strip()
                self._commit_typing()

        self.app.push_screen(InputScreen("Answer value", placeholder="e.g. 18 or 2.5"), done)

    def action_no_answer(self) -> None:
        self.decide(None)

    def action_skip(self) -> None:
        if self.items:
            self.index = (self.index + 1) % len(self.items)
            self.show_item()

    def action_next(self) -> None:
        self.action_skip()

    def action_previous(self) -> None:
        if self.items:
            self.index = (self.index - 1) % len(self.items)
            self.show_item()

    def action_gold(self) -> None:
        self.show_gold = not self.show_gold
        self.show_item()

    def action_undo(self) -> None:
        if self.typing:
            self.typing = self.typing[:-1]
            self.show_item()
            return
        self._undo(self.decisions.pop() if self.decisions else None)

    @work(thread=True, group="triage-write")
    def _undo(self, decision_id: int | None) -> None:
        store = self.kdtui.store
        try:
            if decision_id is None:  # after a restart: the newest decision in force
                rows = store.query("SELECT decision_id FROM triage_effective ORDER BY decision_id DESC LIMIT 1",
                                   read_only_check=False).rows
                if not rows:
                    self.post_message(self.Failed("nothing to undo"))
                    return
                decision_id = int(rows[0][0])
            row = store.query("SELECT run_id, item_id FROM triage WHERE id = ?", [decision_id],
                              read_only_check=False).rows[0]
            store.undo(decision_id)
            self.post_message(self.Undone(triage_item(store, int(row[0]), str(row[1]))))
        except KdtuiError as exc:
            self.post_message(self.Failed(f"undo failed: {exc}"))

    @on(Undone)
    def _undone(self, message: Undone) -> None:
        restored = message.item
        if restored is None:
            return
        key = (restored.run_id, restored.item_id)
        position = next((i for i, it in enumerate(self.items) if (it.run_id, it.item_id) == key), None)
        if position is None:
            self.items.insert(self.index, restored)
            position = self.index
        else:
            self.items[position] = restored
        self.index = position
        self.notify(f"undone: {restored.item_id} is back to {format_value(restored.final_value)}")
        self.show_item()

    @work(thread=True, group="triage-names")
    def action_filter(self) -> None:
        try:
            self.post_message(self.RunNames(run_names(self.kdtui.store)))
        except KdtuiError as exc:
            self.post_message(self.Failed(str(exc)))

    @on(RunNames)
    def _ask_run(self, message: RunNames) -> None:
        def chosen(value: str | None) -> None:
            if value is not None:
                self.run_filter = value.strip() or None
                self.load()

        self.app.push_screen(InputScreen("Filter by run (empty: all runs)", suggestions=message.names,
                                         value=self.run_filter or ""), chosen)

    def reload(self) -> None:
        self.load()
