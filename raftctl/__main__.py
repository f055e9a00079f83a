"""``python -m raftctl``: the same as the ``raftctl`` command."""

from raftctl.cli import main

main(prog_name="raftctl")
