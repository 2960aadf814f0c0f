"""Trace-driven discrete-event simulation of a fleet that drives the real fleet policies.

``tokenmill sim`` (``tokenmill.cli.sim``) is the entry point; ``run.simulate`` runs one
scenario under one policy.
"""
