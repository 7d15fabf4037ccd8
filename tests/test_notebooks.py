"""Every notebook in notebooks/ runs top to bottom in a real kernel, on PostgreSQL and SQLite.

They run in a scratch copy of the project, since schema_changes writes a revision file.
"""

import shutil
from pathlib import Path

import pytest

from .notebook import run_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("name", [p.name for p in NOTEBOOKS], ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(name: str, db_url: str, tmp_path: Path) -> None:
    shutil.copy(ROOT / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(ROOT / "alembic", tmp_path / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "notebooks").mkdir()
    shutil.copy(ROOT / "notebooks" / name, tmp_path / "notebooks" / name)
    versions_before = sorted(p.name for p in (tmp_path / "alembic" / "versions").glob("*.py"))

    notebook = run_notebook(tmp_path / "notebooks" / name, {"DATABASE_URL": db_url})

    errors = [o for c in notebook.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert errors == []
    summary = [c for c in notebook.cells if "summary" in c.get("metadata", {}).get("tags", [])]
    assert summary and summary[0]["outputs"][0]["text"].strip()
    assert sorted(p.name for p in (tmp_path / "alembic" / "versions").glob("*.py")) == versions_before
    if name == "quickstart.ipynb":
        text = summary[0]["outputs"][0]["text"]
        assert "tables loaded: 5 (367,687 rows); queries run: 19;" in text
        images = [o for c in notebook.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
        assert len(images) == 1
