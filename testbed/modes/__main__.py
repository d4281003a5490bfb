"""`python -m testbed.modes plugins`: every mode's own CNI plugins, a line each
(`EXECUTABLE MODULE`), for the install step to write their launchers."""
import sys

from testbed.modes.base import cni_plugins


def main(argv: list[str]) -> int:
    if argv != ["plugins"]:
        print("usage: python -m testbed.modes plugins", file=sys.stderr)
        return 2
    for name, module in sorted(cni_plugins().items()):
        print(name, module)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
