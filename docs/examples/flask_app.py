"""Flask: ``flask --app flask_app run`` with STRIPE_* and ZENTITLE_* set."""

from flask import Flask

from zentitle_stripe import Provisioner
from zentitle_stripe.flask import init_app
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated

provisioner = Provisioner.from_env()  # STRIPE_*, ZENTITLE_* and ZENTITLE_STRIPE_STORAGE


@provisioner.on_zentitle("entitlement.group.created")
def send_activation_email(event: EntitlementGroupCreated) -> None:
    details = provisioner.activation_details(event)
    codes = ", ".join(details.activation_codes)
    print(f"To {details.email}: your activation codes are {codes}")


app = Flask(__name__)
init_app(app, provisioner)  # POST /stripe/webhook and POST /zentitle/webhook
