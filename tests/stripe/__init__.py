"""The Stripe side: the gateway against the Stripe emulator, and the emulator itself."""
