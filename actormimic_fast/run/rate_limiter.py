"""The replay-ratio rate limiter between the actor and the learner (the model: Reverb's SampleToInsertRatio).

Contract:
- The actor earns update credit as it plays: ``credit(amount)`` adds ``agent steps x updates per agent
  step``. The learner takes one unit per update (``acquire``) and may only take a whole unit: it never
  runs ahead of the configured replay ratio.
- Before adding credit, the actor waits while more than ``max_lag`` updates are pending. Hence the
  bound checked at every log row: ``updates done >= updates earned - max_lag - (the largest single
  credit)``, and ``updates done <= updates earned`` always.
- ``drain()`` (actor) waits until no whole update is pending and none is running: before a checkpoint,
  a test epoch or the end of the run, so those see the state of the lockstep run with the same counters.
- ``stop(error)`` wakes every waiter for good: ``acquire`` then returns False (the learner exits) and the
  actor's next ``credit``/``drain`` raises (LearnerFailed chaining the learner's error, if any).
One condition variable guards the numbers; every wait re-checks its predicate, and stop notifies all, so
no thread can sleep through a shutdown. In lockstep mode the same object runs without threads: the actor
calls ``try_acquire``/``release`` itself, and the arithmetic (credit += amount; one unit per update) is
the same in both modes, so a given number of agent steps always earns the same updates.
"""

from __future__ import annotations

import threading


class LearnerFailed(RuntimeError):
    """Raised in the actor when the learner thread stopped on an exception (chained as __cause__)."""


class RateLimiter:
    def __init__(self, max_lag: float, credit: float = 0.0):
        if not max_lag >= 1:
            raise ValueError(f"max_lag must be >= 1 update, got {max_lag!r}")
        self.max_lag = float(max_lag)
        self._credit = float(credit)   # updates earned and not yet started (a whole part and a fraction)
        self._running = False          # an update has been acquired and not yet released
        self._stopped = False
        self._error: BaseException | None = None
        self._cv = threading.Condition()

    # -- actor side -------------------------------------------------------------------------------
    def credit(self, amount: float) -> None:
        """Earn `amount` updates, first waiting while more than max_lag are pending."""
        with self._cv:
            self._cv.wait_for(lambda: self._stopped or self._credit <= self.max_lag)
            self._raise_if_stopped()
            self._credit += amount
            self._cv.notify_all()

    def drain(self) -> None:
        """Wait until no whole update is pending or running."""
        with self._cv:
            self._cv.wait_for(lambda: self._stopped or (self._credit < 1.0 and not self._running))
            self._raise_if_stopped()

    # -- learner side -----------------------------------------------------------------------------
    def acquire(self) -> bool:
        """Wait for a whole pending update and take it; False once stopped (the learner then exits)."""
        with self._cv:
            self._cv.wait_for(lambda: self._stopped or self._credit >= 1.0)
            return self._take()

    def try_acquire(self) -> bool:
        """Take a whole pending update if there is one (lockstep mode: never waits)."""
        with self._cv:
            return self._credit >= 1.0 and self._take()

    def _take(self) -> bool:
        if self._stopped:
            return False
        self._credit -= 1.0
        self._running = True
        return True

    def release(self) -> None:
        """The update taken by acquire() is done."""
        with self._cv:
            self._running = False
            self._cv.notify_all()

    # -- both --------------------------------------------------------------------------------------
    def stop(self, error: BaseException | None = None) -> None:
        """Wake every waiter for good; an error is re-raised in the actor's next credit() or drain()."""
        with self._cv:
            self._stopped = True
            if error is not None and self._error is None:
                self._error = error
            self._cv.notify_all()

    def _raise_if_stopped(self) -> None:
        if self._error is not None:
            raise LearnerFailed(f"the learner thread failed: {self._error!r}") from self._error
        if self._stopped:
            raise RuntimeError("the rate limiter was stopped")

    @property
    def pending(self) -> float:
        """Updates earned and not yet started (its fraction is the checkpoint's update_credit)."""
        with self._cv:
            return self._credit
