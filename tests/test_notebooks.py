"""Every notebook in notebooks/ runs top to bottom in a real kernel, on PostgreSQL and SQLite."""

from pathlib import Path

import pytest

from .notebook import run_notebook

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path: Path, db_url: str) -> None:
    notebook = run_notebook(path, {"DATABASE_URL": db_url})
    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    summary = [c for c in notebook.cells if "summary" in c.get("metadata", {}).get("tags", [])]
    assert summary and "queries run:" in summary[0]["outputs"][0]["text"]
