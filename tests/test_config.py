from pathlib import Path

import pytest

import oriza_toolkit as oz
from oriza_toolkit.config import database_url, project_root


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "alembic.ini").write_text("[alembic]\n")
    (tmp_path / "notebooks").mkdir()
    monkeypatch.chdir(tmp_path / "notebooks")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    return tmp_path


def test_default_is_sqlite_beside_alembic_ini(project: Path) -> None:
    url = database_url()
    assert url.drivername == "sqlite+aiosqlite"
    assert url.database == str(project / "oriza.db")
    assert project_root() == project


def test_dotenv_found_walking_up(project: Path) -> None:
    (project / ".env").write_text("DATABASE_URL=postgresql://u:s3cret@dbhost:5433/analysis\n")
    url = database_url()
    assert (url.drivername, url.host, url.port, url.database) == ("postgresql+asyncpg", "dbhost", 5433, "analysis")


def test_environment_beats_dotenv_and_argument_beats_both(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (project / ".env").write_text("DATABASE_URL=postgresql://u:p@fromdotenv/db\n")
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@fromenv/db")
    assert database_url().host == "fromenv"
    assert database_url("postgresql://u:p@fromarg/db").host == "fromarg"


@pytest.mark.parametrize(
    ("given", "driver"),
    [("postgresql://h/d", "postgresql+asyncpg"), ("postgres://h/d", "postgresql+asyncpg"),
     ("sqlite:///x.db", "sqlite+aiosqlite"), ("postgresql+asyncpg://h/d", "postgresql+asyncpg")],
)
def test_drivers_become_async(given: str, driver: str) -> None:
    assert database_url(given).drivername == driver


def test_password_masked_everywhere() -> None:
    db = oz.connect("postgresql://analyst:hunter2@localhost:1/x")
    try:
        assert "hunter2" not in repr(db) and "hunter2" not in str(db)
        assert "analyst:***@" in repr(db)
        assert "hunter2" not in repr(db.engine)
    finally:
        db.close()


def test_unparseable_url_is_one_clear_error() -> None:
    with pytest.raises(oz.ConfigError, match="cannot parse the database URL"):
        database_url("not a url at all")
