"""`python -m zentitle_stripe`: the `zentitle-stripe` command, for when the script is not on
`PATH` (a venv not activated, `pipx run`, a container without entry points)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
