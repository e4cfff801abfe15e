"""The behaviour tests that run on each client family (see tests/families.py)."""
