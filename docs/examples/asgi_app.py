"""The standalone server as an ASGI app, for your own process manager, e.g.
`uvicorn asgi_app:app --workers 4 --timeout-graceful-shutdown 30`
(`zentitle-stripe serve` does the same with one worker and structured logs).
"""

from zentitle_stripe import Provisioner
from zentitle_stripe.server import create_app
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated

provisioner = Provisioner.from_env()  # STRIPE_*, ZENTITLE_* and ZENTITLE_STRIPE_STORAGE


@provisioner.on_zentitle("entitlement.group.created")
def send_activation_email(event: EntitlementGroupCreated) -> None:
    details = provisioner.activation_details(event)
    codes = ", ".join(details.activation_codes)
    print(f"To {details.email}: your activation codes are {codes}")


app = create_app(provisioner)  # POST /stripe/webhook, POST /zentitle/webhook, GET /healthz
