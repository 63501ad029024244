"""The ``hmm_pfns`` encoding of ``include/linux/hmm.h`` since v5.8 (modelled at v6.16).

Christoph Hellwig's and Jason Gunthorpe's v5.8 rework ("mm/hmm: make
hmm_range_fault return 0 or -1", "mm/hmm: remove the customizable pfn
format from hmm_range_fault") replaced the per-driver
``range->flags`` / ``range->values`` tables of v5.3..v5.7 with one fixed
encoding: an ``unsigned long`` per page whose low bits are the pfn and whose
top bits are flags.  On input the same word carries the request
(``HMM_PFN_REQ_FAULT``, ``HMM_PFN_REQ_WRITE``).  A header-like module so the
HMM model (:mod:`hmmsim.kernel.hmm_current`), drivers and user code share one
definition; the v5.3 index enums of the same names stay in
:mod:`hmmsim.kernel.types`.

Deviations:
    * MODEL: ``HMM_PFN_DMA_MAPPED``, ``HMM_PFN_P2PDMA`` and
      ``HMM_PFN_P2PDMA_BUS`` (v6.16, the sticky DMA-mapping flags of
      hmm_dma_map_pfn) are not modelled: the model has no DMA mapping, so
      ``HMM_PFN_INOUT_FLAGS`` is empty.  The order field exists but is always
      0 (no huge pages).
"""

from __future__ import annotations

import enum
from typing import Final

__all__ = [
    "BITS_PER_LONG",
    "HMM_PFN_ERROR",
    "HMM_PFN_FLAGS",
    "HMM_PFN_INOUT_FLAGS",
    "HMM_PFN_ORDER_SHIFT",
    "HMM_PFN_REQ_FAULT",
    "HMM_PFN_REQ_WRITE",
    "HMM_PFN_VALID",
    "HMM_PFN_WRITE",
    "HmmPfnFlags",
]

#: Bits in an ``unsigned long`` (64-bit kernels).
BITS_PER_LONG: Final = 64


class HmmPfnFlags(enum.IntFlag):
    """``enum hmm_pfn_flags`` (include/linux/hmm.h, v6.16).

    Output flags: VALID (the pfn is valid, at least readable), WRITE (the
    page may be written; needs VALID), ERROR (the device must fail the
    access: no VMA, a special page, poisoned memory).  Input flags:
    REQ_FAULT (the output must be VALID or hmm_range_fault fails), REQ_WRITE
    (the output must be WRITE; with REQ_FAULT).  0 on input asks only for
    the current state.
    """

    HMM_PFN_VALID = 1 << (BITS_PER_LONG - 1)
    HMM_PFN_WRITE = 1 << (BITS_PER_LONG - 2)
    HMM_PFN_ERROR = 1 << (BITS_PER_LONG - 3)
    # Input flags share the bits of the output flags they ask for.
    HMM_PFN_REQ_FAULT = HMM_PFN_VALID
    HMM_PFN_REQ_WRITE = HMM_PFN_WRITE


HMM_PFN_VALID: Final = HmmPfnFlags.HMM_PFN_VALID
HMM_PFN_WRITE: Final = HmmPfnFlags.HMM_PFN_WRITE
HMM_PFN_ERROR: Final = HmmPfnFlags.HMM_PFN_ERROR
HMM_PFN_REQ_FAULT: Final = HmmPfnFlags.HMM_PFN_REQ_FAULT
HMM_PFN_REQ_WRITE: Final = HmmPfnFlags.HMM_PFN_REQ_WRITE

#: First bit of the 5-bit mapping order field (v6.16 value).
HMM_PFN_ORDER_SHIFT: Final = BITS_PER_LONG - 11
#: Every bit above the pfn: flags and order.
HMM_PFN_FLAGS: Final = ((1 << BITS_PER_LONG) - 1) & ~((1 << HMM_PFN_ORDER_SHIFT) - 1)
#: Flags carried from input to output (MODEL: none, see Deviations).
HMM_PFN_INOUT_FLAGS: Final = 0
