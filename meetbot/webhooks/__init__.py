"""Webhooks: the event envelope, the outbox written with each bot event, and Standard Webhooks signing."""
