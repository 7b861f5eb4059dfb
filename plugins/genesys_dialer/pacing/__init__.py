"""Pacing: estimate the answer rate, model the dialer, decide what to write to the campaign."""
