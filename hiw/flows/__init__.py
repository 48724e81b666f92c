"""Prefect flows: thin wiring of the plain stage functions in ``hiw.flows.stages``."""
