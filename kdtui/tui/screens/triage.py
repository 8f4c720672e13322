"""Triage queue: resolve, by keyboard, the answers extraction could not settle.

Every decision is recorded on the screen's stack the moment its key is pressed,
and written to the store's append-only triage log by one serial writer thread
(``triage_writer``), in key order; the screen moves on at once.  Undo takes the
newest decision of this session, by (run, item), so it can never undo another.
"""

from __future__ import annotations

from rich.text import Text
from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.events import Key
from textual.message import Message
from textual.widgets import Footer, Header, Static

from kdtui.extract import answers_match, scan_numbers
from kdtui.render import SHOWN_CHARS, as_text, format_value, visible
from kdtui.store.reads import TriageEntry, TriageItem, run_names, triage_history, triage_item, triage_queue
from kdtui.tui.screens.base import StoreScreen
from kdtui.tui.screens.dialogs import InputScreen
from kdtui.tui.screens.triage_history import TriageHistoryScreen
from kdtui.tui.screens.triage_writer import Decision, Op, SerialWriter

TYPING_CHARS = set("0123456789.-")


class TriageScreen(StoreScreen):
    """One prediction at a time: accept a candidate, type a value, or mark no answer."""

    BINDINGS = [
        Binding("n", "no_answer", "No answer"),
        Binding("backspace,u", "undo", "Undo"),
        Binding("j", "next", "Next"),
        # k, g/G and i are named where they act (`?` lists every key; the answer panel says "gold: hidden (i)"),
        # so the footer keeps the rest, and `?`, at 80 columns. j/k/g/G move through the queue as through any
        # list; the gold is `i` (inspect), so that no letter means one thing in lists and another here.
        Binding("k", "previous", "Prev", show=False),
        Binding("g", "first", "First", show=False),
        Binding("G", "last", "Last", show=False),
        Binding("i", "gold", "Gold", show=False),
        Binding("slash", "filter", "Filter"),
        Binding("h", "history", "History"),
        Binding("e", "edit", "Type"),
        Binding("escape", "clear_typing", "Clear", show=False),
    ]

    class Written(Message):
        """The serial writer finished one operation (``error`` when it failed)."""

        def __init__(self, op: Op, error: str | None) -> None:
            super().__init__()
            self.op, self.error = op, error

    def __init__(self) -> None:
        super().__init__()
        self.items: list[TriageItem] = []
        self.index = 0
        self.run_filter: str | None = None
        self.show_gold = False
        self.shown: tuple[int, str] | None = None  # the item on screen: a new one resets the per-item view
        self.typing = ""
        self.session: list[Decision] = []  # this session's decisions in force, newest last, for undo
        self.generation = 0  # a load superseded by a newer one is dropped
        self.read_began: tuple[int, int] = (0, 0)  # (decisions submitted, pending) when the last load began
        self.focus_request: tuple[int, str] | None = None  # kept until a load has shown it
        self.writer: SerialWriter | None = None
        self.reload_deferred = False  # a load arrived older than this screen's decisions: redone once written

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Triage — loading…", id="tr-status", classes="status")
        yield Static(id="question", classes="panel")
        with VerticalScroll(id="response-scroll", classes="panel"):
            yield Static(id="response")
        yield Static(id="candidates", classes="panel")
        yield Footer()

    def on_mount(self) -> None:
        def done(op: Op, error: str | None) -> None:
            self.post_message(self.Written(op, error))  # thread-safe: back on the UI thread

        self.writer = SerialWriter(self.kdtui.store, done)
        self.query_one("#question", Static).border_title = "Question"
        self.query_one("#response-scroll").border_title = "Response"
        self.query_one("#candidates", Static).border_title = "Answer"
        self.watch_store()
        self.load()

    # ------------------------------------------------------------------ loading

    def on_unmount(self) -> None:
        if self.writer is not None:
            self.writer.close()  # every decision made is written before the screen goes

    @property
    def pending_writes(self) -> int:
        return self.writer.pending if self.writer is not None else 0

    def load(self) -> None:
        self.generation += 1
        store, run, focus, generation = self.kdtui.store, self.run_filter, self.focus_request, self.generation
        # what the store could show this read: nothing pending, and no decision submitted after it began
        self.read_began = (self.writer.submitted if self.writer else 0, self.pending_writes)

        def read() -> tuple[list[TriageItem], tuple[int, str] | None, int]:
            items = triage_queue(store, run)
            if focus is not None and not any((i.run_id, i.item_id) == focus for i in items):
                extra = triage_item(store, *focus)
                if extra is not None:
                    items.insert(0, extra)
            return items, focus, generation

        self.fetch(read, self._loaded, group="triage-load", exclusive=False)

    def focus_item(self, run_id: int, item_id: str) -> None:
        """Open one prediction (from the predictions browser), queued or not."""
        self.focus_request = (run_id, item_id)
        self.load()

    def _loaded(self, loaded: tuple[list[TriageItem], tuple[int, str] | None, int]) -> None:
        items, focus, generation = loaded
        if generation != self.generation:
            return
        submitted, pending = self.read_began
        if pending or (self.writer is not None and self.writer.submitted != submitted):
            # read while decisions were on their way: it would show an undone item as still decided (and move
            # past it). Read again once they are written.
            self.reload_deferred = True
            return
        if focus == self.focus_request:
            self.focus_request = None
        current = self.current
        # Items decided on this screen stay in the queue (counted as done), whatever the
        # store said: a reload can overtake the worker still writing the last decision.
        decided = {(i.run_id, i.item_id): i for i in self.items
                   if i.triaged and (not self.run_filter or i.run_name == self.run_filter)}
        fresh = [decided.pop((i.run_id, i.item_id), i) for i in items]
        self.items = sorted([*fresh, *decided.values()], key=lambda i: (i.run_id, i.item_id))
        target = focus or ((current.run_id, current.item_id) if current else None)
        self.index = next((i for i, it in enumerate(self.items) if (it.run_id, it.item_id) == target), 0)
        # only a first load moves past a decided item: a background reload never moves the person off the item
        # they look at (one reopened from the history is decided)
        if focus is None and current is None and self.items and self.items[self.index].triaged:
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
            status.update(as_text(f"Triage · {scope} · nothing needs review ({done} decided) · / to filter"))
            self.query_one("#question", Static).update("")
            self.query_one("#response", Static).update("")
            self.query_one("#candidates", Static).update("")
            return
        if (item.run_id, item.item_id) != self.shown:
            # Each item opens at its top with the gold hidden: a reveal or a scroll of the last item must not
            # carry over (blind triage).
            self.shown, self.show_gold = (item.run_id, item.item_id), False
            self.query_one("#response-scroll", VerticalScroll).scroll_home(animate=False)
        status.update(as_text(f"Triage · {scope} · {done} done / {len(self.items) - done} remaining · "
                              f"item {self.index + 1} of {len(self.items)} · {item.run_name} · {item.item_id}"))
        self.query_one("#question", Static).update(as_text(item.question, SHOWN_CHARS))
        self.query_one("#response", Static).update(self._highlighted(item))
        self.query_one("#candidates", Static).update(self._answer_panel(item))

    def _highlighted(self, item: TriageItem) -> Text:
        """The response with every candidate number marked and the extracted one emphasised."""
        text = as_text(item.response or "(empty response)", SHOWN_CHARS)
        for number in scan_numbers(item.response[:SHOWN_CHARS]):
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
            f"extracted: {format_value(item.value)} ({visible(item.rule)})"
        text.append(f" {state}   ")
        if item.kind:  # why extraction could not settle it: "conflicting: leading 24, stated 8"
            text.append(f"{visible(item.kind.replace('_', ' '))}: {visible(item.reason)}   ", style="magenta")
        text.append(f"gold: {format_value(item.gold)}" if self.show_gold else "gold: hidden (i)",
                    style="green" if self.show_gold else "dim")
        if self.typing:
            text.append(f"   typing: {self.typing}▏ (enter to set, esc to clear)", style="bold magenta")
        return text

    # ---------------------------------------------------------------- decisions

    def decide(self, value: float | None) -> None:
        item = self.current
        if item is None or self.writer is None:
            return
        decision = Decision(item.run_id, item.item_id, value, (item.triaged, item.final_value))
        self.session.append(decision)  # recorded before the screen moves on
        item.triaged, item.final_value = True, value
        self.writer.submit(Op("decide", item.run_id, item.item_id, decision))
        self._advance()
        self.show_item()

    def _find(self, run_id: int, item_id: str) -> int | None:
        return next((i for i, it in enumerate(self.items) if (it.run_id, it.item_id) == (run_id, item_id)), None)

    @on(Written)
    def _written(self, message: Written) -> None:
        op, error = message.op, message.error
        if self.reload_deferred and self.pending_writes == 0:
            self.reload_deferred = False
            self.load()
        if error is None:
            if op.kind == "undo" and op.decision is None:  # an earlier session's decision: re-read the item
                store, run_id, item_id = self.kdtui.store, op.run_id, op.item_id
                self.fetch(lambda: triage_item(store, run_id, item_id), self._replace_item, group="triage-item")
            return
        if op.kind == "decide" and op.decision is not None:
            op.decision.failed = True
            if op.decision in self.session:
                self.session.remove(op.decision)
                position = self._find(op.run_id, op.item_id)
                if position is not None:
                    self.items[position].triaged, self.items[position].final_value = op.decision.previous
                self.show_item()
            self.show_error(f"decision on {op.item_id} not saved ({error}); it is back in the queue")
        else:
            if op.decision is not None and not op.decision.failed:  # the decision stays in force
                self.session.append(op.decision)
                position = self._find(op.run_id, op.item_id)
                if position is not None:
                    self.items[position].triaged, self.items[position].final_value = True, op.decision.value
                self.show_item()
            self.show_error(f"undo of {op.item_id} failed: {error}")

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
                self.notify(f"no candidate {char}", severity="warning", markup=False)

    def _commit_typing(self) -> None:
        text, self.typing = self.typing, ""
        try:
            self.decide(float(text))
        except ValueError:
            self.notify(f"not a number: {visible(repr(text))}", severity="error", markup=False)
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

    def _go(self, index: int) -> None:
        """Show item ``index`` of the queue (wrapping around its ends)."""
        if self.items:
            self.index = index % len(self.items)
            self.show_item()

    def action_next(self) -> None:
        """The next item, decided or not (skipping this one)."""
        self._go(self.index + 1)

    def action_previous(self) -> None:
        self._go(self.index - 1)

    def action_first(self) -> None:
        self._go(0)

    def action_last(self) -> None:
        self._go(-1)

    def action_gold(self) -> None:
        self.show_gold = not self.show_gold
        self.show_item()

    def action_undo(self) -> None:
        if self.typing:
            self.typing = self.typing[:-1]
            self.show_item()
            return
        if self.writer is None:
            return
        if self.session:
            decision = self.session.pop()
            self.writer.submit(Op("undo", decision.run_id, decision.item_id, decision))
            self._show_restored(decision.run_id, decision.item_id, decision.previous[1], decision.previous[0])
            return
        item = self.current
        if item is not None and item.triaged:  # decided in an earlier session: undo what is in force for it
            self.writer.submit(Op("undo", item.run_id, item.item_id))
            return
        self.notify("nothing to undo in this session", severity="warning", markup=False)

    def _replace_item(self, fresh: TriageItem | None) -> None:
        if fresh is not None:
            self._show_restored(fresh.run_id, fresh.item_id, fresh.final_value, fresh.triaged)

    def _show_restored(self, run_id: int, item_id: str, value: float | None, triaged: bool) -> None:
        """Show an undone item again with the value now in force."""
        position = self._find(run_id, item_id)
        if position is None:
            return  # not in this queue (another filter): the store has it right
        item = self.items[position]
        item.triaged, item.final_value = triaged, value
        self.index = position
        self.notify(f"undone: {item_id} is back to {format_value(value)}", markup=False)
        self.show_item()

    def action_history(self) -> None:
        """Every decision and undo so far (of the filtered run), newest first; Enter reopens one to change it."""
        store, run = self.kdtui.store, self.run_filter

        def shown(entries: list[TriageEntry]) -> None:
            scope = f"run {run}" if run else "all runs"
            self.app.push_screen(TriageHistoryScreen(entries, scope), self._reopen)

        self.fetch(lambda: triage_history(store, run), shown, group="triage-history")

    def _reopen(self, chosen: tuple[int, str] | None) -> None:
        if chosen is not None:
            self.focus_item(*chosen)  # decided items open too: a key changes it, u undoes it

    def action_filter(self) -> None:
        store = self.kdtui.store
        self.fetch(lambda: run_names(store), self._ask_run, group="triage-names")

    def _ask_run(self, names: list[str]) -> None:
        def chosen(value: str | None) -> None:
            if value is None:
                return
            name = value.strip() or None
            if name is not None and name not in names:  # not "nothing needs review": there is no such run
                self.notify(visible(f"no run {name!r}; runs: {', '.join(names[:8]) or 'none yet'}"),
                            severity="warning", markup=False)
                return
            self.run_filter = name
            self.load()

        self.app.push_screen(InputScreen("Filter by run (empty: all runs)", suggestions=names,
                                         value=self.run_filter or ""), chosen)

    def reload(self) -> None:
        self.load()
