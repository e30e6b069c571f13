"""Built-in bots: one thin module each over `leo_runtime`. Importing this package registers them."""

from . import batcher, change_detector, file_reader, filter, stream_writer, webhook_sender  # noqa: F401


