"""Execute notebook cells in a real Jupyter kernel (nbclient) and read their outputs."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat.v4 import new_code_cell, new_notebook


def run_cells(cells: list[str], cwd: Path, env: dict[str, str], *, raises: set[int] = frozenset()) -> list[str]:
    """Run ``cells`` in a fresh python3 kernel in ``cwd``; return each cell's text output.

    Cells whose index is in ``raises`` may fail (tagged ``raises-exception``).
    """
    notebook = new_notebook(cells=[
        new_code_cell(source, metadata={"tags": ["raises-exception"]} if i in raises else {})
        for i, source in enumerate(cells)
    ])
    _execute(notebook, cwd, env)
    return [_text(cell) for cell in notebook.cells]


def run_notebook(path: Path, env: dict[str, str]) -> nbformat.NotebookNode:
    """Execute the notebook at ``path`` (in its own directory) and return it with outputs."""
    notebook = nbformat.read(path, as_version=4)
    _execute(notebook, path.parent, env)
    return notebook


def _execute(notebook: nbformat.NotebookNode, cwd: Path, env: dict[str, str]) -> None:
    """The kernel inherits this process's environment, so ``env`` is set around its start."""
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        NotebookClient(notebook, timeout=600, kernel_name="python3",
                       resources={"metadata": {"path": str(cwd)}}).execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)


def _text(cell: nbformat.NotebookNode) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output["text"])
        elif output.get("output_type") == "error":
            parts.append(f"{output['ename']}: {output['evalue']}")
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)
