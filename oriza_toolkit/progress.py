"""Live progress for batches of queries and for the data loader.

A batch reports each finished query from the toolkit's loop thread; the bar (tqdm.auto:
a widget in Jupyter, text elsewhere) is drawn on the caller's thread, which polls while
it waits, so output lands in the cell that asked for it. When the batch ends, one line
per query tells its state, rows and time (on stdout; the bar, like any tqdm bar, goes
to stderr). ``settings.progress = False`` turns it off.
"""

from __future__ import annotations

import queue
import time
from dataclasses import dataclass
from typing import Any

from .settings import settings

__all__ = ["BatchProgress"]


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
            from tqdm.auto import tqdm

            self._bar = tqdm(total=len(self.names), unit=self.unit, desc=f"{len(self.names)} {self.units}")
        while True:
            try:
                outcome = self._events.get_nowait()
            except queue.Empty:
                break
            self._outcomes[outcome.name] = outcome
            self._bar.update(1)

    def finish(self) -> None:
        """Close the bar and print one line per task."""
        if not self.enabled:
            return
        self.poll()
        self._bar.close()
        print(self.summary())

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
