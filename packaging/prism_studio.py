"""The frozen program's entry point (PyInstaller): PRISM Studio's window, or its command line
when the first argument is ``cli`` (``prism-studio cli demo --quick``; the ``prism`` script
beside the executable does this).  Processes that torchrun starts for a multi-process run
re-execute this program with ``cli``, since a bundle has no ``python script.py``."""

import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # DataLoader workers and other spawned children re-enter here
    from prism_gui.app import main

    sys.exit(main())
