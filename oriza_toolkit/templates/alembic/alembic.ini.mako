# Alembic configuration, scaffolded by oriza_toolkit.
[alembic]
script_location = ${script_location}
prepend_sys_path = .
path_separator = os
# The models autogenerate compares with the database: module:attribute.
target_metadata = 
# sqlalchemy.url is intentionally a placeholder; env.py takes DATABASE_URL from the
# environment, else .env, else oriza_toolkit's embedded SQLite file.
sqlalchemy.url = driver://user:pass@localhost/dbname

[loggers]
keys = root,sqlalchemy,alembic

[handlers]
keys = console

[formatters]
keys = generic

[logger_root]
level = WARNING
handlers = console
qualname =

[logger_sqlalchemy]
level = WARNING
handlers =
qualname = sqlalchemy.engine

[logger_alembic]
level = INFO
handlers =
qualname = alembic

[handler_console]
class = StreamHandler
args = (sys.stderr,)
level = NOTSET
formatter = generic

[formatter_generic]
format = %(levelname)-5.5s [%(name)s] %(message)s
datefmt = %H:%M:%S
