"""The value rules of the Zentitle2 contract (`string 1..255`, `string ^regex$`,
`int32 1..2^31-1`): what [`Contract`][zentitle_stripe.testing.Contract] holds a scalar to."""

from __future__ import annotations

import re

__all__ = ["int_rule", "string_rule"]


def string_rule(rule: str, value: str, where: str) -> list[str]:
    bounds = re.fullmatch(r"(\d+)\.\.(\d+)", rule)
    if bounds and not int(bounds.group(1)) <= len(value) <= int(bounds.group(2)):
        return [f"{where} must have {rule} characters, has {len(value)}"]
    most = re.fullmatch(r"<=(\d+)", rule)
    if most and len(value) > int(most.group(1)):
        return [f"{where} must have at most {most.group(1)} characters, has {len(value)}"]
    if rule.startswith("^") and not re.fullmatch(rule, value):
        return [f"{where} must match {rule}"]
    return []


def int_rule(rule: str, value: int, where: str) -> list[str]:
    bounds = re.fullmatch(r"(-?\d+)\.\.(\S+)", rule)
    if not bounds:
        return []
    high = 2**31 - 1 if bounds.group(2) == "2^31-1" else int(bounds.group(2))
    if not int(bounds.group(1)) <= value <= high:
        return [f"{where} must be in {rule}, got {value}"]
    return []
