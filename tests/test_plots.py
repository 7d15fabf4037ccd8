"""Plots computed in SQL (plots.py, %sqlplot): the numbers drawn equal those of the rows."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import numpy as np
import pandas as pd
import pytest
from IPython.core.error import UsageError

import oriza_toolkit as oz

from .conftest import toolkit_shell

matplotlib.use("Agg")


@pytest.fixture
def measures(db: oz.Database, table: str) -> str:
    rng = np.random.default_rng(3)
    values = np.concatenate([rng.lognormal(0, 1, 3_000), [np.nan] * 7])  # skewed; NaN is written as NULL
    db.write(pd.DataFrame({"v": values, "k": rng.choice(["x", "y", "z", "w"], len(values), p=[.4, .3, .2, .1])}),
             table)
    return table


def test_histogram_counts_are_the_rows_counts(db: oz.Database, measures: str) -> None:
    values = db.query(f"select v from {measures}").v.dropna().to_numpy()
    for bins in (1, 7, 50):
        edges, counts = db.plot.histogram_counts(measures, "v", bins=bins)
        expected, expected_edges = np.histogram(values, bins=bins)
        assert counts == expected.tolist(), bins
        assert np.allclose(edges, expected_edges, rtol=1e-12)
    drawn = db.plot.histogram(measures, "v", bins=7).patches[0].get_data()  # a StepPatch: values, edges
    assert drawn.values.tolist() == np.histogram(values, bins=7)[0].tolist()


def test_bar_counts_and_boxplot_quartiles(db: oz.Database, measures: str) -> None:
    rows = db.query(f"select v, k from {measures}")
    counts = db.plot.value_counts(measures, "k", top=3)
    assert counts.to_dict() == rows.k.value_counts().head(3).to_dict()
    assert [bar.get_height() for bar in db.plot.bar(measures, "k").patches] == rows.k.value_counts().tolist()
    if db.dialect == "postgresql":
        stats = db.plot.box_stats(measures, "v")
        values = rows.v.dropna()
        q1, med, q3 = values.quantile([0.25, 0.5, 0.75])
        assert (stats["q1"], stats["med"], stats["q3"]) == pytest.approx((q1, med, q3), rel=1e-12)
        inside = values[(values >= q1 - 1.5 * (q3 - q1)) & (values <= q3 + 1.5 * (q3 - q1))]
        assert (stats["whislo"], stats["whishi"]) == (inside.min(), inside.max())
        assert db.plot.boxplot(measures, "v") is not None
    else:
        with pytest.raises(ValueError, match=r"^a boxplot needs quartiles, which sqlite cannot compute in SQL"):
            db.plot.boxplot(measures, "v")


def test_all_equal_and_empty_columns_plot(db: oz.Database, table: str) -> None:
    db.write(pd.DataFrame({"v": [2.5, 2.5, 2.5, None]}), table)
    assert db.plot.histogram_counts(table, "v", bins=4) == ([2.5, 3.5, 4.5, 5.5, 6.5], [3, 0, 0, 0])
    db.execute(f"delete from {table}")
    assert db.plot.histogram_counts(table, "v", bins=4) == ([], [])


def test_sqlplot_magic(db_url: str, measures: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with toolkit_shell(db_url, monkeypatch) as shell:
        ax = shell.run_line_magic("sqlplot", f"histogram --table {measures} --column v --bins 5")
        assert ax.get_xlabel() == "v"
        shell.run_cell_magic("sql", "--save big --no-execute", f"select * from {measures} where v > 1")
        ax = shell.run_line_magic("sqlplot", "bar --table big --column k --top 2")
        big = oz.connect("default").query(f"select k from {measures} where v > 1").k.value_counts()
        assert [bar.get_height() for bar in ax.patches] == big.head(2).tolist()
        with pytest.raises(UsageError, match=r"^%sqlplot draws histogram, boxplot, bar, pie, not 'violin'$"):
            shell.run_line_magic("sqlplot", f"violin --table {measures} --column v")
        with pytest.raises(UsageError, match=r"^bins must be a whole number of at least 1, not 0$"):
            shell.run_line_magic("sqlplot", f"histogram --table {measures} --column v --bins 0")
