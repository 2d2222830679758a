"""``python -m coldrec``."""

import sys

from .cli import main

sys.exit(main())
