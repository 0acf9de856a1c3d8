"""Zentitle2's published contract, held against every request and response the emulator serves.

The emulator is the only picture of Zentitle2 that the tests see, so a kind emulator
makes a wrong product pass (one once returned expiry dates inside groups, which the real
API never does, and renewals never renewed while every test was green). The contract
file (`contracts/zentitle2-2025-10-10.json`) is the machine-readable shape of each
operation the project uses, taken from the NSwag client Nalpeiron generated from its
2025-10-10 spec. [`Contract`][zentitle_stripe.testing.Contract] checks:

- requests: a known method and path, query names the operation declares, and a body
  whose keys and value types belong to the request model (no body where none is taken);
- responses: the declared status, keys present per `presence` (`req` always, `nonnull`
  never null, no explicit nulls since the API omits them), nothing outside the model,
  and no body on a 204;
- outgoing webhooks: the envelope and the payload model of each event code.

Types the contract names but does not define (e.g. `ConcurrencyMode`) accept any
non-null value: the check never invents a rule the contract does not state.

A few operations the project needs are not in the 2025-10-10 contract at all (the group
`extend`, known only from the reference). They live apart, in
`contracts/zentitle2-extras.json`, each marked `extra`
([`extra_operations`][zentitle_stripe.testing.Contract.extra_operations]), every status
the reference leaves open accepted (`also`): the shipped contract stays Nalpeiron's.
"""

from __future__ import annotations

import functools
import json
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from importlib import resources
from typing import Any

import attrs

from zentitle_stripe.zentitle.models import parse_datetime

from ._contract_rules import int_rule as _int_rule
from ._contract_rules import string_rule as _string_rule

__all__ = [
    "Contract",
    "ContractViolation",
    "Operation",
    "allow_contract_violations",
    "contract_violations",
    "take_contract_violations",
]

_CONTRACT_FILE = "zentitle2-2025-10-10.json"
_EXTRAS_FILE = "zentitle2-extras.json"
_QUERY_ALWAYS_ALLOWED = frozenset({"n-api-version"})  # the version may come as a query


class ContractViolation(AssertionError):
    """The emulator saw or sent something Zentitle2's contract does not allow.

    An `AssertionError`, so pytest reports it as a failure wherever it surfaces; it is
    also recorded (see
    [`take_contract_violations`][zentitle_stripe.testing.take_contract_violations]) because
    the code under test may catch it and answer 500 instead.
    """


_violations: list[ContractViolation] = []
_violations_lock = threading.Lock()
_allowed = threading.local()


def _record(violation: ContractViolation) -> ContractViolation:
    with _violations_lock:
        _violations.append(violation)
    return violation


def _checking() -> bool:
    return not getattr(_allowed, "depth", 0)


def contract_violations() -> list[ContractViolation]:
    """The violations recorded since they were last taken (without taking them)."""
    with _violations_lock:
        return list(_violations)


def take_contract_violations() -> list[ContractViolation]:
    """Return and forget the recorded violations (a test fixture calls it after each test)."""
    with _violations_lock:
        taken = list(_violations)
        _violations.clear()
        return taken


@contextmanager
def allow_contract_violations() -> Iterator[None]:
    """Inside this block (in this thread) nothing is checked.

    For tests that send a deliberately invalid request to see the emulator's own
    validation error (as the real API would answer it).
    """
    _allowed.depth = getattr(_allowed, "depth", 0) + 1
    try:
        yield
    finally:
        _allowed.depth -= 1


@attrs.frozen
class Operation:
    """One operation of the contract: where it lives and what it takes and answers."""

    operation_id: str
    method: str
    path: str
    query: frozenset[str]
    request_body: str | None
    status: int
    schema: str | None
    error_statuses: frozenset[int]
    pattern: re.Pattern[str] = attrs.field(eq=False, repr=False)
    literal_segments: int = 0
    extra: bool = False
    """Not in the pinned contract: known from the reference only (`zentitle2-extras.json`)."""
    also: tuple[tuple[int, str | None], ...] = ()
    """Other success answers `(status, schema)` accepted where the reference leaves the
    status open (an extra operation's)."""

    @property
    def successes(self) -> dict[int, str | None]:
        """Every success status this operation may answer, with its body's model."""
        return {self.status: self.schema, **dict(self.also)}


class Contract:
    """A loaded contract: operations and models (`load()` gives the shipped one)."""

    def __init__(self, data: Mapping[str, Any], extras: Mapping[str, Any] | None = None) -> None:
        clash = set(data["dtos"]) & set(extras["dtos"]) if extras else set()
        if clash:
            raise ValueError(f"extra models redefine contract models: {sorted(clash)}")
        self.dtos: Mapping[str, Mapping[str, Any]] = {
            **data["dtos"],
            **(extras["dtos"] if extras else {}),
        }
        self.operations = tuple(_operation(o) for o in data["operations"]) + tuple(
            _operation(o, extra=True) for o in (extras["operations"] if extras else ())
        )
        self._webhooks = {
            code: name
            for name, dto in self.dtos.items()
            if "event" in dto
            for code in _event_codes(dto["event"])
        }

    @staticmethod
    def load(*, extras: bool = True) -> Contract:
        """The 2025-10-10 contract shipped in this package (parsed once per process), with
        the extra operations (see the module docstring) unless `extras=False`."""
        return _shipped(extras)

    @property
    def extra_operations(self) -> tuple[Operation, ...]:
        """The operations that are not in the pinned contract."""
        return tuple(o for o in self.operations if o.extra)

    # -- requests -----------------------------------------------------------------------

    def operation(self, method: str, path: str) -> Operation:
        """The operation serving `method path`; literal segments win over `{ids}`."""
        found = [o for o in self.operations if o.method == method and o.pattern.match(path)]
        if not found and _checking():
            raise _record(
                ContractViolation(f"{method} {path}: no such operation in Zentitle2's contract")
            )
        if not found:
            return _UNCHECKED
        return max(found, key=lambda o: o.literal_segments)

    def check_request(
        self, method: str, path: str, query: Mapping[str, str], body: bytes
    ) -> Operation:
        """Check one request; returns its operation or raises `ContractViolation`."""
        op = self.operation(method, path)
        where = f"{method} {path} ({op.operation_id})"
        unknown = sorted(set(query) - op.query - _QUERY_ALWAYS_ALLOWED)
        problems = [f"query parameter {name!r} is not declared" for name in unknown]
        if op.request_body is None:
            if body.strip() not in (b"", b'""'):
                problems.append("a body was sent, but the operation takes none")
        else:
            try:
                payload = json.loads(body) if body else None
            except ValueError:
                payload = _NotJson
            if payload is _NotJson or payload is None:
                problems.append(f"the body must be a JSON {op.request_body}")
            else:
                problems += self._model(op.request_body, payload, "body", response=False)
        self._raise(where + " request", problems)
        return op

    # -- responses ----------------------------------------------------------------------

    def check_response(self, op: Operation, status: int, content: bytes) -> None:
        """Check the emulator's own answer to an operation."""
        where = f"{op.method} {op.path} ({op.operation_id}) response {status}"
        problems: list[str] = []
        successes = op.successes
        if status in successes:
            schema = successes[status]
            if schema is None:
                if content:
                    problems.append(f"a {status} answer has no body")
            else:
                problems += self._json_model(schema, content)
        elif status in op.error_statuses and content:
            problems += self._json_model("ApiError", content)
        elif status < 400:
            allowed = " or ".join(str(s) for s in successes)
            problems.append(f"the operation answers {allowed}, not {status}")
        self._raise(where, problems)

    def check_webhook(self, body: bytes) -> None:
        """Check an outgoing webhook: the envelope, then the payload of its event code."""
        envelope = json.loads(body)
        name = "WebhookModelBase(envelope)"
        props = {k: v for k, v in self.dtos[name]["props"].items() if k != "payload"}
        problems = self._props(name, props, envelope, "body", response=True, extra={"payload"})
        code = envelope.get("eventCode") if isinstance(envelope, Mapping) else None
        model = self._webhooks.get(code) if isinstance(code, str) else None
        if model is None:
            problems.append(f"event code {code!r} has no payload model in the contract")
        elif "payload" in envelope:
            problems += self._model(model, envelope["payload"], "payload", response=True)
        self._raise(f"webhook {code}", problems)

    # -- models -------------------------------------------------------------------------

    def _json_model(self, name: str, content: bytes) -> list[str]:
        try:
            value = json.loads(content)
        except ValueError:
            return [f"the body is not JSON: {content[:60]!r}"]
        return self._model(name, value, "body", response=True)

    def _model(self, name: str, value: Any, where: str, *, response: bool) -> list[str]:
        generic = re.fullmatch(r"PaginatedListOf<(\w+)>", name)
        if generic:
            props = {
                k: {**v, "type": v["type"].replace("<T>", f"<{generic.group(1)}>")}
                for k, v in self.dtos["PaginatedListOf<T>"]["props"].items()
            }
            return self._props(name, props, value, where, response=response)
        return self._props(name, self.dtos[name]["props"], value, where, response=response)

    def _props(
        self,
        name: str,
        props: Mapping[str, Mapping[str, str]],
        value: Any,
        where: str,
        *,
        response: bool,
        extra: frozenset[str] | set[str] = frozenset(),
    ) -> list[str]:
        if not isinstance(value, Mapping):
            return [f"{where} must be a {name} object, got {type(value).__name__}"]
        problems = [
            f"{where}.{key} is not a property of {name}"
            for key in value
            if key not in props and key not in extra
        ]
        for key, spec in props.items():
            presence = spec["presence"]
            if key not in value:
                if presence == "req":
                    problems.append(f"{where}.{key} is required by {name} but missing")
                continue
            item = value[key]
            if item is None:
                if presence != "opt":
                    problems.append(f"{where}.{key} must never be null ({presence})")
                elif response:
                    problems.append(f"{where}.{key} is null; Zentitle2 omits null values")
                continue
            problems += self._type(spec["type"], item, f"{where}.{key}", response=response)
        return problems

    def _type(self, spec: str, value: Any, where: str, *, response: bool) -> list[str]:
        kind, _, rule = spec.partition(" ")
        array = re.fullmatch(r"array<(.+)>", kind)
        if array:
            if not isinstance(value, list):
                return [f"{where} must be an array"]
            problems = (
                [f"{where} needs at least one item"] if "minItems 1" in rule and not value else []
            )
            for i, item in enumerate(value):
                problems += self._type(array.group(1), item, f"{where}[{i}]", response=response)
            return problems
        if kind.startswith("map"):
            if not isinstance(value, Mapping):
                return [f"{where} must be an object (map)"]
            if kind == "map<string,string?>":
                return [
                    f"{where}.{k} must be a string"
                    for k, v in value.items()
                    if v is not None and not isinstance(v, str)
                ]
            return []
        return self._scalar(kind, rule, value, where, response=response)

    def _scalar(self, kind: str, rule: str, value: Any, where: str, *, response: bool) -> list[str]:
        if kind in ("string", "uri"):
            if not isinstance(value, str):
                return [f"{where} must be a string"]
            return _string_rule(rule, value, where)
        if kind == "date-time":
            ok = isinstance(value, str) and parse_datetime(value) is not None
            return [] if ok else [f"{where} must be an ISO-8601 date-time, got {value!r}"]
        if kind == "int32":
            if isinstance(value, bool) or not isinstance(value, int):
                return [f"{where} must be an integer"]
            return _int_rule(rule, value, where)
        if kind == "decimal":
            ok = isinstance(value, (int, float)) and not isinstance(value, bool)
            return [] if ok else [f"{where} must be a number"]
        if kind == "bool":
            return [] if isinstance(value, bool) else [f"{where} must be true or false"]
        dto = self.dtos.get(kind)
        if dto is None:
            return []  # named but not defined by the contract: nothing to hold it to
        if "enum" in dto:
            ok = value in dto["enum"]
            return [] if ok else [f"{where} must be one of {dto['enum']}, got {value!r}"]
        return self._model(kind, value, where, response=response)

    @staticmethod
    def _raise(where: str, problems: list[str]) -> None:
        if problems and _checking():
            raise _record(ContractViolation(f"{where}: " + "; ".join(problems)))


_UNCHECKED = Operation(
    operation_id="(not in the contract)",
    method="*",
    path="*",
    query=frozenset(),
    request_body=None,
    status=0,
    schema=None,
    error_statuses=frozenset(),
    pattern=re.compile("(?!)"),
)


class _NotJson:
    """Marks a body that did not parse."""


@functools.cache
def _shipped(extras: bool) -> Contract:
    folder = resources.files(__package__).joinpath("contracts")
    data = json.loads(folder.joinpath(_CONTRACT_FILE).read_text())
    more = json.loads(folder.joinpath(_EXTRAS_FILE).read_text()) if extras else None
    return Contract(data, more)


def _event_codes(event: str) -> list[str]:
    """`entitlement.expires1day|expires7days|expires30days` names three codes."""
    first, *rest = event.split("|")
    prefix = first.rsplit(".", 1)[0]
    return [first, *(f"{prefix}.{r}" for r in rest)]


def _operation(data: Mapping[str, Any], *, extra: bool = False) -> Operation:
    path: str = data["path"]
    regex = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(path))
    errors = frozenset(
        int(code) for key in data.get("errors", {}) for code in key.split("|") if code.isdigit()
    )
    return Operation(
        operation_id=data["operationId"],
        method=data["method"],
        path=path,
        query=frozenset(data.get("query") or ()),
        request_body=data.get("requestBody"),
        status=int(data["success"]["status"]),
        schema=data["success"].get("schema"),
        error_statuses=errors,
        pattern=re.compile(f"^{regex}$"),
        literal_segments=sum(1 for s in path.split("/") if s and not s.startswith("{")),
        extra=extra or bool(data.get("extra")),
        also=tuple((int(a["status"]), a.get("schema")) for a in data["success"].get("also", ())),
    )
