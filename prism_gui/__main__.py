import sys

from prism_gui.app import main

sys.exit(main())
