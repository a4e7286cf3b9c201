"""Monte-Carlo pi and matrix inversion, parallel in Rust (parpool)."""

from typing import NamedTuple, Optional

import numpy as np
import numpy.typing as npt

__version__: str

class Cpus:
    """How many CPUs parpool uses here, and which rule decided."""

    @property
    def count(self) -> int:
        """CPUs a pool with no ``workers`` argument uses (at least 1)."""
    @property
    def source(self) -> str:
        """The rule that decided, as the Rust crate names it: ``"EnvOverride"``,
        ``"Scheduler"``, ``"AffinityMask"``, ``"CgroupQuota"`` or ``"Hardware"``."""
    @property
    def description(self) -> str:
        """The rule, in words."""
    @property
    def hardware(self) -> int:
        """The machine's online CPU count."""

class PiResult(NamedTuple):
    """The result of :func:`pi`."""

    estimate: float
    """``4 * inside / total``."""
    inside: int
    """Darts inside the quarter circle."""
    total: int
    """Darts thrown: ``tasks * samples``."""

def cpus() -> Cpus:
    """How many CPUs this process may use, and which rule decided."""

def pi(
    tasks: int,
    samples: int,
    *,
    workers: Optional[int] = None,
    backend: str = "threads",
    seed: int = 2026,
) -> PiResult:
    """Estimate pi with ``tasks`` tasks of ``samples`` darts each, in parallel.

    The result depends only on ``(tasks, samples, seed)``: the same on every
    backend (``"serial"``, ``"threads"``, ``"processes"``) and worker count.
    Raises ValueError for zero or negative counts, zero workers or an unknown
    backend. The GIL is released; Ctrl-C raises KeyboardInterrupt.
    """

def invert(a: npt.ArrayLike, *, workers: Optional[int] = None) -> npt.NDArray[np.float64]:
    """The inverse of the square matrix ``a``, as a new float64 array.

    Raises ValueError for a non-square, empty or non-finite input and
    numpy.linalg.LinAlgError for a singular one. The GIL is released.
    """
