"""Where a run executes: its device (``--device``) and, under ``torchrun``, its process group.

    python -m trainer train ...                              # one process: CPU, or CUDA when present
    torchrun --nproc-per-node 2 -m trainer train ...         # DistributedDataParallel, 2 processes

:func:`placement` reads what torchrun sets (``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``,
``MASTER_ADDR``/``MASTER_PORT``) and joins the process group with ``torch.distributed``'s
standard ``env://`` init: gloo on the CPU, nccl on CUDA (one GPU per process, ``cuda:LOCAL_RANK``).
Without torchrun (or with one process) nothing is initialised and the trainer runs exactly as it
always has. A caller that already initialised a process group (tests, a notebook) keeps it.

How a step is shared (:class:`Placement`): every process draws the same seeded permutation and
takes its contiguous share of each global batch (``--batch-size`` is the global batch; shares
differ by at most one row, :func:`shard_bounds`). DDP averages the gradients over processes, so
each process weights its mean loss by ``world * share / batch`` and the step equals the
one-process step on the whole batch. Every process also draws the *whole* batch's noise
(binarisation, the reparameterisation's eps, a corruption) and keeps its rows
(:class:`GlobalDraws`), so the examples see the same noise at any world size: 2 processes x 64
rows train like 1 x 128 up to float rounding, and a run saved at one world size resumes at any
other on the same trajectory. Stopping (Ctrl-C, SIGTERM, a non-finite loss) is agreed by an
all-reduce every :data:`POLL_EVERY` steps, so all processes stop after the same step.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch.overrides import TorchFunctionMode

from trainer.config import ConfigError

POLL_EVERY = 16  # steps between agreed stop / finite checks (no host sync per step on a GPU)
DEVICE_RESIDENT_FRACTION = 0.25  # keep the training set on the GPU when it takes at most this share of it
_DRAWS = (torch.rand, torch.randn)


def shard_bounds(n: int, rank: int, world: int) -> tuple[int, int]:
    """Rows ``[lo, hi)`` of an ``n``-row global batch that process ``rank`` of ``world`` trains on:
    contiguous, in rank order, sizes ``n // world`` or one more (the first ``n % world`` ranks)."""
    q, r = divmod(n, world)
    lo = rank * q + min(rank, r)
    return lo, lo + q + (rank < r)


def resolve_device(choice: str, local_rank: int = 0) -> torch.device:
    """``--device``: ``cpu``; ``cuda`` (GPU ``local_rank``; ConfigError when torch sees none); or
    ``auto``: CUDA when available, else the CPU."""
    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError("device", "no CUDA GPU is available to torch (torch.cuda.is_available() is False); "
                          "use --device cpu or auto", choice)
    count = torch.cuda.device_count()
    if local_rank >= count:
        raise ConfigError("device", f"process {local_rank} on this machine has no GPU of its own ({count} visible); "
                          f"start at most {count} processes per machine", choice)
    return torch.device("cuda", local_rank)


def rank_label() -> str:
    """``"rank R/W: "`` inside a multi-process torchrun job (for one-line error messages), else ``""``."""
    world = int(os.environ.get("WORLD_SIZE", "1") or 1)
    return f"rank {os.environ.get('RANK', '?')}/{world}: " if world > 1 else ""


def is_main_process() -> bool:
    """True outside torchrun and in its global rank 0 (the one process that writes files)."""
    return os.environ.get("RANK", "0") == "0"


class PeerFailed(RuntimeError):
    """Another process of the run failed first; its own message says why."""


class GlobalDraws(TorchFunctionMode):
    """While active, a draw from ``generator`` for this process's rows ``[lo, hi)`` of an ``n``-row
    global batch is made for all ``n`` rows and sliced: the same generator state on every process
    gives every example the noise it gets in a one-process run. The batch is dimension -2 of every
    draw the trainer makes (binarisation (B, D), the reparameterisation's eps (L, B, J), a
    corruption (B, D)); any other use of the generator is refused, never silently drawn otherwise."""

    def __init__(self, generator: torch.Generator, lo: int, hi: int, n: int) -> None:
        super().__init__()
        self.generator, self.lo, self.hi, self.n = generator, lo, hi, n

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if kwargs.get("generator") is not self.generator:
            return func(*args, **kwargs)
        name = getattr(func, "__name__", repr(func))
        if func not in _DRAWS:
            raise RuntimeError(f"torch.{name} draws from the training generator; under DDP draw with "
                               "torch.rand / torch.randn and the batch on dimension -2")
        size = list(args[0] if len(args) == 1 and not isinstance(args[0], int) else args)
        if len(size) < 2 or size[-2] != self.hi - self.lo:
            raise RuntimeError(f"torch.{name} of size {tuple(size)} from the training generator: under DDP the "
                               f"batch ({self.hi - self.lo} rows here) must be dimension -2")
        size[-2] = self.n
        return func(size, **kwargs)[..., self.lo : self.hi, :]


@dataclass
class Placement:
    """A run's device and its place in the process group (``world`` = 1: a plain process)."""

    device: torch.device
    rank: int = 0
    world: int = 1
    owned: bool = False  # this run initialised the process group (and so destroys it)

    @property
    def is_main(self) -> bool:
        """The process that writes checkpoints and history and shows progress (global rank 0)."""
        return self.rank == 0

    @property
    def sync_each_step(self) -> bool:
        """Read the loss on the host every step (exact stop on a NaN): free on the CPU, a stall
        on a GPU, where finiteness is polled every :data:`POLL_EVERY` steps instead."""
        return self.device.type == "cpu"

    # --- the model and the data ---------------------------------------------------------------
    def wrap(self, model: torch.nn.Module) -> torch.nn.Module:
        """What the training step calls: DDP around ``model`` when there are several processes."""
        if self.world == 1:
            return model
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(model, device_ids=ids)

    def generator(self, seed: int) -> torch.Generator:
        """The run's generator (permutations and noise) on the training device."""
        return torch.Generator(self.device).manual_seed(seed)

    def rng_state(self, saved: torch.Tensor, seed: int) -> torch.Tensor:
        """A saved generator state for this device's generator: ``saved`` itself, or, when it is
        another device kind's (CPU mt19937 vs CUDA Philox), a fresh one seeded with ``seed``."""
        mine = self.generator(seed).get_state()
        if saved.numel() == mine.numel():
            return saved
        if self.is_main:
            print("Note: the saved random state is another device kind's; continuing from a reseeded generator "
                  "(same weights and optimizer state, not bit-for-bit)", file=sys.stderr)
        return mine

    def batch_source(self, x) -> tuple[Callable[[torch.Tensor], torch.Tensor], torch.device]:
        """``(gather, index_device)``: ``gather(idx)`` gives rows ``idx`` of ``x`` (N, D) on the
        training device, for indices on ``index_device``. On the CPU it is ``x[idx]`` itself. On a
        GPU, a set that fits (MNIST: 188 MB) is copied there once; a larger one stays in host
        memory and each batch goes through pinned staging buffers with non-blocking copies. An image
        folder's memory-mapped set (not a tensor: :class:`trainer.memmap_images.BatchInput`) is read
        a batch at a time, only the rows asked for (under DDP, this process's share)."""
        if self.device.type == "cpu":
            return x.__getitem__, torch.device("cpu")
        if not isinstance(x, torch.Tensor):
            return (lambda idx: x[idx].pin_memory().to(self.device, non_blocking=True)), torch.device("cpu")
        free, _ = torch.cuda.mem_get_info(self.device)
        if x.numel() * x.element_size() <= DEVICE_RESIDENT_FRACTION * free:
            return x.to(self.device).__getitem__, self.device
        return _PinnedGather(x, self.device), torch.device("cpu")

    def to_device(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.device, non_blocking=True)

    # --- one step ----------------------------------------------------------------------------
    def my_rows(self, rows: torch.Tensor, generator: torch.Generator):
        """This process's part of the global batch ``rows``: ``(idx, n_rows, weight, draws)`` where
        ``weight`` scales its mean loss (see the module docstring) and ``draws`` is the context
        the batch's noise is drawn in. A process whose share of a short last batch is empty trains
        on one row with weight 0 (DDP needs every process in every step)."""
        if self.world == 1:
            return rows, rows.shape[0], 1.0, contextlib.nullcontext()
        n = rows.shape[0]
        lo, hi = shard_bounds(n, self.rank, self.world)
        weight = self.world * (hi - lo) / n
        n_rows = hi - lo
        if n_rows == 0:
            lo, hi = 0, 1
        return rows[lo:hi], n_rows, weight, GlobalDraws(generator, lo, hi, n)

    def poll(self, stop: bool, sums: torch.Tensor, batch_idx: int, last: int) -> tuple[bool, bool]:
        """``(stop, non_finite)`` agreed by all processes after step ``batch_idx`` of ``last``: the
        stop request of any process, and whether any running sum went NaN/inf (checked on the
        host only here, every POLL_EVERY steps and at the epoch's end, when not every step)."""
        if self.world == 1 and self.sync_each_step:
            return stop, False
        if batch_idx % POLL_EVERY and batch_idx != last:
            return False, False
        flags = torch.stack((torch.tensor(float(stop), device=sums.device),
                             (~torch.isfinite(sums).all()).to(torch.float64)))
        if self.world > 1:
            dist.all_reduce(flags, op=dist.ReduceOp.MAX)
        stop_all, bad = flags.tolist()
        return bool(stop_all), bool(bad)

    # --- between steps -------------------------------------------------------------------------
    def agree(self, flag: bool) -> bool:
        """True on every process when ``flag`` is True on any (a stop request between epochs)."""
        if self.world == 1:
            return flag
        t = torch.tensor([float(flag)], device=self.device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def sum_(self, t: torch.Tensor) -> torch.Tensor:
        """``t`` summed over processes, in place (the epoch's running ELBO sums)."""
        if self.world > 1:
            dist.all_reduce(t)
        return t

    def from_main(self, make: Callable[[], object]) -> object:
        """``make()`` run on the main process only and its result given to all (the output
        checked and a resumable checkpoint read once, where the main process writes). When it
        raises, the main process raises that and the others :class:`PeerFailed`."""
        if self.world == 1:
            return make()
        box: list[object] = [None]
        error = None
        if self.is_main:
            try:
                box[0] = ("ok", make())
            except Exception as e:  # the others must not wait for a result that never comes
                error, box[0] = e, ("failed", str(e))
        dist.broadcast_object_list(box, src=0, device=self.device if self.device.type == "cuda" else None)
        if error is not None:
            raise error
        status, value = box[0]
        if status != "ok":
            raise PeerFailed(f"rank 0 failed: {value}")
        return value

    def close(self) -> None:
        """Leave the process group together (after the last collective of the run)."""
        if self.owned and dist.is_initialized():
            dist.barrier()
            dist.destroy_process_group()

    @contextlib.contextmanager
    def local_main_first(self) -> Iterator[None]:
        """The block runs on each machine's first process before the others (a download or a
        cache build happens once per machine; the others then find it done)."""
        first = int(os.environ.get("LOCAL_RANK", "0")) == 0
        if self.world > 1 and not first:
            dist.barrier()
        yield
        if self.world > 1 and first:
            dist.barrier()


class _PinnedGather:
    """``gather(idx)`` for a host-resident set on a GPU: rows into one of two pinned buffers,
    then a non-blocking copy; a buffer is reused only after its previous copy has finished."""

    def __init__(self, x: torch.Tensor, device: torch.device) -> None:
        self.x, self.device, self.turn = x, device, 0
        self.buffers: list[torch.Tensor] = []
        self.copied = [torch.cuda.Event(), torch.cuda.Event()]

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        k = idx.shape[0]
        if not self.buffers or self.buffers[0].shape[0] < k:
            self.buffers = [torch.empty((k, *self.x.shape[1:]), dtype=self.x.dtype).pin_memory() for _ in range(2)]
        i, self.turn = self.turn, 1 - self.turn
        self.copied[i].synchronize()  # the copy made from this buffer two batches ago
        buf = torch.index_select(self.x, 0, idx, out=self.buffers[i][:k])
        out = buf.to(self.device, non_blocking=True)
        self.copied[i].record()
        return out


class StopFlag:
    """The first Ctrl-C (SIGINT) or SIGTERM asks the loop to stop at the next batch boundary and
    save a resumable checkpoint; a second one aborts (KeyboardInterrupt). torchrun passes a Ctrl-C
    or SIGTERM it gets on to every process; they agree on the step to stop after
    (:meth:`Placement.poll`), and only the main process ``announce``-s it."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, announce: bool = True) -> None:
        self.requested, self.announce = False, announce
        self._old: dict[int, object] = {}

    def __enter__(self) -> StopFlag:
        for s in self.SIGNALS:
            with contextlib.suppress(ValueError):  # not the main thread: no signals expected
                self._old[s] = signal.signal(s, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        if self.announce:
            print(f"\nInterrupted ({signal.Signals(signum).name}): saving a resumable checkpoint after this batch "
                  "(Ctrl-C again to abort)", file=sys.stderr)

    def __exit__(self, *exc) -> None:
        for s, old in self._old.items():
            signal.signal(s, old)


@contextlib.contextmanager
def placement(device: str) -> Iterator[Placement]:
    """The run's :class:`Placement` for ``--device`` ``device``; under torchrun it joins (and on
    leaving, destroys) the process group unless the caller had already initialised one."""
    world = dist.get_world_size() if dist.is_initialized() else int(os.environ.get("WORLD_SIZE", "1") or 1)
    local_rank = int(os.environ.get("LOCAL_RANK", "0") or 0) if world > 1 else 0
    dev = resolve_device(device, local_rank)
    if world == 1:
        yield Placement(dev)
        return
    owned = not dist.is_initialized()
    if owned:
        if dev.type == "cuda":
            torch.cuda.set_device(dev)
        dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", init_method="env://")
    try:
        yield Placement(dev, dist.get_rank(), world, owned)
    finally:
        if owned and dist.is_initialized():
            with contextlib.suppress(Exception):  # peers may be gone already; exiting cleans up too
                dist.destroy_process_group()
