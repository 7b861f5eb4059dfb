"""The dispatch ledger in PostgreSQL: which contact went to which campaign, run and segment, and why not."""
