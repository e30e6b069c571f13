"""Built-in bots: one thin module each over `leo_runtime`. Importing this package registers them."""

from . import change_detector, file_reader, filter, stream_writer  # noqa: F401


