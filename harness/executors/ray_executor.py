"""The Ray executor: each missing cell is one Ray task, on the GPUs and machines of a Ray cluster (joined
with an address) or of a Ray instance started here.

The driver (this process) owns the runs directory. A worker plans its cell again (the run id must match
the driver's), runs it into a scratch store in a temporary folder, and ships the finished run folder back
as a tar in memory; the driver imports it with `RunStore.import_run` (staged, renamed into place, indexed),
so only finished runs ever appear in the runs directory. The driver holds each cell's lock from the moment
it hands the cell out until its run is imported: another runner on the same directory sees it as running
elsewhere. A worker that dies mid-cell (killed, out of memory, node lost) is retried by Ray up to
`max_retries` times; a cell that fails in the harness is reported as failed and not retried.

`ray` is imported only here, inside functions: without it, choosing this executor is one usage error
(raised before torch is imported: the training stack is imported by the workers, not at module top).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections import deque
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.errors import HarnessError, RunInProgress, UsageError, first_line
from harness.executors.base import CellJob, CellResult, Report
from harness.leaderboard import Cell, Leaderboard
from harness.planning import plan_cell
from harness.progress import ProgressReporter
from harness.store import RESULT, RunStore
from harness.taskfiles.discovery import task_search_environment
from harness.tracking import forwarded_environment

log = logging.getLogger("harness")
RAY_MISSING = "the Ray executor needs ray: pip install 'harness[ray]'"
# Tests only: "RUN_ID_PART:MARKER_FILE" makes the worker die (os._exit) after training the first cell whose
# run id contains RUN_ID_PART, before shipping it, unless MARKER_FILE exists (it is created first).
KILL_ONCE_ENV = "HARNESS_TEST_KILL_WORKER_ONCE"


def import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    return ray


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, gpus_per_run: float | None = None, cpus_per_run: float = 1.0,
                 max_parallel: int | None = None, max_retries: int = 2, device: str = "auto"):
        self.ray = import_ray()
        self.address, self.gpus_per_run, self.cpus_per_run = address, gpus_per_run, cpus_per_run
        self.max_parallel, self.max_retries, self.device = max_parallel, max_retries, device

    def run(self, board: Leaderboard, jobs: Sequence[CellJob], store: RunStore, explain: bool,
            progress: ProgressReporter, report: Report) -> None:
        if not jobs:
            return
        started_here = self._connect()
        try:
            gpus = self._gpus_per_run()
            log.info("Ray: %s, %g CPU and %g GPU per cell, at most %s cells at a time, %d retries of a dead worker",
                     _describe(self.ray.cluster_resources()), self.cpus_per_run, gpus,
                     self.max_parallel or "all", self.max_retries)
            options: dict[str, Any] = {"num_cpus": self.cpus_per_run, "num_gpus": gpus, "max_retries": self.max_retries}
            forwarded = forwarded_environment() | task_search_environment()
            if forwarded:  # a worker on another node does not inherit this environment
                options["runtime_env"] = {"env_vars": forwarded}
            remote = self.ray.remote(run_cell_remote).options(**options)
            self._drive(remote, board, jobs, store, explain, gpus > 0, report)
        finally:
            if started_here:
                self.ray.shutdown()

    def _connect(self) -> bool:
        """Join the cluster at the address, or start Ray on this machine; False when Ray was already up."""
        if self.ray.is_initialized():
            return False
        if self.address:
            self.ray.init(address=self.address, logging_level=logging.WARNING)
        else:
            self.ray.init(num_cpus=os.cpu_count(), include_dashboard=False, logging_level=logging.WARNING)
        return True

    def _gpus_per_run(self) -> float:
        cluster = self.ray.cluster_resources().get("GPU", 0)
        gpus = self.gpus_per_run
        if gpus is None:
            gpus = 0.0 if self.device == "cpu" or not cluster else 1.0
        if gpus > 0 and not cluster:
            raise UsageError(f"--gpus-per-run {gpus:g} asks for GPUs, but the Ray cluster has none")
        if self.device == "cuda" and gpus == 0:
            raise UsageError("--device cuda with the Ray executor needs GPUs per cell (--gpus-per-run)")
        return gpus

    def _drive(self, remote: Any, board: Leaderboard, jobs: Sequence[CellJob], store: RunStore, explain: bool,
               use_gpu: bool, report: Report) -> None:
        """Hand out cells (at most max_parallel in flight), collect each as it finishes."""
        waiting, in_flight = deque(jobs), {}
        limit = self.max_parallel or len(jobs)
        kill_once = os.environ.get(KILL_ONCE_ENV)
        try:
            while waiting or in_flight:
                while waiting and len(in_flight) < limit:
                    job = waiting.popleft()
                    plan = job.plan
                    assert plan is not None
                    held = contextlib.ExitStack()
                    try:
                        held.enter_context(store.hold(plan.run_id))
                    except RunInProgress as exc:
                        report(CellResult(job, "elsewhere", error=str(exc)))
                        continue
                    stored = store.find_complete(plan.run_id, plan.config_hash)
                    if stored is not None:  # another runner finished it since the board was planned
                        held.close()
                        report(CellResult(job, "reused", stored))
                        continue
                    ref = remote.remote(board, job.cell, plan.run_id, explain, use_gpu, kill_once)
                    in_flight[ref] = (job, held, time.time())
                if not in_flight:
                    break
                done, _ = self.ray.wait(list(in_flight), num_returns=1)
                for ref in done:
                    job, held, submitted = in_flight.pop(ref)
                    with held:
                        report(self._collect(ref, job, store, submitted))
        finally:  # interrupted: stop what is still running, let go of its locks
            for ref, (_, held, _) in in_flight.items():
                with contextlib.suppress(Exception):
                    self.ray.cancel(ref, force=True)
                held.close()

    def _collect(self, ref: Any, job: CellJob, store: RunStore, submitted: float) -> CellResult:
        """The finished task's result; its run folder imported into the driver's store."""
        started = time.perf_counter()
        try:
            payload = self.ray.get(ref)
        except Exception as exc:  # the task itself failed in Ray (worker died more often than retried, ...)
            return CellResult(job, "failed", error=f"the Ray task failed: {first_line(exc)}", where="ray")
        fetched = time.perf_counter()
        record, overhead = None, {"scheduling_s": round(payload["started_at"] - submitted, 3)}
        if payload["archive"] is not None:
            try:
                record = store.import_run(payload["archive"], job.plan.run_id if job.plan else None)
            except HarnessError as exc:
                return CellResult(job, "failed", error=f"importing its run failed: {exc}", where=payload["where"])
            overhead |= {"shipped_bytes": len(payload["archive"]),
                         "shipping_s": round(payload["pack_s"] + time.perf_counter() - started, 3),
                         "import_s": round(time.perf_counter() - fetched, 3)}
        status = "ran" if payload["status"] == "ran" else "failed"
        return CellResult(job, status, record, payload["error"], payload["seconds"], payload["where"], overhead)


def run_cell_remote(board: Leaderboard, cell: Cell, run_id: str, explain: bool, use_gpu: bool,
                    kill_once: str | None = None) -> dict[str, Any]:
    """Inside a Ray worker: plan the cell, run it into a scratch store, return the finished run folder as
    bytes (None when no run folder was finished) with how it went. Never raises for a failing cell."""
    from harness.executors.local import run_cell_here  # torch and the training stack: workers only

    started_at = time.time()
    where = node_name()
    device = "cuda" if use_gpu else "cpu"  # with GPUs, Ray has set CUDA_VISIBLE_DEVICES to the ones it gave
    scratch = Path(tempfile.mkdtemp(prefix="harness-ray-"))
    answer: dict[str, Any] = {"status": "failed", "error": "", "seconds": 0.0, "archive": None, "pack_s": 0.0,
                              "where": where, "started_at": started_at}
    try:
        try:
            plan = plan_cell(board, cell)
        except HarnessError as exc:
            return answer | {"error": str(exc)}
        if plan.run_id != run_id:
            return answer | {"error": f"{where} plans run {plan.run_id}, the driver {run_id}: the harness, the "
                                      "task's data or the backbone differ there"}
        store = RunStore(scratch)
        result = run_cell_here(CellJob(0, cell, plan), store, device, explain, ProgressReporter(False), where)
        _maybe_die(kill_once, run_id)
        answer |= {"status": result.status, "error": result.error, "seconds": result.seconds}
        if (store.run_dir(run_id) / RESULT).is_file():
            packing = time.perf_counter()
            answer["archive"] = store.export_run(run_id)
            answer["pack_s"] = round(time.perf_counter() - packing, 3)
        return answer
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def node_name() -> str:
    """Where a Ray worker runs: its host name and the node's IP address."""
    try:
        import ray.util

        return f"{socket.gethostname()} ({ray.util.get_node_ip_address()})"
    except Exception:
        return socket.gethostname()


def _maybe_die(kill_once: str | None, run_id: str) -> None:
    if not kill_once:
        return
    part, marker = kill_once.split(":", 1)
    if part in run_id and not os.path.exists(marker):
        Path(marker).write_text(run_id)
        os._exit(1)  # a worker killed mid-cell: its scratch run is finished, nothing has been shipped


def _describe(resources: dict[str, float]) -> str:
    nodes = sum(1 for key in resources if key.startswith("node:") and not key.startswith("node:__internal"))
    return f"{nodes} node(s), {resources.get('CPU', 0):g} CPU, {resources.get('GPU', 0):g} GPU"
