"""Where the emulator is as strict as Graph at a cost: the knobs of issue 21 and the state they need.

On by default (cheap): ``batch_shuffle`` ($batch items run in any order their dependencies allow and
the answers come back shuffled). Off by default (they cost tests time or make runs longer):
``short_pages``, ``empty_pages``, ``read_lag_ms``, ``processing_delay_s``, ``unknown_processing_states``.
Randomness comes from one generator seeded with ``strict_seed``, so a run can be repeated.
See docs/tenant-format.md, "Strict behaviours".
"""

import random
import threading

STRICT_DEFAULTS = {
    "batch_shuffle": True,
    "short_pages": False,
    "empty_pages": False,
    "read_lag_ms": 0.0,
    "processing_delay_s": 0.0,
    "unknown_processing_states": False,
    "strict_seed": 21,
}
BOOLEAN_KNOBS = ("batch_shuffle", "short_pages", "empty_pages", "unknown_processing_states")
NUMBER_KNOBS = ("read_lag_ms", "processing_delay_s")
# What a group that is not finished shows with unknown_processing_states on: Graph's evolvable-enum sentinel,
# a value the documented enum does not hold (graph-api.md 3.2: clients must tolerate unknown values).
UNKNOWN_PROCESSING_STATE = "unknownFutureValue"
# Probability that a page which could hold items is sent empty (with a nextLink) when empty_pages is on.
EMPTY_PAGE_CHANCE = 0.25


class StrictSettings:
    """The strict knobs and the seeded generator behind the random ones (thread-safe)."""

    def __init__(self, **knobs):
        self._lock = threading.Lock()
        self.values = dict(STRICT_DEFAULTS)
        self._rng = random.Random(STRICT_DEFAULTS["strict_seed"])
        self.configure(**{k: v for k, v in knobs.items() if v is not None})

    def configure(self, **knobs):
        for name, value in knobs.items():
            if value is None:
                continue
            if name in BOOLEAN_KNOBS and not isinstance(value, bool):
                raise ValueError(f"{name}: got {value!r}, expected true or false")
            if name in NUMBER_KNOBS and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ValueError(f"{name}: got {value!r}, expected a non-negative number")
            if name == "strict_seed":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"strict_seed: got {value!r}, expected an integer")
                with self._lock:
                    self._rng.seed(value)
            self.values[name] = float(value) if name in NUMBER_KNOBS else value

    def __getattr__(self, name):
        values = self.__dict__.get("values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(name)

    def shuffled(self, items):
        items = list(items)
        with self._lock:
            self._rng.shuffle(items)
        return items

    def page_size(self, top):
        """How many items this page holds: ``top``, or with short_pages a number in 1..top."""
        if not self.values["short_pages"] or top <= 1:
            return top
        with self._lock:
            return self._rng.randint(1, top)

    def empty_page(self):
        if not self.values["empty_pages"]:
            return False
        with self._lock:
            return self._rng.random() < EMPTY_PAGE_CHANCE

    def snapshot(self):
        return dict(self.values)
