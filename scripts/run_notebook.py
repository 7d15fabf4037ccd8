"""Execute a notebook top to bottom in a real kernel, save it executed, print its summary.

Usage: python scripts/run_notebook.py notebooks/quickstart.ipynb [output.ipynb]
The outputs of cells tagged ``summary`` are printed.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def main(source: str, target: str | None = None) -> None:
    path = Path(source).resolve()
    out = Path(target) if target else path.parent / "executed" / path.name
    notebook = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(notebook, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": str(path.parent)}}).execute()
    out.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(notebook, out)
    for cell in notebook.cells:
        if "summary" in cell.get("metadata", {}).get("tags", []):
            for output in cell.get("outputs", []):
                sys.stdout.write(output.get("text", ""))
    print(f"executed {path.name} in {time.perf_counter() - start:.1f} s -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
