"""One run over several devices: data-parallel training (DDP) through accelerate.

Two ways in. Under a launcher (`torchrun --nproc_per_node N -m harness run ...`, `accelerate launch`),
WORLD_SIZE is set and each process joins the launcher's process group. Without one, `harness run
--devices N` starts N processes itself (`launch`): torch's own process starter (spawn), rendezvous on
127.0.0.1 at a free port, gloo on CPU, nccl on CUDA with one GPU per process. In every case rank 0 is
the main process: it alone claims the run directory and writes the record; the others train their
shard of each batch and return. The world size is part of the record's environment, never of the
config hash: a run on N devices has the run id of the same run on one.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.multiprocessing as mp

from harness.errors import HarnessError, RunFailed, UsageError
from harness.planning import RunPlan

log = logging.getLogger("harness")
GRACE_S = 10.0  # how long the other processes get to stop by themselves after one fails


def world_size() -> int:
    """How many processes train this run (1 unless a launcher, or `launch`, set WORLD_SIZE)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def rank() -> int:
    return int(os.environ.get("RANK", "0"))


def is_main_process() -> bool:
    return rank() == 0


def launched() -> bool:
    """True inside a process that a launcher (torchrun, accelerate launch, `launch`) started."""
    return "WORLD_SIZE" in os.environ


def per_device_batch(batch_size: int, processes: int) -> int:
    """The protocol's batch_size is the global batch: each of `processes` devices takes an equal share."""
    if batch_size % processes:
        raise UsageError(f"the protocol's batch size {batch_size} is the global batch and cannot be split evenly "
                         f"over {processes} devices (use a number of devices that divides {batch_size})")
    return batch_size // processes


def check_devices(plans: Sequence[RunPlan], devices: int, device: str) -> int:
    """The number of processes these runs train on; a request that cannot work is a usage error."""
    if isinstance(devices, bool) or not isinstance(devices, int) or devices < 1:
        raise UsageError(f"invalid --devices {devices!r}: expected a positive integer")
    size = world_size() if launched() else devices
    if launched() and devices not in (1, size):
        raise UsageError(f"--devices {devices} disagrees with the launcher, which started {size} processes "
                         "(under torchrun or accelerate launch, leave --devices out)")
    if size == 1:
        return 1
    control = [p.task.spec.name for p in plans if p.modality == "control"]
    if control:
        raise UsageError(f"--devices {size}: task '{control[0]}' is a control (RL) task, and RL training runs on "
                         "one device for now (drop --devices)")
    local = int(os.environ.get("LOCAL_WORLD_SIZE", size))
    if device == "cuda" and local > torch.cuda.device_count():
        raise UsageError(f"--devices {local} asks for {local} GPUs, but torch sees {torch.cuda.device_count()}")
    for plan in plans:
        per_device_batch(plan.protocol.batch_size, size)
    return size


def join(device: str) -> None:
    """Set up a process a launcher started: its GPU, and quiet logs on every rank but 0. A launcher's world
    of one process is a plain one-process run (accelerate would otherwise set up a process group of one)."""
    if world_size() == 1:
        for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE"):
            os.environ.pop(name, None)
        return
    if device == "cuda":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    if not is_main_process():
        log.setLevel(logging.WARNING)
    atexit.register(_leave)


def _leave() -> None:
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def launch(target: Callable[..., Any], kwargs: dict[str, Any], processes: int) -> None:
    """Run `target(**kwargs)` in `processes` fresh processes on this machine, as ranks 0..processes-1 of one
    process group, and wait for all of them. The first failure stops the others and is raised here."""
    context = mp.get_context("spawn")
    errors = context.SimpleQueue()
    logging_setup = (log.level, min((h.level for h in log.handlers), default=None))
    setup = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "WORLD_SIZE": str(processes),
             "LOCAL_WORLD_SIZE": str(processes), "GROUP_RANK": "0"}
    if sys.platform == "linux":  # gloo's connections between the processes on the loopback interface too
        setup["GLOO_SOCKET_IFNAME"] = os.environ.get("GLOO_SOCKET_IFNAME", "lo")
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    threads = int(os.environ.get("OMP_NUM_THREADS") or max(1, cores // processes))
    log.info("starting %d processes (rendezvous at 127.0.0.1:%s)", processes, setup["MASTER_PORT"])
    procs = mp.start_processes(_worker, args=(target, kwargs, setup, threads, logging_setup, errors),
                               nprocs=processes, join=False, start_method="spawn")
    try:
        while not procs.join(grace_period=GRACE_S):
            pass
    except (mp.ProcessExitedException, mp.ProcessRaisedException) as exc:
        raised = []
        while not errors.empty():
            raised.append(errors.get())
        if raised:
            raise raised[0] from None
        raise RunFailed(f"one of the {processes} training processes failed: {exc}") from None
    except BaseException:  # interrupted: no process outlives the command
        for process in procs.processes:
            if process.is_alive():
                process.terminate()
        for process in procs.processes:
            process.join()
        raise


def _worker(index: int, target: Callable[..., Any], kwargs: dict[str, Any], setup: dict[str, str], threads: int,
            logging_setup: tuple[int, int | None], errors: Any) -> None:
    """One started process: rank `index`. A failure is passed to the parent, and the process exits non-zero."""
    os.environ.update(setup | {"RANK": str(index), "LOCAL_RANK": str(index)})
    os.environ.setdefault("OMP_NUM_THREADS", str(threads))
    torch.set_num_threads(threads)
    _configure_logging(index, *logging_setup)
    try:
        target(**kwargs)
    except HarnessError as exc:
        errors.put(type(exc)(str(exc)) if type(exc).__init__ is Exception.__init__ else RunFailed(str(exc)))
        sys.exit(exc.exit_code)
    except Exception as exc:
        errors.put(RunFailed(f"training process {index} failed: {type(exc).__name__}: {exc}"))
        sys.exit(1)
    _leave()


def _configure_logging(index: int, level: int, handler_level: int | None) -> None:
    """The parent's harness log settings (a fresh process has none): rank 0 logs like a one-process run,
    the other ranks only warnings, marked with their rank."""
    log.setLevel(level if index == 0 else max(level, logging.WARNING))
    log.propagate = False
    if handler_level is None:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(message)s" if index == 0 else f"[process {index}] %(message)s"))
    handler.setLevel(handler_level)
    log.handlers[:] = [handler]
