"""Django: your project's ``urls.py``; the webhooks live under ``billing/``.

Stripe's endpoint is then ``https://your.site/billing/stripe/webhook`` and Zentitle2's
``https://your.site/billing/zentitle/webhook``.
"""

from django.urls import include, path

from zentitle_stripe.django import get_provisioner
from zentitle_stripe.zentitle_webhooks import EntitlementGroupCreated

urlpatterns = [
    path("billing/", include("zentitle_stripe.django.urls")),
]

# Register handlers once at start-up (here, or in an AppConfig.ready()).
provisioner = get_provisioner()


@provisioner.on_zentitle("entitlement.group.created")
def send_activation_email(event: EntitlementGroupCreated) -> None:
    details = provisioner.activation_details(event)
    codes = ", ".join(details.activation_codes)
    print(f"To {details.email}: your activation codes are {codes}")
