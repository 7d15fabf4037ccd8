"""%alembic in a real Jupyter kernel, where an event loop is already running."""

import shutil
from pathlib import Path

import pytest

import oriza_toolkit as oz
from oriza_toolkit import migrations
from oriza_toolkit.magics.alembic import quiet

from .conftest import toolkit_shell
from .notebook import run_cells

ROOT = Path(__file__).resolve().parents[1]


def test_alembic_magic_in_a_kernel(db: oz.Database, db_url: str, tmp_path: Path) -> None:
    shutil.copy(ROOT / "alembic.ini", tmp_path / "alembic.ini")
    shutil.copytree(ROOT / "alembic", tmp_path / "alembic", ignore=shutil.ignore_patterns("__pycache__"))
    migrations.downgrade("base", db)
    cells = [
        "%load_ext oriza_toolkit",
        "%alembic upgrade head",
        "%alembic current",
        "%alembic frobnicate",
        "%alembic heads",
        "import sqlalchemy as sa\nfrom oriza_toolkit.examples.nycflights13.models import Flight\n"
        "Flight.__table__.append_column(sa.Column('seat', sa.String(4)))",
        '%alembic revision --autogenerate -m "seat {not_a_var} $HOME"',
        "%alembic upgrade head",
        "%alembic downgrade -1",
        "%alembic",
    ]
    try:
        out = run_cells(cells, tmp_path, {"DATABASE_URL": db_url}, raises={3})
    finally:
        migrations.downgrade("base", db)
    assert "behind head; run %alembic upgrade head" in out[0]
    assert "Running upgrade  -> " in out[1]
    assert "(head)" in out[2]
    assert out[3].startswith("UsageError: alembic frobnicate failed: argument") and out[3].strip().count("\n") == 0
    assert "(head)" in out[4]
    assert "Detected added column 'flights.seat'" in out[6]
    (revision,) = (tmp_path / "alembic" / "versions").glob("*seat*.py")
    assert "seat {not_a_var} $HOME" in revision.read_text()  # IPython expanded nothing
    assert "Running upgrade" in out[7] and "Running downgrade" in out[8]
    assert "1 pending: %alembic upgrade head applies them" in out[9]


def test_alembic_says_what_matters_and_everything_with_v(sqlite_url: str, tmp_path: Path,
                                                         monkeypatch: pytest.MonkeyPatch,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with toolkit_shell(sqlite_url, monkeypatch) as shell:
        shell.run_line_magic("alembic", "init migrations")
        shell.run_line_magic("alembic", 'revision -m "first"')
        capsys.readouterr()
        shell.run_line_magic("alembic", "upgrade head")
        quiet = capsys.readouterr().out
        shell.run_line_magic("alembic", "downgrade base")
        shell.run_line_magic("alembic", "-v upgrade head")
        loud = capsys.readouterr().out
    assert quiet.startswith("Running upgrade  -> ") and quiet.rstrip().endswith(", first")
    assert "INFO" not in quiet and "Context impl" not in quiet
    assert "INFO  [alembic.runtime.migration] Context impl SQLiteImpl." in loud
    assert "INFO  [alembic.runtime.migration] Running upgrade  -> " in loud


def test_quiet_keeps_detections_and_runs() -> None:
    output = ("INFO  [alembic.runtime.migration] Context impl PostgresqlImpl.\n"
              "INFO  [alembic.runtime.migration] Will assume transactional DDL.\n"
              "INFO  [alembic.autogenerate.compare] Detected added column 'flights.seat'\n"
              "WARNI [alembic.env] something odd\n"
              "Generating /p/versions/1a_x.py ...  done\n")
    assert quiet(output) == ("Detected added column 'flights.seat'\nWARNI [alembic.env] something odd\n"
                             "Generating /p/versions/1a_x.py ...  done\n")
