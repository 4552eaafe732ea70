"""How a stage connects to a real Ray: once per stage (the shared-folder probe's connection is the
one the run uses, then closed), and a warm pool on Ray has its workers import the tasks' module
while the driver goes on. One local Ray for the module; the stage that joins it runs in a child
process (a second driver), as ``imgnet verify --executor ray --address ...`` would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from imgnet_tools.execute.params import ExecutorParams
from imgnet_tools.execute.tasks import run_tasks, warm_pool
from tests.conftest import REPO

pytestmark = pytest.mark.slow

# A second driver: verify on the cluster at ADDRESS, counting its connections to Ray.
JOIN = """
import json, sys
import ray
from imgnet_tools.images.verify import VerifyParams, verify

inits = []
real_init = ray.init
def counting_init(*args, **kwargs):
    inits.append(kwargs.get("address"))
    return real_init(*args, **kwargs)
ray.init = counting_init
manifest, out, address = sys.argv[1], sys.argv[2], sys.argv[3] or None
result = verify(VerifyParams(manifest=manifest, out=out, executor="ray", address=address))
print(json.dumps({"inits": inits, "connected_after": ray.is_initialized(), "rows": result.to_dict()["rows"]}))
"""


def join(tmp_path: Path, address: str, env: dict[str, str] | None = None) -> dict[str, object]:
    """verify (6 rows) in a second driver with ``--address address`` ("" for none); what it saw."""
    from imgnet_tools.images.scan import ScanParams, scan
    from tests import imagegen

    imagegen.make_imagefolder(tmp_path / "src" / "train", ["n01440764", "n01443537"], per_class=3)
    scan(ScanParams(src=(str(tmp_path / "src"),), out=str(tmp_path / "work"), workers=1))
    done = subprocess.run([sys.executable, "-c", JOIN, str(tmp_path / "work" / "manifest.parquet"),
                           str(tmp_path / "out" / "verified.parquet"), address],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), *sys.path]), **(env or {})})
    assert done.returncode == 0, done.stderr[-3000:]
    got: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return got


def pid_of(_: int) -> int:
    return os.getpid()


def test_a_stage_that_joins_a_cluster_connects_once_and_disconnects(ray_session, tmp_path: Path) -> None:
    address = ray_session.get_runtime_context().gcs_address
    got = join(tmp_path, address)
    assert got["inits"] == [address]  # the probe's connection was the run's: one Ray job, not two
    assert got["connected_after"] is False  # and the stage closed it
    assert got["rows"] == 6
    assert not list((tmp_path / "out").glob(".imgnet-probe-*"))


def test_a_warm_pool_on_ray_warms_the_workers_and_is_taken_by_the_run(ray_session) -> None:
    from imgnet_tools.execute.pool import current_pid

    params = ExecutorParams(executor="ray")
    with warm_pool(current_pid, params) as warm:
        runner = warm.ray
        assert runner is not None and len(runner._warming) == runner.cpus == 2
        assert ray_session.get(runner._warming, timeout=120) == [None, None]  # each worker imported the module
        pids = run_tasks(pid_of, range(4), params, warm=warm)
        assert warm.ray is None  # the run took it (and closed it)
    assert len(pids) == 4 and all(isinstance(p, int) and p != os.getpid() for p in pids)
    assert ray_session.is_initialized()  # we did not start this Ray, so neither closed it
    with warm_pool(current_pid, params) as warm:  # a warm runner no run took is closed on leaving
        assert warm.ray is not None
    assert warm.ray is None and ray_session.is_initialized()


def test_no_address_starts_a_ray_of_its_own_even_when_one_is_running(ray_session, tmp_path: Path) -> None:
    """Without --address a stage starts its own local Ray, even when another is reachable (a
    ``ray start`` cluster, a stale address file, RAY_ADDRESS): Ray would otherwise join that one and
    refuse the CPU count (``num_cpus ... must not be provided``)."""
    running = ray_session.get_runtime_context().gcs_address
    got = join(tmp_path, "", env={"RAY_ADDRESS": running})
    assert got["inits"] == ["local"]
    assert got["connected_after"] is False
    assert got["rows"] == 6
