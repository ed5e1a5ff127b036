"""Clients of a running voxserve: the ``voxserve jobs`` commands."""
