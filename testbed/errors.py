"""Errors a user can act on. The CLI prints them as one line, without a traceback."""
from collections.abc import Sequence

SHOWN_CHARS = 80  # of an offending value, in an error message


def brief(value: object) -> str:
    """repr(value), cut to SHOWN_CHARS characters: a 50 MB value must not make a 50 MB line."""
    shown = repr(value)
    if len(shown) <= SHOWN_CHARS:
        return shown
    return f"{shown[:SHOWN_CHARS - 1]}… ({len(shown):,} characters)"


class TestbedError(Exception):
    """A failure explained in words the user can act on."""
    __test__ = False  # not a pytest test class, despite the name


class SpecError(TestbedError):
    """Bad topology input: names the file, the field and the offending value."""

    def __init__(self, path: str, field: str | None, value: object, problem: str):
        self.path, self.field, self.value, self.problem = path, field, value, problem
        where = f"{path}: {field}" if field else str(path)
        shown = "" if value is None else f" = {brief(value)}"
        super().__init__(f"{where}{shown}: {problem}")


class CommandError(TestbedError):
    """A command run for the testbed failed; carries the command's own message."""

    def __init__(self, argv: Sequence[object], returncode: int, output: str):
        self.argv, self.returncode, self.output = [str(a) for a in argv], returncode, output.strip()
        super().__init__(f"`{' '.join(self.argv)}` exited {returncode}: {self.output}")
