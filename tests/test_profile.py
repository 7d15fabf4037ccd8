"""db.profile / %oriza profile: per-column aggregates computed by the server, checked against
pandas on the same rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import oriza_toolkit as oz

from .conftest import toolkit_shell

ROWS = 1_000


@pytest.fixture
def people(db: oz.Database, table: str) -> str:
    rng = np.random.default_rng(7)
    frame = pd.DataFrame({
        "age": pd.array([None if i % 17 == 0 else int(v) for i, v in enumerate(rng.integers(18, 90, ROWS))],
                        dtype="Int64"),
        "score": np.where(np.arange(ROWS) % 11 == 0, np.nan, rng.normal(50, 10, ROWS)),
        "city": pd.Series([None if i % 13 == 0 else ["Oslo", "Lima", "Pune"][i % 3 if i % 5 else 0]
                           for i in range(ROWS)], dtype="str"),
        "member": pd.Series([None if i % 7 == 0 else i % 4 == 0 for i in range(ROWS)], dtype=object),
    })
    db.write(frame, table)
    return table


def test_profile_matches_the_rows(db: oz.Database, people: str) -> None:
    profile = db.profile(people)
    rows = db.query(f"select * from {people}")
    assert list(profile.index) == ["age", "score", "city", "member"]
    assert profile.type.tolist() == ["number", "number", "text", "bool"]
    for column in profile.index:
        values = rows[column].dropna()
        assert profile.loc[column, "count"] == len(values), column
        assert profile.loc[column, "nulls"] == ROWS - len(values), column
        assert profile.loc[column, "distinct"] == values.nunique(), column
    for column in ("age", "score"):
        values = rows[column].dropna().astype(float)
        assert profile.loc[column, "min"] == values.min() and profile.loc[column, "max"] == values.max()
        assert profile.loc[column, "mean"] == pytest.approx(values.mean(), rel=1e-12)
        if db.dialect == "postgresql":
            assert profile.loc[column, "std"] == pytest.approx(values.std(), rel=1e-9)
            for label, fraction in (("25%", 0.25), ("50%", 0.5), ("75%", 0.75)):
                assert profile.loc[column, label] == pytest.approx(values.quantile(fraction), rel=1e-12)
        else:  # SQLite has neither aggregate: left empty, never guessed
            assert profile.loc[column, ["std", "25%", "50%", "75%"]].isna().all()
    top = rows.city.value_counts()
    assert (profile.loc["city", "top"], profile.loc["city", "freq"]) == (top.index[0], top.iloc[0])
    assert (profile.loc["city", "min"], profile.loc["city", "max"]) == ("Lima", "Pune")
    assert profile.loc["member", "freq"] == rows.member.value_counts().iloc[0]


def test_profile_of_a_missing_table_is_one_line(db: oz.Database) -> None:
    with pytest.raises(oz.QueryError, match=r"^query 'profile' failed: no table named 'no_such_table'$"):
        db.profile("no_such_table")


def test_oriza_profile_shows_it(db_url: str, people: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    with toolkit_shell(db_url, monkeypatch) as shell:
        shell.run_line_magic("oriza", f"profile {people}")
    shown = capsys.readouterr().out
    assert "distinct" in shown and "city" in shown and "Oslo" in shown
