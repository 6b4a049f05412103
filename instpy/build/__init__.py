"""The build side: scan (plan), inject (LibCST trampolines), emit (tree or wheelhouse).

Never imported by `instpy.runtime`: governed artifacts carry the runtime only.
"""
