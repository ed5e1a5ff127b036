"""voxserve: a self-hosted speech synthesis service.

Importing the package loads nothing else, so ``import voxserve.client`` stays
light. What engine authors use is exported by :mod:`voxserve.engines`
(docs/engines.md#adding-an-engine); the settings are :mod:`voxserve.config`.
"""

__version__ = "0.1.0"
