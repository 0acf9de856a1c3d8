"""Django: the settings to add to your project's ``settings.py``.

Without ``ZENTITLE_STRIPE`` the same names are read from the environment.
"""

import os

from zentitle_stripe.logging import dict_config

ZENTITLE_STRIPE = {
    # The keys are the environment variable names (see Configuration).
    "STRIPE_API_KEY": os.environ["STRIPE_API_KEY"],
    "STRIPE_WEBHOOK_SECRET": os.environ["STRIPE_WEBHOOK_SECRET"],
    "ZENTITLE_API_URL": os.environ["ZENTITLE_API_URL"],
    "ZENTITLE_TOKEN_URL": os.environ["ZENTITLE_TOKEN_URL"],
    "ZENTITLE_TENANT_ID": os.environ["ZENTITLE_TENANT_ID"],
    "ZENTITLE_CLIENT_ID": os.environ["ZENTITLE_CLIENT_ID"],
    "ZENTITLE_CLIENT_SECRET": os.environ["ZENTITLE_CLIENT_SECRET"],
    "ZENTITLE_WEBHOOK_PUBLIC_KEY": os.environ.get("ZENTITLE_WEBHOOK_PUBLIC_KEY", ""),
    "ZENTITLE_STRIPE_STORAGE": os.environ.get(
        "ZENTITLE_STRIPE_STORAGE", "sqlite:///zentitle_stripe.db"
    ),
    # Only needed against the emulators (the offline demo, tests):
    "STRIPE_API_BASE": os.environ.get("STRIPE_API_BASE", ""),
}

# One JSON object per line on stderr for the library's logs (outcome, reason, event
# fields); dict_config(log_format="text") for plain lines.
LOGGING = dict_config()
