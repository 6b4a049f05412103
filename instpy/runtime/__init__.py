"""The runtime carried into every governed artifact.

Imports only the standard library, PyYAML and psutil; never libcst, click or `instpy.build`.
"""
