"""raftctl: the command line for running, inspecting and breaking raftnode clusters.

A client of ``raftnode``; ``raftctl.cli`` is the only module that imports click.
"""
