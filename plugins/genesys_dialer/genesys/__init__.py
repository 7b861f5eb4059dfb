"""Talking to Genesys Cloud: the hook, its OAuth token cache, error classes, circuit breaker and retry policy."""
