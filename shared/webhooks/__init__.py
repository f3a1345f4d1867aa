"""Webhooks: Standard Webhooks signing and callback URL safety.

A job's outcome event itself is written by `shared.jobs.events`.
"""
