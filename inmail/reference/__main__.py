"""``python -m inmail.reference`` writes docs/reference.md."""

import sys

from inmail.reference import main

sys.exit(main())
