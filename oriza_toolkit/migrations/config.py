"""Finding and building the Alembic ``Config``, as the ``alembic`` command does.

The configuration is, in order: ``config=`` (an Alembic ``Config``, or the path of an
``alembic.ini`` or ``pyproject.toml``); ``-c/--config`` on a command line (an ini file
and/or a ``pyproject.toml``); the ``ALEMBIC_CONFIG`` environment variable; else the
nearest ``alembic.ini`` at or above the working directory, with the ``pyproject.toml``
beside it (whose ``[tool.alembic]`` table Alembic reads too). ``script_location`` is made
absolute, so commands work from any folder below the project.
"""

from __future__ import annotations

import argparse
import io
import os
from pathlib import Path

from alembic.config import Config

from .._private import alembic_config_files
from ..config import project_root
from ..errors import MigrationError

__all__ = ["ConfigArg", "ToolkitConfig", "alembic_config"]

ConfigArg = str | Path | Config | None

_TEMPLATES = Path(__file__).parent.parent / "templates"


class ToolkitConfig(Config):
    """An Alembic ``Config`` whose ``init`` templates are the toolkit's (the async env.py)."""

    def get_template_directory(self) -> str:
        return str(_TEMPLATES)


def alembic_config(config: ConfigArg = None, *, stdout: io.StringIO | None = None,
                   options: argparse.Namespace | None = None) -> Config:
    """The project's Alembic ``Config`` (see the module docstring for which one).

    ``options`` are a parsed Alembic command line (its ``-c``, ``-n`` and ``-x``);
    ``stdout`` receives what the commands print.

    Example::

        >>> alembic_config("analysis/alembic.ini").get_main_option("target_metadata")  # doctest: +SKIP
        'analysis.models:Base.metadata'
    """
    if isinstance(config, Config):
        if stdout is not None:
            config.stdout = stdout
            config.output_buffer = stdout
        config.attributes["configure_logger"] = False
        return config
    ini, toml = _files(config, options)
    stdout = stdout or io.StringIO()
    section = getattr(options, "name", None) or "alembic"
    made = Config(str(ini), ini_section=section, toml_file=str(toml) if toml else None, cmd_opts=options,
                  stdout=stdout, output_buffer=stdout)
    if ini.is_file() and not made.file_config.has_section(section):
        raise MigrationError("config", f"no [{section}] section in {ini}")
    location = made.get_alembic_option("script_location")
    if not isinstance(location, str) or not location:
        location = "alembic"
    base = ini.parent if ini.is_file() else toml.parent if toml else Path.cwd()
    if not Path(location).is_absolute() and ":" not in location:
        made.set_main_option("script_location", str(base / location))
    made.attributes["configure_logger"] = False
    return made


def _files(config: str | Path | None, options: argparse.Namespace | None) -> tuple[Path, Path | None]:
    """The ini file and the pyproject.toml to read (either may not exist, not both)."""
    given = options is not None and any(getattr(options, "config", None) or ())
    if config is not None:
        path = Path(config)
        toml, ini = (path, path.parent / "alembic.ini") if path.name == "pyproject.toml" \
            else (path.parent / "pyproject.toml", path)
        where = str(path)
    elif given or os.environ.get("ALEMBIC_CONFIG"):
        toml_name, ini_name = alembic_config_files(options)
        ini, toml = Path(ini_name), Path(toml_name)
        where = " or ".join(dict.fromkeys((str(ini), str(toml))))
    else:
        root = project_root()
        ini, toml = root / "alembic.ini", root / "pyproject.toml"
        where = f"{root} or any folder above it"
    has_toml = toml.is_file() and "[tool.alembic]" in toml.read_text(errors="replace")
    if not ini.is_file() and not has_toml:
        raise MigrationError("config", f"no alembic.ini in {where}; set one up with init()")
    return ini, toml if has_toml else None
