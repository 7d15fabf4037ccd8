import subprocess
import sys

import oriza_toolkit as oz


def test_all_is_sorted_and_complete() -> None:
    not_api = {"annotations", "TYPE_CHECKING"}
    public_modules = {"connections"}  # oz.connections.register(...), as documented
    public = {n for n in dir(oz) if not n.startswith("_") and (not _is_module(n) or n in public_modules)
              and n not in not_api}
    assert sorted(oz.__all__) == oz.__all__
    assert set(oz.__all__) - {"__version__"} == public


def _is_module(name: str) -> bool:
    return type(getattr(oz, name)).__name__ == "module"


def test_import_does_not_import_ipython_or_pandas_io_drivers() -> None:
    code = "import sys, oriza_toolkit; print('IPython' in sys.modules, 'nest_asyncio2' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
