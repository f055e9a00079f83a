"""raftctl's commands, one module a group; ``raftctl.cli`` holds the click group, the shared
options and helpers, and ``COMMAND_MODULES``, which says where each command lives."""
