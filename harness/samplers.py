"""The Optuna samplers tuning uses, made picklable with every optuna release the project allows.

Ray Tune pickles its searcher, and with it the sampler. optuna 5.1's NSGA-II sampler holds a
`threading.Lock` (5.0's did not), and no pickle carries a lock. The lock only guards the sampler's
in-process caches (the study itself lives in its storage), so these samplers pickle without their
locks and make new ones when unpickled.
"""

from __future__ import annotations

import threading

import optuna

_LOCK_TYPES = {type(threading.Lock()): threading.Lock, type(threading.RLock()): threading.RLock}


class _PicklesWithoutLocks:
    def __getstate__(self):
        state = dict(self.__dict__)
        locks = {k: _LOCK_TYPES[type(v)] for k, v in state.items() if type(v) in _LOCK_TYPES}
        for key in locks:
            del state[key]
        return state, locks

    def __setstate__(self, packed):
        state, locks = packed
        self.__dict__.update(state)
        for key, make in locks.items():
            setattr(self, key, make())


class TPE(_PicklesWithoutLocks, optuna.samplers.TPESampler):
    """Optuna's TPE sampler (one objective)."""


class NSGAII(_PicklesWithoutLocks, optuna.samplers.NSGAIISampler):
    """Optuna's NSGA-II sampler (several objectives)."""
