"""``python -m prism_gui.cli``: the same as the ``prism`` script."""

import sys

from prism_gui.cli import main

sys.exit(main())
