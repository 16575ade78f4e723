"""`python -m cosplace_xs` is the `cosplace-xs` command."""

import sys

from cosplace_xs.cli import main

sys.exit(main())
