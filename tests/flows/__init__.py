"""Provisioning flows end to end: first payment, renewals, ordering, call budgets, stress."""
