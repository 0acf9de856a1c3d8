"""The Zentitle2 side: client, emulator, contract, webhooks and the router."""
