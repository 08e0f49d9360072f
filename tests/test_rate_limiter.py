"""The replay-ratio rate limiter between the actor and the learner threads (run/rate_limiter.py)."""

import random
import threading
import time

import pytest

from actormimic_fast.run.rate_limiter import LearnerFailed, RateLimiter


def test_lockstep_use_earns_exactly_the_credited_updates():
    limiter = RateLimiter(max_lag=4)
    done = 0
    for _ in range(1_000):
        limiter.credit(0.25)                    # one agent step at update_every = 4
        while limiter.try_acquire():
            done += 1
            limiter.release()
    assert done == 250 and limiter.pending == 0.0


def test_threads_keep_the_ratio_within_the_bound_and_drain_completes():
    """A learner that is slow at random moments: the actor never gets more than max_lag + one credit ahead,
    the learner never runs an update that was not earned, and drain() waits for every whole update."""
    limiter = RateLimiter(max_lag=3)
    earned, done, violations = [0.0], [0], []
    lock = threading.Lock()
    rng = random.Random(0)

    def learner():
        while limiter.acquire():
            with lock:
                if done[0] + 1 > earned[0] + 1e-9:
                    violations.append(("ahead", done[0], earned[0]))
            time.sleep(rng.random() * 0.002)
            with lock:
                done[0] += 1
            limiter.release()

    thread = threading.Thread(target=learner)
    thread.start()
    for step in range(2_000):
        amount = 0.25 * rng.choice([1, 2, 4])   # a batch of 1, 2 or 4 envs
        limiter.credit(amount)
        with lock:
            earned[0] += amount
            if done[0] < int(earned[0]) - 3 - 1 - 1:  # max_lag + the largest credit + the update in flight
                violations.append(("behind", done[0], earned[0]))
        if step % 500 == 499:
            limiter.drain()
            with lock:
                assert done[0] == int(earned[0])
    limiter.drain()
    limiter.stop()
    thread.join(timeout=5)
    assert not thread.is_alive() and not violations and done[0] == int(earned[0])


def test_stop_wakes_a_waiting_learner_and_a_waiting_actor():
    limiter = RateLimiter(max_lag=1)
    got = []
    thread = threading.Thread(target=lambda: got.append(limiter.acquire()))
    thread.start()
    time.sleep(0.05)
    limiter.stop()
    thread.join(timeout=5)
    assert got == [False]

    limiter = RateLimiter(max_lag=1, credit=5.0)    # the learner is 5 behind: credit() must wait
    errors = []

    def actor():
        try:
            limiter.credit(1.0)
        except RuntimeError as exc:
            errors.append(exc)

    thread = threading.Thread(target=actor)
    thread.start()
    time.sleep(0.05)
    assert thread.is_alive()
    limiter.stop()
    thread.join(timeout=5)
    assert not thread.is_alive() and "stopped" in str(errors[0])


def test_a_learner_error_reaches_the_actor():
    limiter = RateLimiter(max_lag=2)
    limiter.stop(ZeroDivisionError("boom"))
    with pytest.raises(LearnerFailed, match="the learner thread failed: ZeroDivisionError") as info:
        limiter.drain()
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_max_lag_must_allow_one_update():
    with pytest.raises(ValueError, match="max_lag must be >= 1 update, got 0.5"):
        RateLimiter(max_lag=0.5)
