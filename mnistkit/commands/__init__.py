"""Sub-commands of the ``mnistkit`` CLI, one module each, each with ``register(subparsers)``."""
