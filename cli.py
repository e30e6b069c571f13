"""`leo`, run from a checkout: ``python cli.py ...`` (installed, the command is ``leo``).

A thin entry over `leo_runtime.cli`, where each command group lives in its own module; this
file is not installed, so no top-level ``cli`` module lands in site-packages.
"""

from leo_runtime.cli import main

if __name__ == "__main__":
    main()
