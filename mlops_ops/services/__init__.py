"""Services: operations over more than one hook (promotion over the registry and the ledger)."""
