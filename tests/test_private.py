"""The private APIs of SQLAlchemy, pandas and Alembic behind _private.py: fail loudly when one goes."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy

import alembic
from oriza_toolkit import _private
from oriza_toolkit.config import OrizaWarning

ROOT = Path(__file__).resolve().parents[1]


def test_sqlalchemy_pools_still_keep_max_overflow() -> None:
    assert _private.HAS_MAX_OVERFLOW, (
        f"SQLAlchemy {sqlalchemy.__version__}'s QueuePool has no _max_overflow: batches would run only pool_size "
        "queries at once; update _private.pool_max_overflow and the bound in pyproject.toml")


def test_pandas_still_has_its_rows_to_columns_routine() -> None:
    assert _private.HAS_OBJECT_ARRAY_TUPLES, (
        f"pandas {pd.__version__} has no pandas._libs.lib.to_object_array_tuples: SQLite reads go through a "
        "slower path; update _private.object_matrix and the bound in pyproject.toml")
    assert _private.object_matrix([(1, "a"), (None, "b")], 2).tolist() == [[1, "a"], [None, "b"]]


def test_pandas_still_builds_frames_from_arrays(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _private.HAS_FROM_ARRAYS, (
        f"pandas {pd.__version__} has no DataFrame._from_arrays: small results are built through the public "
        "constructor; update _private.frame_from_arrays and the bound in pyproject.toml")
    arrays = [pd.array([1, None], dtype="Int32"), np.array([0.5, np.nan]), pd.array(["a", None], dtype="str")]
    fast = _private.frame_from_arrays(arrays, ["n", "x", "n"], 2)
    monkeypatch.setattr(_private, "HAS_FROM_ARRAYS", False)
    monkeypatch.setattr(_private, "_warned", set())
    with pytest.warns(OrizaWarning, match="no DataFrame._from_arrays"):
        public = _private.frame_from_arrays(arrays, ["n", "x", "n"], 2)
    pd.testing.assert_frame_equal(fast, public)
    assert fast.columns.dtype == object and list(fast.columns) == ["n", "x", "n"] and fast.iloc[1, 0] is pd.NA


def test_alembic_still_chooses_its_config_files_in_the_same_place() -> None:
    assert _private.has_alembic_config_files(), (
        f"Alembic {alembic.__version__}'s CommandLine has no _inis_from_config: -c and ALEMBIC_CONFIG are read "
        "more simply; update _private.alembic_config_files and the bound in pyproject.toml")


def test_libraries_whose_private_api_is_used_have_an_upper_bound() -> None:
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for name in ("sqlalchemy", "asyncpg", "pandas", "alembic"):
        spec = next(d for d in dependencies if d.lower().split("[")[0].split(">")[0].split("<")[0] == name)
        assert "<" in spec, f"{name} has no upper bound: {spec}"
