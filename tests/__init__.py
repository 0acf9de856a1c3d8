"""The test suite, grouped by behaviour; shared helpers live in `tests.support`."""
