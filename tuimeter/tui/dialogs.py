"""Confirmation dialogs: the relay, a settings write, and the second question for a write that weakens
protection. Each shows its keys and answers to them: `y` confirms, `n` or Esc cancels, and Cancel
has the focus, so a stray Enter changes nothing."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Label

from tuimeter.core.settings import PreparedWrite, SettingKind

R = TypeVar("R")


class ConfirmDialog(ModalScreen[R | None]):
    """A question with Cancel focused; `y` confirms, `n` and Esc cancel (None)."""

    BINDINGS = [
        Binding("y", "confirm", "Yes"),
        Binding("n,escape", "cancel", "Cancel", key_display="n/Esc"),
    ]

    AUTO_FOCUS = "#cancel"  # focused as the screen opens: Enter right away changes nothing

    def action_confirm(self) -> None:
        raise NotImplementedError

    def action_cancel(self) -> None:
        self.dismiss(None)

    @staticmethod
    def keys(confirm: str) -> Label:
        return Label(Text.assemble(("y", "bold"), f" {confirm} · ", ("n", "bold"), " or ", ("Esc", "bold"),
                                   " cancel · ", ("Enter", "bold"), ": the focused button"), classes="keys")

    @staticmethod
    def cancel_button() -> Button:
        return Button("Cancel  n", id="cancel")


class ConfirmRelay(ConfirmDialog[bool]):
    """The relay switches mains: ask before sending anything. `y` takes the one action offered; with the
    state unknown both are offered, so `y` only says to choose: `1` ON, `0` OFF."""

    BINDINGS = [
        Binding("1", "choose(True)", "ON", show=False),
        Binding("0", "choose(False)", "OFF", show=False),
    ]

    def __init__(self, current: bool | None) -> None:
        super().__init__()
        self.current = current
        self.offered = [on for on in (True, False) if on is not current]  # unknown: both

    def compose(self) -> ComposeResult:
        if self.current is None:
            question = "The relay state is unknown. Switch it ON or OFF?"
        else:
            question = f"Switch the relay {'OFF' if self.current else 'ON'}?"
        with Vertical(id="confirm"):
            yield Label(question, id="question")
            yield Label("This switches mains power to everything behind the meter.", id="warning")
            if len(self.offered) == 1:
                yield self.keys(f"switch {'ON' if self.offered[0] else 'OFF'}")
            else:
                yield Label(Text.assemble(("1", "bold"), " ON · ", ("0", "bold"), " OFF · ", ("n", "bold"), " or ",
                                          ("Esc", "bold"), " cancel · ", ("Enter", "bold"), ": the focused button"),
                            classes="keys")
            with Horizontal(id="buttons"):
                key = {True: "1", False: "0"} if len(self.offered) > 1 else {True: "y", False: "y"}
                if True in self.offered:
                    yield Button(f"Switch ON  {key[True]}", id="on", variant="success")
                if False in self.offered:
                    yield Button(f"Switch OFF  {key[False]}", id="off", variant="error")
                yield self.cancel_button()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss({"on": True, "off": False}.get(event.button.id or ""))

    def action_confirm(self) -> None:
        if len(self.offered) == 1:
            self.dismiss(self.offered[0])
        else:
            self.notify("the relay state is unknown: press 1 for ON or 0 for OFF (n or Esc cancels)",
                        severity="warning")

    def action_choose(self, on: bool) -> None:
        if on in self.offered:
            self.dismiss(on)


def change_text(write: PreparedWrite) -> str:
    """What a write does, in one line: `name: old → new`, or `name: press` for a one-shot action."""
    if write.setting.kind is SettingKind.BUTTON:
        return f"{write.setting.name}: press (a one-shot action)"
    return write.summary


class ConfirmSetting(ConfirmDialog[bool]):
    """First question for every settings write: the change, old → new."""

    def __init__(self, write: PreparedWrite) -> None:
        super().__init__()
        self.write = write

    def compose(self) -> ComposeResult:
        s = self.write.setting
        question = f"Press {s.name}?" if s.kind is SettingKind.BUTTON else f"Write {s.name}?"
        with Vertical(id="confirm"):
            yield Label(question, id="question")
            if s.title:
                yield Label(Text(s.title), classes="title")
            yield Label(Text(change_text(self.write)), id="change")
            if self.write.weakening is not None:
                yield Label("This change weakens protection: a second question follows.", id="warning")
            else:
                yield Label("The value shown changes when the meter reports it.", id="warning")
            yield self.keys("press it" if s.kind is SettingKind.BUTTON else "write")
            with Horizontal(id="buttons"):
                yield Button("Press  y" if s.kind is SettingKind.BUTTON else "Write  y", id="yes",
                             variant="warning" if self.write.weakening else "primary")
                yield self.cancel_button()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(True if event.button.id == "yes" else None)

    def action_confirm(self) -> None:
        self.dismiss(True)


REPEAT_GUARD = 0.5  # s: a `y` this soon after the dialog opened is the first one's key repeat, not an answer


class ConfirmWeakening(ConfirmDialog[bool]):
    """The second question for a write that weakens protection: the risk in plain words. A `y` held
    down through the first dialog would answer this one too: one that comes too soon is not taken."""

    def __init__(self, write: PreparedWrite, clock: Callable[[], float]) -> None:
        super().__init__()
        self.write = write
        self._clock = clock
        self._opened = clock()

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm", classes="danger"):
            yield Label("This weakens the meter's protection", id="question")
            yield Label(Text(self.write.weakening or ""), id="risk")
            yield Label(Text(change_text(self.write)), id="change")
            yield Label("Write it only if you know why.", id="warning")
            yield self.keys("weaken protection")
            with Horizontal(id="buttons"):
                yield Button("Weaken protection  y", id="yes", variant="error")
                yield self.cancel_button()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(True if event.button.id == "yes" else None)

    def action_confirm(self) -> None:
        if self._clock() - self._opened < REPEAT_GUARD:
            self.notify("read the risk first, then press y", severity="warning")
            return
        self.dismiss(True)
