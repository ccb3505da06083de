"""``python -m inmail.cli``: the same as the ``inmail`` console script."""

import sys

from inmail.cli import main

sys.exit(main())
