"""Operations: the CLI, doctor/reconcile logic and the catalogue."""
