"""Which scipy / statsmodels the lean copies of their numerics were made from.

``training.forecasters.trust_region``, ``gradient`` and ``ets`` reproduce scipy's and
statsmodels' iterates operation for operation, as of these versions. There the tests hold
them to the last bit; with another release installed (scipy may reorder an operation)
they hold them to the same optimum within the solvers' tolerances, so a new upstream
release does not turn CI red while the copies still find what scipy finds.
"""

from __future__ import annotations

import scipy
import statsmodels

COPIED_FROM = {"scipy": "1.17.", "statsmodels": "0.15."}


def copied_versions() -> bool:
    """True when the installed scipy and statsmodels are the releases the copies follow."""
    return (scipy.__version__.startswith(COPIED_FROM["scipy"])
            and statsmodels.__version__.startswith(COPIED_FROM["statsmodels"]))
