"""Claim owners: who holds an event's claim, readable in `events` listings."""

from __future__ import annotations

import itertools
import os
import socket

__all__ = ["new_owner"]

_HOST = socket.gethostname()


def _owner_prefix() -> tuple[str, itertools.count[int]]:
    """This process's `host/pid/` and a counter from a random 48-bit start, so a later
    process with the same pid does not repeat an earlier one's owners."""
    return f"{_HOST}/{os.getpid()}/", itertools.count(int.from_bytes(os.urandom(6), "big"))


_OWNERS = _owner_prefix()


def _new_process() -> None:
    global _OWNERS
    _OWNERS = _owner_prefix()  # a forked worker: its own pid, its own random start


os.register_at_fork(after_in_child=_new_process)


def new_owner() -> str:
    """A unique claim owner: host/pid/number (48 bits), readable in `events` listings.

    Unique within the process by the counter; across processes by the pid and the
    counter's random start (no system call per event, unlike a fresh random number).
    """
    prefix, numbers = _OWNERS
    return f"{prefix}{next(numbers) & 0xFFFFFFFFFFFF:012x}"
