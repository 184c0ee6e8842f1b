"""Reads, split by what they read. Selectors return data (QuerySets, dataclasses), never
wording or URLs."""
