"""Live progress for batches of queries and for the data loader.

A batch reports each finished query from the toolkit's loop thread; the bar (tqdm.auto:
a widget in Jupyter, text elsewhere) is drawn on the caller's thread, which polls while
it waits, so output lands in the cell that asked for it, and redraws on every poll so its
clock ticks. Failed queries are counted as failed (the bar turns red). When the batch
ends the bar goes away (nothing stale is saved in the notebook) and one line per query
tells its state, rows and time, once (stdout; the bar, like any tqdm bar, is on stderr,
and is left out where stderr is not a terminal). A single query that runs longer than
two seconds shows its elapsed time the same way. ``settings.progress`` decides (default
``"auto"``: on in a Jupyter kernel).
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any

from .settings import in_kernel, settings

__all__ = ["BatchProgress", "ElapsedTimer"]

# A single query shows its elapsed time once it has run this long.
TIMER_AFTER_SECONDS = 2.0


class _Bar:
    """A tqdm bar that leaves nothing behind: in Jupyter a widget shown under a display id
    and blanked when done (so a saved notebook keeps no stale "0/2" line); elsewhere text
    on stderr, left out where stderr is not a terminal (logs get no bar frames)."""

    def __init__(self, **options: Any) -> None:
        self._handle: Any = None
        if in_kernel():
            from IPython.display import display
            from tqdm.notebook import tqdm as widget_bar

            self.bar = widget_bar(display=False, leave=False, **options)
            if hasattr(self.bar, "container"):
                self._handle = display(self.bar.container, display_id=True)  # type: ignore[no-untyped-call]
        else:
            from tqdm import tqdm as text_bar

            self.bar = text_bar(leave=False, disable=None, **options)

    def close(self) -> None:
        self.bar.close()
        if self._handle is not None:
            self._handle.update({"text/plain": ""}, raw=True)




@dataclass
class _Outcome:
    name: str
    state: str
    rows: int | None
    seconds: float
    detail: str = ""


class BatchProgress:
    """Progress of named tasks; :meth:`record` from any thread, the rest from the caller's."""

    def __init__(self, names: list[str], *, unit: str = "query", units: str = "queries",
                 enabled: bool | None = None) -> None:
        self.names = names
        self.unit = unit
        self.units = units
        self.enabled = (settings.show_progress() if enabled is None else enabled) and len(names) > 1
        self._events: queue.SimpleQueue[_Outcome] = queue.SimpleQueue()
        self._outcomes: dict[str, _Outcome] = {}
        self._bar: Any = None
        self._started = time.perf_counter()

    def record(self, name: str, *, rows: int | None, seconds: float, error: BaseException | None = None) -> None:
        """One task ended (called on the loop thread)."""
        state = "done" if error is None else "failed"
        self._events.put(_Outcome(name, state, rows, seconds, "" if error is None else str(error)))

    def poll(self) -> None:
        """Draw what has finished since the last poll."""
        if not self.enabled:
            return
        if self._bar is None:
            self._bar = _Bar(total=len(self.names), unit=self.unit, desc=f"{len(self.names)} {self.units}")
        while True:
            try:
                outcome = self._events.get_nowait()
            except queue.Empty:
                break
            self._outcomes[outcome.name] = outcome
            self._bar.bar.update(1)
            if outcome.state == "failed":
                self._bar.bar.colour = "red"
                self._bar.bar.set_description(f"{len(self.names)} {self.units}, {self.failed} failed",
                                              refresh=False)
        self._bar.bar.refresh()  # the elapsed time ticks even while nothing finishes

    def finish(self) -> None:
        """Close the bar and print one line per task."""
        if not self.enabled:
            return
        self.poll()
        self._bar.close()
        print(self.summary())

    @property
    def failed(self) -> int:
        """How many tasks have failed so far."""
        return sum(outcome.state == "failed" for outcome in self._outcomes.values())

    @property
    def unfinished(self) -> int:
        """How many tasks had not ended when last polled."""
        return len(self.names) - len(self._outcomes)

    def summary(self) -> str:
        width = max(len(n) for n in self.names)
        lines = []
        for name in self.names:
            outcome = self._outcomes.get(name, _Outcome(name, "unfinished", None, 0.0))
            rows = "-" if outcome.rows is None else f"{outcome.rows:,}"
            seconds = f"{outcome.seconds:.2f} s" if outcome.state != "unfinished" else "-"
            line = f"{name:<{width}}  {outcome.state:<10} {rows:>10} rows  {seconds:>8}"
            lines.append(line + (f"  {outcome.detail}" if outcome.detail else ""))
        total = time.perf_counter() - self._started
        lines.append(f"{len(self._outcomes)} of {len(self.names)} {self.units} finished in {total:.2f} s")
        return "\n".join(lines)


class ElapsedTimer:
    """For one query: nothing for two seconds, then a ticking elapsed time until it ends."""

    def __init__(self, name: str = "query", *, enabled: bool | None = None) -> None:
        self.name = name
        self.enabled = settings.show_progress() if enabled is None else enabled
        self._started = time.perf_counter()
        self._bar: Any = None

    def poll(self) -> None:
        if not self.enabled or time.perf_counter() - self._started < TIMER_AFTER_SECONDS:
            return
        if self._bar is None:
            self._bar = _Bar(total=None, desc=f"{self.name} running", bar_format="{desc}: {elapsed}")
        self._bar.bar.refresh()

    def finish(self) -> None:
        if self._bar is not None:
            self._bar.close()
