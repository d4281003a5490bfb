"""agnhost's command line as its cobra/pflag parser reads it, and which of it the testbed imitates.

pflag's rules: `--name=value` or `--name value`; a bool flag alone means true and takes a value
only after '=' (`--http=false`); `--` ends the flags. A flag agnhost does not know makes agnhost
exit with "Error: unknown flag: --name"; a flag it knows but the testbed does not imitate is
named in a warning. The tables list every flag of the subcommands the testbed imitates, with
agnhost's defaults.
"""
from dataclasses import dataclass, field

BOOL, INT, STR, DURATION = "bool", "int", "string", "duration"
TRUE_WORDS = ("1", "t", "T", "true", "TRUE", "True")
FALSE_WORDS = ("0", "f", "F", "false", "FALSE", "False")


@dataclass(frozen=True)
class Flag:
    kind: str
    default: object
    imitated: bool = True


# subcommand -> {flag: Flag}, as agnhost 2.4x defines them
SUBCOMMANDS = {
    "serve-hostname": {
        "tcp": Flag(BOOL, False), "udp": Flag(BOOL, False), "http": Flag(BOOL, True),
        "close": Flag(BOOL, False), "port": Flag(INT, 9376)},
    "netexec": {
        "http-port": Flag(INT, 8080), "udp-port": Flag(INT, 8081), "sctp-port": Flag(INT, -1),
        "http-override": Flag(STR, ""), "udp-listen-addresses": Flag(STR, ""),
        "tls-cert-file": Flag(STR, "", imitated=False),
        "tls-private-key-file": Flag(STR, "", imitated=False),
        "delay-shutdown": Flag(INT, 0, imitated=False)},
    "porter": {"json-response": Flag(BOOL, False)},
    "pause": {},
    "connect": {
        "timeout": Flag(DURATION, 0.0), "protocol": Flag(STR, "tcp"),
        "udp-data": Flag(STR, "hostname"), "sctp-data": Flag(STR, "hostname")},
}


class FlagError(ValueError):
    """What agnhost itself would refuse (it exits 1 with this message)."""


@dataclass
class Parsed:
    values: dict
    args: list = field(default_factory=list)          # positional arguments
    not_imitated: list = field(default_factory=list)  # known to agnhost, not to the testbed


def parse_duration(text: str) -> float:
    """A Go duration ("1s", "500ms", "1m30s", "0") in seconds."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    if text == "0":
        return 0.0
    total, number, rest = 0.0, "", text
    while rest:
        if rest[0].isdigit() or rest[0] == ".":
            number, rest = number + rest[0], rest[1:]
            continue
        unit = next((u for u in sorted(units, key=len, reverse=True) if rest.startswith(u)),
                    None)
        if unit is None or not number:
            raise FlagError(f'time: invalid duration "{text}"')
        total += float(number) * units[unit]
        number, rest = "", rest[len(unit):]
    if number:
        raise FlagError(f'time: missing unit in duration "{text}"')
    return total


def _convert(name, flag, text):
    if flag.kind == BOOL:
        if text in TRUE_WORDS:
            return True
        if text in FALSE_WORDS:
            return False
        raise FlagError(f'invalid argument "{text}" for "--{name}" flag: strconv.ParseBool: '
                        f'parsing "{text}": invalid syntax')
    if flag.kind == INT:
        try:
            return int(text, 0)
        except ValueError:
            raise FlagError(f'invalid argument "{text}" for "--{name}" flag: strconv.ParseInt: '
                            f'parsing "{text}": invalid syntax')
    if flag.kind == DURATION:
        try:
            return parse_duration(text)
        except FlagError as e:
            raise FlagError(f'invalid argument "{text}" for "--{name}" flag: {e}')
    return text


def parse(subcommand: str, argv: list) -> Parsed:
    """agnhost SUBCOMMAND's flags in argv; raises FlagError as agnhost would fail."""
    table = SUBCOMMANDS[subcommand]
    out = Parsed({name: flag.default for name, flag in table.items()})
    words = list(argv)
    while words:
        word = words.pop(0)
        if word == "--":
            out.args += words
            break
        if not word.startswith("-") or word == "-":
            out.args.append(word)
            continue
        name, has_value, value = word.lstrip("-").partition("=")
        if name not in table:
            raise FlagError(f"unknown flag: --{name}" if word.startswith("--") else
                            f"unknown shorthand flag: '{name[:1]}' in {word}")
        flag = table[name]
        if not has_value:
            if flag.kind == BOOL:
                value = "true"
            elif words:
                value = words.pop(0)
            else:
                raise FlagError(f"flag needs an argument: --{name}")
        out.values[name] = _convert(name, flag, value)
        if not flag.imitated and name not in out.not_imitated:
            out.not_imitated.append(name)
    return out
