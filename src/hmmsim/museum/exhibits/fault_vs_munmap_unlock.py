"""Exhibit ``fault-vs-munmap-unlock``: 2bcbeaefde2f, one error code for an invalidated range."""

from __future__ import annotations

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="fault-vs-munmap-unlock",
        commit="2bcbeaefde2f",
        subject=(
            "mm/hmm: always return EBUSY for invalid ranges in "
            "hmm_range_{fault,snapshot}"
        ),
        release="v5.3",
        date="2019-07-24",
        scenario="fault-vs-munmap-unlock",
        before="v5.3-revert-2bcbeaefde2f",
        after="v5.3",
        kinds=("bad-unlock",),
        columns=("munmap", "device"),
        summary=(
            "munmap(2) downgrades mmap_sem to read and invalidates the page while "
            "a device fault registers its range, which therefore starts invalid.  "
            "In v5.3-rc1 hmm_range_fault answered an invalid range by dropping "
            "mmap_sem and returning -EAGAIN, hmm_range_snapshot by returning the "
            "same -EAGAIN with mmap_sem held; the documented driver pattern "
            "releases mmap_sem on every error, so after hmm_range_fault it "
            "released it a second time.  The fix returns -EBUSY, with mmap_sem "
            "held, for an invalidated range in both, and keeps -EAGAIN for a "
            "fault that really dropped the lock."
        ),
        rule=(
            "An error code must say who owns the lock afterwards: one code, one "
            "locking state.  A driver releases mmap_sem after hmm_range_fault "
            "unless the call says it already did (-EAGAIN, only with "
            "non-blocking faults since this fix)."
        ),
        checked=(
            "Hand check of the shortest counterexample against the commit "
            "message (EAGAIN is reserved for the case where mmap_sem was already "
            "unlocked; EBUSY for an invalid range so callers get the locking "
            "right): munmap takes mmap_sem for write, downgrades it and runs its "
            "invalidation (hmm->notifiers 1); the device registers its range "
            "(invalid, since an invalidation is open), its "
            "hmm_range_wait_until_valid times out, it takes mmap_sem for read "
            "and the reverted hmm_range_fault sees the range invalid, up_reads "
            "and returns -EAGAIN; the driver's own up_read is then the bad "
            "unlock.  The driver is the model's reference driver "
            "(Documentation/vm/hmm.rst's pattern, faulting with hmm_range_fault "
            "as nouveau does); the v5.3-rc1 document retried on -EAGAIN where "
            "the v5.3 one retries on -EBUSY, but both release mmap_sem on any "
            "error first, which is where the finding is.  The wait timing out "
            "is a data choice of the schedule (time is not modelled)."
        ),
        bounds=(
            "one page, one mirror; actors munmap (one munmap(2) of the page) and "
            "device (one fault with one retry, then a device read); exhaustive "
            "DPOR, max_steps 4000"
        ),
    )
)
