"""Acting helpers shared by every algorithm: exploration schedule, masked greedy and random legal actions,
and the actor's copy of the weights in the overlapped mode.

Action masks are bool [n, K] over a network's outputs: K = 18 for the multitask networks (a game's
legal actions marked), K = the game's number of actions for an expert (every column legal).
"""

from __future__ import annotations

import contextlib
import copy
import threading
from typing import Callable

import numpy as np
import torch
from torch import nn


def epsilon_at(frame: int, start: float, end: float, decay_frames: int) -> float:
    """Linear decay from start (frame 0) to end (frame decay_frames), constant afterwards."""
    if decay_frames <= 0:
        return end
    fraction = min(1.0, frame / decay_frames)
    return start + fraction * (end - start)


def masked_argmax(scores: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """Each row's best legal column: argmax of scores [n, K] over the columns where masks [n, K] is True."""
    return scores.float().masked_fill(~masks, float("-inf")).argmax(1)


def random_legal_actions(rng: np.random.Generator, masks: np.ndarray) -> np.ndarray:
    """One uniformly random legal column per row of bool masks [n, K] (every row has a legal one)."""
    rank = rng.integers(0, masks.sum(1))                       # which legal column, per row
    return (np.cumsum(masks, 1) > rank[:, None]).argmax(1)     # the column holding the rank-th legal one


def epsilon_greedy(rng: np.random.Generator, epsilon: float, masks: np.ndarray,
                   greedy_actions: Callable[[], torch.Tensor], num_legal: int | None = None) -> np.ndarray:
    """Epsilon-greedy legal actions for the rows of masks [n, K]: a random legal column with probability
    epsilon, else greedy_actions() (the caller's masked argmax, [n], on any device). greedy_actions runs
    only when some row is greedy, so an all-exploring step costs no forward pass; its result is the one
    device-to-host copy of the step.

    num_legal: every row's legal columns are 0 .. num_legal - 1 (an expert's outputs), so a random action
    is rng.integers(num_legal), the very draw random_legal_actions makes for such rows, made quicker.
    """
    if num_legal is None:
        actions = random_legal_actions(rng, masks)
    else:
        actions = rng.integers(num_legal, size=len(masks))
    greedy = rng.random(len(masks)) >= epsilon
    if greedy.any():
        actions = np.where(greedy, greedy_actions().cpu().numpy(), actions)
    return actions


class ActorWeights:
    """The actor's own copy of a network in the overlapped mode, refreshed by the learner every few updates.

    Why a copy: the learner updates the online weights in place; an actor reading them concurrently would
    act on a half-written mix. A copy refreshed every ``every`` updates (4: the actor is at most 4 updates,
    i.e. 16 agent steps, behind; the target network lags 10,000) costs one weight copy per refresh.
    Contract: refresh() is called by the learner thread only, reading() wraps the actor's forward passes.
    CPU: a lock orders the two. CUDA: the lock is held only while work is enqueued; events order the
    copy (learner stream) and the forward passes (actor stream) on the GPU, with no host synchronisation.
    """

    def __init__(self, online: nn.Module, every: int = 4):
        self.online = online
        self.network = copy.deepcopy(online).requires_grad_(False)
        self.every = every
        self._lock = threading.Lock()
        cuda = next(online.parameters()).is_cuda
        self._written = torch.cuda.Event() if cuda else None     # the last refresh is on the GPU
        self._read = torch.cuda.Event() if cuda else None        # the actor's last forward pass has read
        self._sources = list(online.parameters()) + list(online.buffers())
        self._targets = list(self.network.parameters()) + list(self.network.buffers())

    def refresh(self, updates: int) -> None:
        """Copy online -> actor copy when updates is a multiple of every (learner thread, learner stream)."""
        if updates % self.every:
            return
        with self._lock, torch.no_grad():
            if self._read is not None:
                torch.cuda.current_stream().wait_event(self._read)
            torch._foreach_copy_(self._targets, self._sources)
            if self._written is not None:
                self._written.record()

    @contextlib.contextmanager
    def reading(self):
        """Around the actor's use of self.network (actor thread, actor stream)."""
        with self._lock:
            if self._written is not None:
                torch.cuda.current_stream().wait_event(self._written)
            yield self.network
            if self._read is not None:
                self._read.record()
