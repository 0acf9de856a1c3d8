"""A read-only page of recorded events for staff, without models or migrations.

```python
# urls.py, before admin.site.urls
path("admin/zentitle-stripe/", include("zentitle_stripe.django.admin_urls")),
```

`GET .../events/` lists the most recent events (`?status=failed`, `?source=stripe`,
`?limit=`); only active staff users (`request.user.is_staff`) see it, others get 403.
Nothing on the page changes anything: replays stay a deliberate `manage.py` command.
"""

from __future__ import annotations

import time
from typing import Any

from django.http import HttpRequest, HttpResponse, HttpResponseForbidden
from django.utils.html import format_html, format_html_join
from django.views.decorators.http import require_GET

from ..ops._common import iso
from ..ops.events import status_text
from ..storage import EventStatus
from .views import get_provisioner

__all__ = ["events_view"]

_COLUMNS = ("received", "source", "event", "type", "status", "attempts", "outcome", "detail")
_PAGE = (
    "<!doctype html><html><head><meta charset='utf-8'><title>Recorded events</title>"
    "<style>body{{font-family:sans-serif}}td,th{{padding:2px 8px;text-align:left}}</style>"
    "</head><body><h1>Recorded events</h1><p>storage: {}</p>"
    "<table><thead><tr>{}</tr></thead><tbody>{}</tbody></table><p>{}</p></body></html>"
)


def _is_staff(request: HttpRequest) -> bool:
    user: Any = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def _events_view(request: HttpRequest) -> HttpResponse:
    if not _is_staff(request):
        return HttpResponseForbidden("staff only: log in to the admin as a staff user")
    statuses = {s.value: s for s in EventStatus}
    status = statuses.get(request.GET.get("status", ""))
    source = request.GET.get("source")
    source = source if source in ("stripe", "zentitle") else None
    limit_text = request.GET.get("limit", "")
    limit = min(int(limit_text), 500) if limit_text.isdigit() and int(limit_text) > 0 else 100
    storage = get_provisioner().storage
    records = storage.list_events(status=status, source=source, limit=limit)
    now = time.time()
    rows = format_html_join(
        "",
        "<tr>" + "<td>{}</td>" * len(_COLUMNS) + "</tr>",
        (
            (
                iso(r.received_at) or "-",
                r.source,
                r.event_id,
                r.type,
                status_text(r, now),
                r.attempts,
                r.outcome or "-",
                r.detail or "",
            )
            for r in records
        ),
    )
    header = format_html_join("", "<th>{}</th>", ((c,) for c in _COLUMNS))
    footer = f"{len(records)} event(s), most recent first" if records else "no recorded events"
    return HttpResponse(format_html(_PAGE, repr(storage), header, rows, footer))


events_view = require_GET(_events_view)
"""The page; `include("zentitle_stripe.django.admin_urls")` routes it at `events/`."""
