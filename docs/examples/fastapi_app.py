"""FastAPI: ``uvicorn fastapi_app:app`` with STRIPE_* and ZENTITLE_* set."""

from fastapi import FastAPI

from zentitle_stripe import Provisioner
from zentitle_stripe.fastapi import make_router
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated

provisioner = Provisioner.from_env()  # STRIPE_*, ZENTITLE_* and ZENTITLE_STRIPE_STORAGE


@provisioner.on_zentitle("entitlement.group.created")
def send_activation_email(event: EntitlementGroupCreated) -> None:
    # Runs in the threadpool, like the rest of the (blocking) core.
    details = provisioner.activation_details(event)
    codes = ", ".join(details.activation_codes)
    print(f"To {details.email}: your activation codes are {codes}")


app = FastAPI()
app.include_router(make_router(provisioner))  # POST /stripe/webhook, POST /zentitle/webhook
