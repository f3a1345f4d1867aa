"""Secrets at rest and API keys: encryption, token fingerprints, key hashing."""
