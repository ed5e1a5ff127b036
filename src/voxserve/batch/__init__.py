"""Bulk production: a manifest of items in, one audio file per item out, as fast as the servers allow.

Each module is imported by name (``voxserve.batch.run``...): the package imports none of them, so
the ``voxserve`` command starts without what only a running batch needs.
"""
