"""Webhook handling: Stripe signatures, event parsing, the provisioner engine, the failure table."""
