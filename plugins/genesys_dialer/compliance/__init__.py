"""Compliance that fails closed: who may be sent to the dialer, why the others are held back, and withdrawing
delivered contacts that opted out (docs/compliance.md)."""
