"""Thin Prefect tasks around pipeline calls: retries, tags, artifacts. No domain logic here."""
