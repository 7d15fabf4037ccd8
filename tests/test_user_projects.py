"""Migrations in a user's own project, not this repository: the seed's env.py and Alembic's
async template unchanged, and a project set up from scratch with %alembic init, each in
a real kernel, on a database of the test's own (PostgreSQL and SQLite)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import alembic
import oriza_toolkit as oz

from .notebook import run_cells

FIXTURES = Path(__file__).parent / "fixtures"
ALEMBIC = str(Path(sys.executable).parent / "alembic")
APP_MODELS = '''
from sqlalchemy import ForeignKey, Numeric, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class Customer(Base):
    __tablename__ = "customers"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))


class Order(Base):
    __tablename__ = "orders"
    id: Mapped[int] = mapped_column(primary_key=True)
    customer_id: Mapped[int] = mapped_column(ForeignKey("customers.id"))
    amount: Mapped[float] = mapped_column(Numeric(10, 2))
'''
APP_DB = "import os\n\nfrom dotenv import load_dotenv\n\nload_dotenv()\nDATABASE_URL = os.environ['DATABASE_URL']\n"
CYCLE = [
    "%load_ext oriza_toolkit",
    '%alembic revision --autogenerate -m "init"',
    "%alembic upgrade head",
    "import oriza_toolkit as oz\nprint(sorted(oz.connect().tables()))",
    "%alembic current",
    "%alembic downgrade -1",
    "%alembic current",
]


@pytest.fixture(params=["postgresql", "sqlite"])
def url(request: pytest.FixtureRequest, scratch_database: Callable[[], str], tmp_path: Path) -> str:
    return scratch_database() if request.param == "postgresql" else f"sqlite+aiosqlite:///{tmp_path / 'user.db'}"


def _app(project: Path) -> None:
    (project / "app").mkdir()
    (project / "app" / "__init__.py").write_text("")
    (project / "app" / "models.py").write_text(APP_MODELS)
    (project / "app" / "db.py").write_text(APP_DB)


def _assert_cycle(out: list[str]) -> None:
    assert "Detected added table 'customers'" in out[1] and "Detected added table 'orders'" in out[1]
    assert "Running upgrade  -> " in out[2] and ", init" in out[2]
    tables = out[3]
    assert "'customers'" in tables and "'orders'" in tables and "flights" not in tables
    assert "(head)" in out[4]
    assert "Running downgrade" in out[5]
    assert "(head)" not in out[6]


def test_the_seed_env_py_unchanged(url: str, tmp_path: Path) -> None:
    _app(tmp_path)
    shutil.copy(FIXTURES / "seed" / "alembic.ini", tmp_path / "alembic.ini")
    (tmp_path / "alembic" / "versions").mkdir(parents=True)
    shutil.copy(FIXTURES / "seed" / "env.py", tmp_path / "alembic" / "env.py")
    shutil.copy(Path(alembic.__file__).parent / "templates" / "async" / "script.py.mako", tmp_path / "alembic")
    _assert_cycle(run_cells(CYCLE, tmp_path, {"DATABASE_URL": url}))


def test_alembics_async_template(url: str, tmp_path: Path) -> None:
    _app(tmp_path)
    made = subprocess.run([ALEMBIC, "init", "-t", "async", "alembic"], cwd=tmp_path, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    ini = tmp_path / "alembic.ini"
    ini.write_text(ini.read_text().replace("driver://user:pass@localhost/dbname", url.replace("%", "%%")))
    env = tmp_path / "alembic" / "env.py"
    # The one line the template asks its user to edit.
    env.write_text(env.read_text().replace("target_metadata = None",
                                           "from app.models import Base\ntarget_metadata = Base.metadata"))
    logging_kept = ("import logging\nroot = logging.getLogger()\nbefore = (root.level, list(root.handlers))\n"
                    "%alembic heads\nprint(before == (root.level, list(root.handlers)), "
                    "logging.getLogger('alembic').propagate)")
    out = run_cells([*CYCLE, logging_kept], tmp_path, {"DATABASE_URL": url})
    _assert_cycle(out)
    assert out[7].strip().endswith("True True")  # the kernel's logging as it was


def test_a_new_project_from_scratch(url: str, tmp_path: Path) -> None:
    _app(tmp_path)
    cells = [
        "%load_ext oriza_toolkit",
        "%alembic init migrations --metadata app.models:Base.metadata",
        '%alembic revision --autogenerate -m "init"',
        "%alembic upgrade head",
        "%alembic",
        "import oriza_toolkit as oz\nprint(sorted(oz.connect().tables()))",
    ]
    out = run_cells(cells, tmp_path, {"DATABASE_URL": url})
    assert out[0] == ""  # no alembic.ini yet: nothing to say
    assert "Creating directory" in out[1] and (tmp_path / "migrations" / "env.py").is_file()
    assert "Please edit" not in out[1]  # the toolkit's env.py needs no edit
    assert "target_metadata = app.models:Base.metadata" in (tmp_path / "alembic.ini").read_text()
    assert "Detected added table 'customers'" in out[2]
    assert "Running upgrade  -> " in out[3]
    assert "up to date" in out[4]
    assert "'customers'" in out[5] and "flights" not in out[5] and "airlines" not in out[5]
    # The same project from a shell, as the seed's commands run it.
    env = {**os.environ, "DATABASE_URL": url}
    for command in (["downgrade", "base"], ["upgrade", "head"], ["current"]):
        done = subprocess.run([ALEMBIC, *command], cwd=tmp_path, capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
    assert "(head)" in done.stdout
    with oz.connect(url) as db:
        assert {"customers", "orders"} <= set(db.tables()) and "flights" not in db.tables()


def test_two_processes_upgrading_at_once_both_succeed(scratch_database: Callable[[], str]) -> None:
    url = scratch_database()
    root = Path(__file__).resolve().parents[1]
    code = textwrap.dedent("""
        from oriza_toolkit import migrations
        result = migrations.upgrade("head")
        print("ran" if "Running upgrade" in result.output else "nothing to do", result.current)
    """)
    env = {**os.environ, "DATABASE_URL": url}
    runs = [subprocess.Popen([sys.executable, "-c", code], cwd=root, env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=120) for run in runs]
    assert all(run.returncode == 0 for run in runs), [err for _, err in outputs]
    said = sorted(out.split()[0] + " " + out.split()[1] for out, _ in outputs)
    assert said[0].startswith("nothing") and said[1].startswith("ran"), said
    with oz.connect(url) as db:
        assert "flights" in db.tables()


def test_an_edit_to_the_models_in_an_open_kernel_is_seen(url: str, tmp_path: Path) -> None:
    _app(tmp_path)
    edited = APP_MODELS.replace("    name: Mapped[str] = mapped_column(String(80))\n",
                                "    name: Mapped[str] = mapped_column(String(80))\n"
                                "    seat_class: Mapped[str | None] = mapped_column(String(20))\n")
    cells = [
        "%load_ext oriza_toolkit",
        "%alembic init migrations --metadata app.models:Base.metadata",
        '%alembic revision --autogenerate -m "init"',
        "%alembic upgrade head",
        "import app.models\nprint(sorted(app.models.Customer.__table__.columns.keys()))",  # the kernel holds them
        f"from pathlib import Path\n_ = Path('app/models.py').write_text({edited!r})",  # edited and saved
        "%alembic check",
        '%alembic revision --autogenerate -m "add seat_class"',
        "%alembic upgrade head",
        "%alembic",
    ]
    out = run_cells(cells, tmp_path, {"DATABASE_URL": url}, raises={6})
    assert out[4].strip() == "['id', 'name']"
    assert "UsageError" in out[6] and "add_column customers.seat_class" in out[6]
    assert "Detected added column 'customers.seat_class'" in out[7]
    revision = next((tmp_path / "migrations" / "versions").glob("*add_seat_class.py")).read_text()
    assert "op.add_column('customers'" in revision or "batch_op.add_column(sa.Column('seat_class'" in revision
    assert "Running upgrade" in out[8] and "up to date" in out[9]
