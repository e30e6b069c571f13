"""Built-in bots: one thin module each over `leo_runtime`. Importing this package registers them."""

from . import file_reader, filter  # noqa: F401

LEO_BUILTINS = True  # lets the registry tell this package from a project's own bots/ folder
