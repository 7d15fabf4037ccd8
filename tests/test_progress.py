import pytest

import oriza_toolkit as oz


def test_batch_reports_each_query_state_rows_and_time(db: oz.Database, capsys: pytest.CaptureFixture[str]) -> None:
    db.query_many({"three": "select 1 as x union all select 2 union all select 3", "bad": "select nope",
                   "one": "select 1 as x"}, errors="return", progress=True)
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["three", "done", "3"]
    assert lines[1].split()[:2] == ["bad", "failed"] and "'bad' failed" in lines[1]
    assert lines[2].split()[:3] == ["one", "done", "1"]
    assert lines[3].startswith("3 of 3 queries finished in ")
    assert err == ""  # stderr is not a terminal here: no bar frames in the log, only the summary


def test_single_query_and_disabled_progress_print_nothing(db: oz.Database,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    db.query("select 1 as x")
    db.query_many({"a": "select 1 as x"})
    db.query_many({"a": "select 1 as x", "b": "select 2 as x"}, progress=False)
    previous = oz.settings.progress
    oz.settings.progress = False
    try:
        db.query_many({"a": "select 1 as x", "b": "select 2 as x"})
    finally:
        oz.settings.progress = previous
    assert capsys.readouterr() == ("", "")
