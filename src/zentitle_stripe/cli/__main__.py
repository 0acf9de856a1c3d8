"""`python -m zentitle_stripe.cli`, the same as the `zentitle-stripe` script."""

import sys

from . import main

sys.exit(main())
