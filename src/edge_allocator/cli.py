"""The one ``edge-allocator`` entry point; each sub-command lives with the package it drives.

Sub-command modules are imported only when chosen, so ``edge-allocator dev up`` never pays
for importing torch.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

# sub-command -> (module with ``configure(parser)`` and ``run(args) -> int``, help text)
COMMANDS: dict[str, tuple[str, str]] = {
    "dev": ("edge_allocator.devcluster.cli", "start, stop and inspect the local dev cluster"),
    "train": ("edge_allocator.training.train_cli", "train a placement policy in the simulator"),
    "evaluate": ("edge_allocator.training.evaluate_cli", "compare policies in the simulator"),
    "operator": ("edge_allocator.operator.cli", "run the EdgeTask operator (kopf)"),
    "extender": ("edge_allocator.extender.cli", "run the scheduler-extender HTTP service"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="edge-allocator", description=__doc__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    chosen = argv[0] if argv and argv[0] in COMMANDS else None
    for name, (module_name, help_text) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text)
        if name == chosen:
            importlib.import_module(module_name).configure(p)
    args = parser.parse_args(argv)
    module = importlib.import_module(COMMANDS[args.command][0])
    result: int = module.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
