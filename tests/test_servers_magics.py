"""%sql and %alembic on every server set-up, in-process, with the pasted URL as DATABASE_URL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from IPython.core.interactiveshell import InteractiveShell

from .conftest import toolkit_shell
from .test_servers import SCENARIOS


@pytest.fixture(params=SCENARIOS)
def shell(request: pytest.FixtureRequest, servers: dict[str, str],
          monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    if request.param not in servers:
        pytest.skip(f"no {request.param} server with TEST_DATABASE_URL")
    with toolkit_shell(servers[request.param], monkeypatch) as ipython:
        yield ipython


def test_sql_magic_binds_parameters_and_batches(shell: InteractiveShell) -> None:
    shell.user_ns["wanted"] = 3
    shell.run_line_magic("sql", "-o one select ':wanted' as lit, :wanted as n;")
    assert shell.user_ns["one"].iloc[0].tolist() == [":wanted", 3]
    shell.run_cell_magic("sql", "", "-- name: a\nselect :wanted + 1 as n\n-- name: b\nselect 'b' as s -- note\n")
    assert shell.user_ns["a"].n[0] == 4 and shell.user_ns["b"].s[0] == "b"
