"""The learner: minibatches from the replay to the device, the algorithm's update on them, its metrics.

Data flow of one update (CUDA; two slots so that update k runs on the GPU while batch k + 1 is sampled):

    slot s = k % 2:  host waits for the copy issued from slot s two updates ago (long done: the device
                     queue never drains) -> replay.sample(out=pinned host batch s)   (C++ threads, no GIL)
    copy stream:     waits (GPU-side) until update k - 2 has read static device batch s, copies host -> device
    learner stream:  waits (GPU-side) for that copy, replays slot s's captured graph (forward, loss,
                     backward, optimiser step, metric sums += (loss, q ...)), then the algorithm's
                     after_update (e.g. the target sync every target_update updates)

In the steady state the learner issues no host synchronisation: losses and Q means are summed on the
device and read once per log row (``read_metrics``). The first ``GRAPH_WARMUP`` updates run eagerly
(they create the optimiser state; PyTorch's CUDA-graph notes ask for warm-up before capture), then each
slot's update is captured once (``torch.cuda.graph``, thread-local capture mode so the actor thread may
keep using CUDA meanwhile) and replayed from then on. On the CPU there is one slot, no copy and no graph.

Two drivers, one state (see rate_limiter.py for the ratio contract):
- lockstep: ``credit()`` runs the updates it earns at once, on the caller's thread (exact, reproducible);
- threaded: a learner thread takes updates from the rate limiter as the actor earns them. The learner
  thread owns the optimiser, the online and target networks and the metric sums; the actor reads them
  only while the learner is drained (checkpoints, test epochs) or under ``_lock`` (metrics).
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, fields
from typing import Callable, Protocol, Sequence

import torch

from ..native.replay import ReplayMemory, TransitionBatch
from .rate_limiter import RateLimiter

GRAPH_WARMUP = 3   # eager updates before the capture


class Learns(Protocol):
    """What the learner needs of an algorithm."""

    METRICS: Sequence[str]          # names of the scalars update() returns, in order (e.g. ("loss", "q_mean"))
    batch_rows: int                 # rows of one minibatch
    capturable: bool                # update() has no host synchronisation and static shapes (CUDA graphs)

    def sample(self, replay: ReplayMemory, out: TransitionBatch) -> TransitionBatch: ...
    def update(self, batch: TransitionBatch) -> Sequence[torch.Tensor]: ...
    def after_update(self, updates: int) -> None: ...


@dataclass
class _Slot:
    host: TransitionBatch
    device: TransitionBatch
    copied: torch.cuda.Event | None = None      # the host -> device copy of this slot's batch is done
    consumed: torch.cuda.Event | None = None    # the update reading this slot's device batch is done
    graph: torch.cuda.CUDAGraph | None = None


def _copy_into(dst: TransitionBatch, src: TransitionBatch) -> None:
    for f in fields(TransitionBatch):
        getattr(dst, f.name).copy_(getattr(src, f.name), non_blocking=True)


class Learner:
    """Runs algo.update on minibatches sampled from replay, as the rate limiter allows.

    threaded: run the updates on a learner thread (start() it); else credit() runs them inline.
    max_lag: updates the learner may fall behind before the actor waits (threaded mode).
    cuda_graphs: capture the update in CUDA graphs (CUDA and algo.capturable only).
    on_update: called after every update on the learner's thread (e.g. refreshing the actor's weights).
    """

    def __init__(self, algo: Learns, replay: ReplayMemory, device: torch.device, *, threaded: bool,
                 updates: int = 0, credit: float = 0.0, max_lag: float = 4.0, cuda_graphs: bool = True,
                 on_update: Callable[[int], None] | None = None):
        self.algo, self.replay, self.device = algo, replay, device
        self.threaded = threaded
        self.updates = updates
        self.limiter = RateLimiter(max_lag, credit)
        self.on_update = on_update
        self._lock = threading.Lock()            # held by the learner during each update (metrics readers wait)
        self._thread: threading.Thread | None = None
        # on-policy algorithms (PQN) take whole rollouts from their buffer: no minibatch slots, no graphs
        cuda = device.type == "cuda" and not getattr(algo, "on_policy", False)
        self._use_graphs = cuda and cuda_graphs and algo.capturable
        self._sums = torch.zeros(len(algo.METRICS), device=device)
        self._count = 0                          # updates summed into _sums since the last read
        self._eager = 0                          # updates run eagerly by this learner (the warm-up before capture)
        if cuda:
            self.stream = torch.cuda.Stream(device)
            self._copy_stream = torch.cuda.Stream(device)
            self._slots = [self._make_slot(pinned=True) for _ in range(2)]
        else:
            self.stream = None
            host = replay.empty_batch(algo.batch_rows)
            self._slots = [_Slot(host=host, device=host)]
        self._pool = None                        # memory pool shared by the captured graphs

    def _make_slot(self, pinned: bool) -> _Slot:
        host = self.replay.empty_batch(self.algo.batch_rows, pin_memory=pinned)
        device = TransitionBatch(**{f.name: torch.empty_like(getattr(host, f.name), device=self.device)
                                    for f in fields(TransitionBatch)})
        return _Slot(host=host, device=device, copied=torch.cuda.Event(), consumed=torch.cuda.Event())

    # -- driving ------------------------------------------------------------------------------------
    def start(self) -> None:
        """Threaded mode: start the learner thread."""
        if self.threaded and self._thread is None:
            self._thread = threading.Thread(target=self._run, name="actormimic-learner", daemon=True)
            self._thread.start()

    def credit(self, amount: float) -> None:
        """The actor earned `amount` updates (agent steps x updates per agent step). Lockstep: run the
        whole updates now; threaded: hand them to the learner thread (waiting if it lags by > max_lag)."""
        self.limiter.credit(amount)
        if self.threaded:
            return
        acting = torch.cuda.current_stream(self.device) if self.stream is not None else None
        if acting is not None:
            self.stream.wait_stream(acting)      # GPU-side: the act step has read the weights the update writes
        while self.limiter.try_acquire():
            self._update_once()
            self.limiter.release()
        if acting is not None:
            acting.wait_stream(self.stream)      # GPU-side: the next act step reads the updated weights

    def earns_update(self, amount: float) -> bool:
        """Whether credit(amount) would make a whole update due now (lockstep: it would run at once)."""
        return self.limiter.pending + amount >= 1.0

    def drain(self) -> None:
        """Wait until every whole update earned is done and on the device (checkpoints, tests, the end)."""
        self.limiter.drain()
        if self.stream is not None:
            torch.cuda.current_stream(self.device).wait_stream(self.stream)

    @property
    def pending_credit(self) -> float:
        """The fraction of an update earned and not yet run (after drain(): < 1), for the checkpoint."""
        return self.limiter.pending

    def stop(self) -> None:
        """End the learner thread (after its current update) and wait for it."""
        self.limiter.stop()
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def _run(self) -> None:
        try:
            while self.limiter.acquire():
                self._update_once()
                self.limiter.release()
        except BaseException as exc:   # handed to the actor, which raises it
            self.limiter.stop(exc)

    # -- one update ---------------------------------------------------------------------------------
    def _update_once(self) -> None:
        with self._lock, _on_stream(self.stream):
            if self.stream is None:
                batch = self.algo.sample(self.replay, self._slots[0].host)
                self._sums += torch.stack([m.detach().float() for m in self.algo.update(batch)])
            else:
                self._update_cuda()
            self._count += 1
            self.updates += 1
            self.algo.after_update(self.updates)
            if self.on_update is not None:
                self.on_update(self.updates)

    def _update_cuda(self) -> None:
        """One update on the learner stream (the caller made it current)."""
        slot = self._slots[self.updates % len(self._slots)]
        slot.copied.synchronize()                          # the host batch of two updates ago has been copied
        self.algo.sample(self.replay, slot.host)
        self._copy_stream.wait_event(slot.consumed)        # GPU-side: update k - 2 has read the device batch
        with torch.cuda.stream(self._copy_stream):
            _copy_into(slot.device, slot.host)
            slot.copied.record(self._copy_stream)
        self.stream.wait_event(slot.copied)
        if self._use_graphs and self._eager >= GRAPH_WARMUP:
            if slot.graph is None:
                self._capture_all()
            slot.graph.replay()
        else:
            self._sums += torch.stack([m.detach().float() for m in self.algo.update(slot.device)])
            self._eager += 1
        slot.consumed.record(self.stream)

    def _capture_all(self) -> None:
        """Capture every slot's update (recorded, not run: the caller replays this slot's graph next)."""
        for slot in self._slots:
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self._pool, stream=self.stream, capture_error_mode="thread_local"):
                self._sums += torch.stack([m.detach().float() for m in self.algo.update(slot.device)])
            self._pool = graph.pool()
            slot.graph = graph

    # -- metrics ------------------------------------------------------------------------------------
    def read_metrics(self) -> dict[str, float]:
        """Means of the update metrics since the last call (NaN when no update ran); one device read."""
        with self._lock, _on_stream(self.stream):
            count = self._count
            sums = self._sums.tolist()        # on the learner stream: after every update summed so far
            self._sums.zero_()
            self._count = 0
        if count == 0:
            return {name: float("nan") for name in self.algo.METRICS}
        return {name: value / count for name, value in zip(self.algo.METRICS, sums)}


def _on_stream(stream: torch.cuda.Stream | None):
    """Make stream current on this thread (a no-op context on the CPU)."""
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
