"""Running iptables: one command, or an atomic rewrite of whole chains with iptables-restore.

Every rule set the agent owns (the bridge's NAT, the routing mesh, VIPs and the ingress
return path inside containers) is written through `restore`: the named chains are
flushed and refilled per table in one transaction (`--noflush` leaves every other chain
alone), so a rewrite is idempotent and a reader never sees a half-written chain.
Connections already tracked keep their conntrack entry across a rewrite. The binaries
run with -w (wait for the xtables lock) in the caller's network namespace.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

from pyswarm.agent.runtime.network.errors import NetworkError

# iptables chain names hold at most 28 characters.
MAX_CHAIN_LEN = 28


def run(args: Sequence[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), input=stdin, capture_output=True, text=True, check=False)


def first_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else "no output"


def iptables(table: str, *args: str) -> subprocess.CompletedProcess[str]:
    return run(["iptables", "-w", "-t", table, *args])


def must(table: str, *args: str) -> None:
    done = iptables(table, *args)
    if done.returncode != 0:
        raise NetworkError(f"iptables -t {table} {' '.join(args)}: {first_line(done.stderr)}")


def restore(
    tables: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    *,
    delete: Mapping[str, Sequence[str]] | None = None,
) -> None:
    """Per table: flush `chains` (creating them) and write `rules`; then drop `delete`.

    A chain in `delete` must no longer be jumped to once the rules are written (the
    same transaction rewrites the chains that did).
    """
    text: list[str] = []
    for table in sorted(set(tables) | set(delete or {})):
        chains, rules = tables.get(table, ((), ()))
        gone = list((delete or {}).get(table, ()))
        text.append(f"*{table}")
        text.extend(f":{chain} - [0:0]" for chain in [*chains, *gone])
        text.extend(rules)
        text.extend(f"-X {chain}" for chain in gone)
        text.append("COMMIT")
    done = run(["iptables-restore", "-w", "--noflush"], stdin="\n".join(text) + "\n")
    if done.returncode != 0:
        raise NetworkError(f"iptables-restore: {first_line(done.stderr)}")


def chains(table: str, prefix: str) -> list[str]:
    """The chains of `table` whose names start with `prefix`."""
    done = iptables(table, "-S")
    if done.returncode != 0:
        raise NetworkError(f"iptables -t {table} -S: {first_line(done.stderr)}")
    found = []
    for line in done.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "-N" and parts[1].startswith(prefix):
            found.append(parts[1])
    return found


def ensure_jump(table: str, builtin: str, rule: Sequence[str], *, first: bool = False) -> None:
    """Add `rule` to `builtin` unless it is there (first: at the top)."""
    if iptables(table, "-C", builtin, *rule).returncode != 0:
        position = ["-I", builtin, "1"] if first else ["-A", builtin]
        must(table, *position, *rule)


def remove_jump(table: str, builtin: str, rule: Sequence[str]) -> None:
    """Remove every copy of `rule` from `builtin`."""
    while iptables(table, "-C", builtin, *rule).returncode == 0:
        must(table, "-D", builtin, *rule)


def remove_chains(table: str, names: Sequence[str]) -> None:
    """Drop the jumps into `names` from any chain, then the chains; missing ones skipped."""
    if not names:
        return
    wanted = set(names)
    done = iptables(table, "-S")
    if done.returncode != 0:
        raise NetworkError(f"iptables -t {table} -S: {first_line(done.stderr)}")
    for line in done.stdout.splitlines():
        parts = line.split()
        jumps = parts[:1] == ["-A"] and "-j" in parts
        if jumps and parts[parts.index("-j") + 1] in wanted and parts[1] not in wanted:
            must(table, "-D", *parts[1:])
    for name in names:
        must(table, "-F", name)
    for name in names:
        must(table, "-X", name)
