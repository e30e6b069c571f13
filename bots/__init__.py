"""Built-in bots: one thin module each over `leo_runtime`. Importing this package registers them."""

from . import change_detector, file_reader, filter  # noqa: F401


