"""Visible progress for long kernel calls: a ticking status line (no torch import here).

A notebook cell that loads models or computes bands blocks the kernel; :func:`busy` shows a
widget whose text counts the seconds from a background thread, so the user (and the browser
test, which fails a cell that runs 20 s without visible change) sees that work is going on::

    with busy("loading the shipped model") as b:
        model = load(...)
        b.say("predicting")
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager


class Busy:
    """A status line ``what ... 3 s`` that ticks while the context runs.

    Args:
        what: what is being done.
        tick: seconds between updates.

    Attributes:
        widget: the ``ipywidgets.HTML`` shown; its text ends with "done in X s" at exit.
    """

    def __init__(self, what: str, tick: float = 0.5) -> None:
        import ipywidgets as w

        self.what, self.tick = what, tick
        self.widget = w.HTML(f"<i>{what} ...</i>", layout=w.Layout(margin="0 0 4px 0"))
        self.start = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tgkit-busy", daemon=True)

    def say(self, what: str) -> None:
        """Change the text (the elapsed time keeps counting)."""
        self.what = what
        self._show()

    def _show(self) -> None:
        dt = time.monotonic() - self.start
        self.widget.value = f"<i>&#8987; {self.what} ... {dt:.0f} s</i>"

    def _run(self) -> None:
        while not self._stop.wait(self.tick):
            self._show()

    def __enter__(self) -> Busy:
        from IPython.display import display

        display(self.widget)
        self.start = time.monotonic()
        self._show()
        self._thread.start()
        return self

    def __exit__(self, exc_type, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        dt = time.monotonic() - self.start
        state = "failed" if exc_type is not None else "done"
        self.widget.value = f"{self.what}: {state} in {dt:.1f} s"


@contextmanager
def busy(what: str, tick: float = 0.5):
    """Context manager form of :class:`Busy` (displays its widget in the current cell)."""
    with Busy(what, tick) as b:
        yield b
