"""What a local server process is doing, read from Linux's /proc (no psutil): its CPU seconds,
resident memory and listening TCP sockets. Used by ``bench/load.py`` and the server tests."""

from __future__ import annotations

import ipaddress
import os
import socket
import time
from pathlib import Path

CLK_TCK = os.sysconf("SC_CLK_TCK")
TCP_LISTEN = "0A"  # the st column of /proc/net/tcp for a listening socket


def child_pid_with_arg(arg: str, parent: int | None = None) -> int:
    """The pid of a child of ``parent`` (default: this process) whose command line holds ``arg``
    (e.g. ``"8501"`` for ``--server.port 8501``). Raises LookupError if there is none."""
    parent = os.getpid() if parent is None else parent
    kids: list[int] = []
    for task in Path(f"/proc/{parent}/task").iterdir():
        kids += [int(p) for p in (task / "children").read_text().split()]
    for pid in kids:
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if arg.encode() in args:
            return pid
    raise LookupError(f"no child of {parent} has {arg!r} on its command line")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of ``pid``, all its threads (fields 14 and 15 of /proc/PID/stat)."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2:].split()  # the name in (...) may hold spaces
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def memory_mb(pid: int) -> dict[str, float]:
    """Resident memory of ``pid`` in MB: ``rss`` now and ``peak`` (VmHWM) since it started."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, val = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            out["rss" if key == "VmRSS" else "peak"] = int(val.split()[0]) / 1024
    return out


def _socket_inodes(pid: int) -> set[str]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    return inodes


def _hex_address(hex_addr: str, family: int) -> str:
    """/proc/net/tcp{,6} addresses are in host byte order, 32 bits at a time."""
    raw = bytes.fromhex(hex_addr)
    raw = b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4))
    return socket.inet_ntop(family, raw)


def listening_sockets(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP socket ``pid`` listens on, IPv4 and IPv6, read from
    /proc/PID/net/tcp{,6} and matched to the process's open file descriptors by inode."""
    mine = _socket_inodes(pid)
    found = []
    for name, family in (("tcp", socket.AF_INET), ("tcp6", socket.AF_INET6)):
        path = Path(f"/proc/{pid}/net/{name}")
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if cols[3] == TCP_LISTEN and cols[9] in mine:
                addr, port = cols[1].split(":")
                found.append((_hex_address(addr, family), int(port, 16)))
    return found


def is_loopback(address: str) -> bool:
    return ipaddress.ip_address(address).is_loopback


def settle(pid: int, quiet_s: float = 0.02, step: float = 0.25, limit: float = 10.0) -> float:
    """Wait until ``pid`` is idle (under ``quiet_s`` CPU seconds per ``step`` seconds, at most
    ``limit`` seconds) and return its CPU seconds then: the work a step caused is all counted."""
    end = time.monotonic() + limit
    last = cpu_seconds(pid)
    while time.monotonic() < end:
        time.sleep(step)
        now = cpu_seconds(pid)
        if now - last < quiet_s:
            return now
        last = now
    return last
