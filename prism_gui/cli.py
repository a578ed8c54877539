"""``prism``: the headless command line of PRISM Studio.

    prism world               sample the Digits prior and score it with the teacher
    prism train-teacher       rebuild the Digits teacher (resources/digits_teacher)
    prism train-prior         rebuild the Digits prior (resources/digits_prior)
    prism evaluate-prior      re-measure the prior's quality and redraw its sample grids
"""

from __future__ import annotations

import argparse
import sys


def _world(rest):
    from prism_gui.app import main as app_main

    return app_main(["--headless", *rest])


def _delegate(module: str):
    def run(rest):
        import importlib

        importlib.import_module(module).main(rest)
        return 0

    return run


COMMANDS = {
    "world": (_world, "sample the Digits prior and score it with the teacher (headless)"),
    "train-teacher": (_delegate("prism_gui.engine.digits.train_teacher"), "rebuild the Digits teacher"),
    "train-prior": (_delegate("prism_gui.engine.digits.train_prior"), "rebuild the Digits prior"),
    "evaluate-prior": (_delegate("prism_gui.engine.digits.evaluate_prior"), "measure the prior, draw grids"),
}


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="prism", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("command", choices=sorted(COMMANDS), help="what to run; `prism COMMAND -h` for its options")
    if not argv or argv[0] in ("-h", "--help"):
        p.print_help()
        return 0 if argv else 2
    if argv[0] not in COMMANDS:
        p.error(f"unknown command {argv[0]!r}; choose one of {', '.join(sorted(COMMANDS))}")
    return COMMANDS[argv[0]][0](argv[1:]) or 0


if __name__ == "__main__":
    sys.exit(main())
