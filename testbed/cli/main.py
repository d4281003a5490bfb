"""The `testbed` command: one parser assembled from the verb groups (lifecycle, objects,
inspect) and from the verbs other packages register under the `testbed.verbs` entry point
(the benchmark's bench and plot), and the error handling every verb shares."""
import argparse
import importlib
import os
import sys
from importlib.metadata import entry_points

from testbed.cli import inspect, lifecycle, objects, trace
from testbed.errors import TestbedError
from testbed.host.signals import Interrupted

VERB_GROUP = "testbed.verbs"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="testbed", description="An emulated Kubernetes pod network on one machine.")
    parser.set_defaults(root=True)  # verbs that only read files say root=False
    sub = parser.add_subparsers(dest="command", required=True)
    for group in (lifecycle, objects, inspect, trace):
        group.register(sub)
    for verbs in sorted(entry_points(group=VERB_GROUP), key=lambda e: e.name):
        verbs.load()(sub)
    return parser


def _verb(func):
    """A verb's function; a "module:function" string names one loaded only when it runs."""
    if isinstance(func, str):
        module, name = func.split(":")
        return getattr(importlib.import_module(module), name)
    return func


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    after = None
    if argv[:1] == ["exec"] and "--" in argv:  # the command, after --, is not ours to parse
        cut = argv.index("--")
        argv, after = argv[:cut], argv[cut + 1:]
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and hasattr(args, "filter") and not any(e.startswith("-") for e in extra):
        args.filter += extra  # capture's filter words may follow its options
    elif extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if after is not None:
        args.argv = after
    if os.geteuid() != 0 and args.root:
        print("testbed: run as root (network namespaces need it)", file=sys.stderr)
        return 1
    try:
        return _verb(args.func)(args)
    except TestbedError as e:
        print(f"testbed: {e}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Interrupted):
        print("testbed: interrupted; everything it built was torn down", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into head & co.: not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
