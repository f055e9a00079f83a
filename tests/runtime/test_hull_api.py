"""HullAPI, the seed-named embedding face: start, run commands, stop, start again in one program."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio

from raftnode.api import HullAPI, PilotAPI
from raftnode.config import parse_config
from raftnode.node.statemachines import Counter

from ..transport.helpers import free_ports, wait_until


def one_node_config(tmp_path: Path):
    peer, client = free_ports(2)
    text = f'[cluster]\nname = "solo"\n\n[[nodes]]\nid = "n1"\npeer = "127.0.0.1:{peer}"\nclient = "127.0.0.1:{client}"\n'
    return parse_config(text, path=tmp_path / "cluster.toml")


def test_the_shipped_state_machines_satisfy_the_pilot_protocol() -> None:
    assert isinstance(Counter(), PilotAPI)


@pytest.mark.trio
async def test_a_hull_stopped_and_started_again_on_the_same_data_dir_in_one_program_recovers(tmp_path: Path) -> None:
    # An application restarting its replica without exiting: the default DiskStorage that
    # from_config opened must be released when the node stops, or the second start finds the
    # directory locked ("in use by another process", though it is this one).
    config = one_node_config(tmp_path)
    with trio.fail_after(10):
        for round_ in range(2):
            hull = HullAPI.from_config(config, "n1", pilot=Counter())
            async with trio.open_nursery() as nursery:
                await nursery.start(hull.run)
                await wait_until(lambda hull=hull: hull.status().role == "leader", what="n1 to elect itself")
                outcome = await hull.run_command("incr 5", timeout=2)
                assert outcome.result == 5 * (round_ + 1), (round_, outcome)
                hull.stop()
