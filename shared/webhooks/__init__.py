"""Webhooks: Standard Webhooks signing, callback URL safety, and the delivery outbox."""
