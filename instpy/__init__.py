"""instpy: zero-code-change service governance for Python microservices, injected at build time."""

__version__ = "0.1.0"
