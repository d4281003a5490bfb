"""Rule-level edits of an nftables table: the least one transaction must change to turn the
chains a node holds into the chains it should hold.

A chain that changed is not rewritten: the rules it lost are deleted by handle and the rules
it gained inserted where they belong, so adding one policy among a thousand costs a few rules,
not the two thousand of the endpoint chain that runs them all. nft's --echo --handle output
gives the handles of what was added, which the next edit needs.

Pure functions: chains and handles in, nft text out (and echo text in, handles out).
"""
import re
from dataclasses import dataclass, field

ECHOED_HANDLE = re.compile(r"^(?:add|insert) rule .* # handle (\d+)$")
LISTED_HANDLE = re.compile(r"# handle (\d+)$")

Chains = dict[str, list[str]]
Handles = dict[str, list[int]]


@dataclass
class Edit:
    """One transaction: its nft text, and how to learn the new handles from its echo."""
    text: str = ""
    # per edited chain (in the order its rules were sent), its rules' handles in order: an int
    # where the rule was kept, None where this edit adds it (to be read from the echo)
    handles: dict[str, list[int | None]] = field(default_factory=dict)

    def handles_after(self, echo: str) -> Handles:
        """The edited chains' handles once applied, from `nft --echo --handle` output."""
        added = iter(int(m.group(1)) for line in echo.splitlines()
                     if (m := ECHOED_HANDLE.match(line.strip())))
        return {chain: [h if h is not None else next(added) for h in handles]
                for chain, handles in self.handles.items()}


def edit(table_name: str, held: Chains, handles: Handles, table: Chains) -> Edit:
    """The transaction from `held` (whose rules have `handles`) to `table`: new chains added
    and filled, changed chains edited rule by rule, chains gone deleted last (once nothing
    jumps to them). Its text is "" when nothing changed."""
    new = [c for c in table if c not in held]
    changed = [c for c in table if c in held and held[c] != table[c]]
    gone = [c for c in held if c not in table]
    result = Edit()
    lines = [f"add chain {table_name} {c}" for c in new]
    for chain in new:
        lines += [f"add rule {table_name} {chain} {rule}" for rule in table[chain]]
        result.handles[chain] = [None] * len(table[chain])
    deletions = []
    for chain in changed:
        old, now, kept = held[chain], table[chain], handles[chain]
        start, old_end, new_end = _differing_span(old, now)
        deletions += [f"delete rule {table_name} {chain} handle {h}"
                      for h in kept[start:old_end]]
        # the new rules go before the first rule kept after them, or at the chain's end
        where = f"insert rule {table_name} {chain} position {kept[old_end]}" \
            if old_end < len(old) else f"add rule {table_name} {chain}"
        lines += [f"{where} {rule}" for rule in now[start:new_end]]
        result.handles[chain] = kept[:start] + [None] * (new_end - start) + kept[old_end:]
    # a chain still jumped to cannot go (EBUSY): the endpoint chains before their policies'
    jumped = {word for c in gone for rule in held[c] for word in rule.split()[1:]
              if f"jump {word}" in rule}
    gone = [c for c in gone if c not in jumped] + [c for c in gone if c in jumped]
    lines += deletions + [f"delete chain {table_name} {c}" for c in gone]
    result.text = "\n".join(lines) + "\n" if lines else ""
    return result


def _differing_span(old: list[str], now: list[str]) -> tuple[int, int, int]:
    """(start, old end, new end): old[start:old end] became now[start:new end], the rest is
    a common head and tail. One policy added or removed is exactly its own rules; several
    changes far apart make one span holding the rules between them (still correct)."""
    start = 0
    while start < min(len(old), len(now)) and old[start] == now[start]:
        start += 1
    tail = 0
    while tail < min(len(old), len(now)) - start and old[-1 - tail] == now[-1 - tail]:
        tail += 1
    return start, len(old) - tail, len(now) - tail


def listed_handles(listing: str) -> Handles:
    """{chain: its rules' handles in order} from `nft -a list table ...` output."""
    out, chain = {}, None
    for line in listing.splitlines():
        text = line.strip()
        if text.startswith("chain "):
            chain = text[len("chain "):].split(" {")[0].strip('"')
            out[chain] = []
        elif text == "}":
            chain = None
        elif chain is not None and (m := LISTED_HANDLE.search(text)):
            out[chain].append(int(m.group(1)))
    return out
