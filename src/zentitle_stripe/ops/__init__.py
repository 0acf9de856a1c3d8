"""The operations behind `doctor`, `connect`, `events`, `replay`, `reconcile` and
`migrate`, as library functions returning result objects.

They take their collaborators explicitly (a `StripeOpsAPI`, a
[`ZentitleAPI`][zentitle_stripe.zentitle.ZentitleAPI], a
[`Storage`][zentitle_stripe.storage.Storage] or a
[`Provisioner`][zentitle_stripe.Provisioner]) so they run as well against the emulators in
tests as from the command line, which only prints what they return. Long work reports
through `progress`, a callable given one short line at a time.

One module per command; the rules they share with provisioning (which Price sells which
SKU, which events matter, which entitlements are live) come from
[`zentitle_stripe.catalogue`][zentitle_stripe.catalogue].
"""

from __future__ import annotations

from ..catalogue import REQUIRED_EVENTS
from ._common import Check, CheckStatus, Progress
from .connect import (
    DEFAULT_WEBHOOK_API_VERSION,
    ConnectResult,
    connect_webhook,
    write_env_secret,
)
from .connect import ROLL_HINT as ROLL_HINT  # public before the split, not in __all__
from .doctor import (
    DoctorReport,
    check_storage,
    check_stripe_key,
    check_webhook_endpoint,
    check_webhook_secrets,
    check_zentitle,
    run_doctor,
)
from .drift import Drift, find_drift
from .events import ReplayResult, event_to_json, failed_events, process_trusted_event, replay_events
from .migrate import MigrateResult, migrate_storage
from .prices import check_catalogue
from .reconciliation import (
    EVENTS_WINDOW_SECONDS,
    ReconciledEvent,
    ReconcileReport,
    parse_since,
    reconcile,
)

__all__ = [
    "DEFAULT_WEBHOOK_API_VERSION",
    "EVENTS_WINDOW_SECONDS",
    "REQUIRED_EVENTS",
    "Check",
    "CheckStatus",
    "ConnectResult",
    "DoctorReport",
    "Drift",
    "MigrateResult",
    "Progress",
    "ReconcileReport",
    "ReconciledEvent",
    "ReplayResult",
    "check_catalogue",
    "check_storage",
    "check_stripe_key",
    "check_webhook_endpoint",
    "check_webhook_secrets",
    "check_zentitle",
    "connect_webhook",
    "event_to_json",
    "failed_events",
    "find_drift",
    "migrate_storage",
    "parse_since",
    "process_trusted_event",
    "reconcile",
    "replay_events",
    "run_doctor",
    "write_env_secret",
]
