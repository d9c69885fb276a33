"""Double-double ("compensated") arithmetic shared by the online and offline engines.

Sums and moments are carried as an unevaluated pair ``hi + lo`` of floats, which keeps
roughly 106 bits. Every function here is written with plain ``+ - * /`` so the same code
runs on Python floats (online, one event at a time) and on numpy float64 arrays
(offline, all events at once); IEEE-754 makes both give the same bits, which is how the
two engines agree exactly rather than approximately.

References:
- TwoSum, the error-free sum: Knuth, TAOCP vol. 2, §4.2.2 (after Møller, 1965).
- TwoProduct via Veltkamp splitting: Dekker, "A floating-point technique for extending
  the available precision", Numer. Math. 18 (1971).
- Accumulating ``hi`` and the errors separately is Ogita, Rump & Oishi, "Accurate sum
  and dot product", SIAM J. Sci. Comput. 26 (2005), algorithm Sum2.
- Variance from shifted moment sums: Chan, Golub & LeVeque, "Algorithms for computing
  the sample variance", The American Statistician 37 (1983), "shifted data"; the shift
  ``K`` is the first value of the running segment, and the double-double sums remove the
  cancellation that makes the textbook formula unstable.

>>> hi, lo = accumulate(0.0, 0.0, 1e16, 0.0)
>>> hi, lo = accumulate(hi, lo, 1.0, 0.0)
>>> hi, lo = accumulate(hi, lo, -1e16, 0.0)
>>> hi + lo        # a plain float sum would give 0.0
1.0
"""

from __future__ import annotations

from typing import TypeVar

import numpy as np

F = TypeVar("F", float, np.ndarray)

_SPLITTER = 134217729.0  # 2**27 + 1, Veltkamp's constant for binary64


def two_sum(a: F, b: F) -> tuple[F, F]:
    """``s = fl(a + b)`` and the exact rounding error ``e``: ``a + b == s + e``."""
    s = a + b
    b_virtual = s - a
    a_virtual = s - b_virtual
    return s, (a - a_virtual) + (b - b_virtual)


def sum_error(a: F, b: F, s: F) -> F:
    """The rounding error of ``s = fl(a + b)`` (TwoSum when ``s`` is already known)."""
    b_virtual = s - a
    a_virtual = s - b_virtual
    return (a - a_virtual) + (b - b_virtual)


def _split(a: F) -> tuple[F, F]:
    c = _SPLITTER * a
    high = c - (c - a)
    return high, a - high


def two_prod(a: F, b: F) -> tuple[F, F]:
    """``p = fl(a * b)`` and the exact error ``e``: ``a * b == p + e`` (|a|, |b| < 1e150)."""
    p = a * b
    ah, al = _split(a)
    bh, bl = _split(b)
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


def accumulate(hi: F, lo: F, term_hi: F, term_lo: F) -> tuple[F, F]:
    """One step of a compensated running sum (the offline replay does the same steps)."""
    s = hi + term_hi
    return s, lo + (sum_error(hi, term_hi, s) + term_lo)


def difference(ah: F, al: F, bh: F, bl: F) -> tuple[F, F]:
    """``(ah + al) - (bh + bl)`` as a normalised double-double."""
    s, e = two_sum(ah, -bh)
    e = e + (al - bl)
    h = s + e
    return h, e - (h - s)


def shifted_moment_terms(x: F, shift: F) -> tuple[F, F, F, F]:
    """``y = x - shift`` and ``y*y``, each as a double-double ``(hi, lo)`` term."""
    yh, yl = two_sum(x, -shift)
    p, e = two_prod(yh, yh)
    return yh, yl, p, e + 2.0 * yh * yl


def central_m2(n: F, s1h: F, s1l: F, s2h: F, s2l: F) -> F:
    """``sum((y - mean)**2) = S2 - S1**2 / n`` from double-double moment sums.

    May come out a hair below zero when the true value is zero; callers clamp.
    """
    p, e = two_prod(s1h, s1h)
    e = e + 2.0 * s1h * s1l
    q1 = p / n
    t, te = two_prod(q1, n)
    q2 = (((p - t) - te) + e) / n
    return difference(s2h, s2l, q1, q2)[0]
