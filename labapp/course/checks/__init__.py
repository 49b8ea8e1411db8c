"""The exercises: a runtime-free core (core.py), shared support, and one module of checks per notebook."""
