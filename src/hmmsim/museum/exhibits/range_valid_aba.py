"""Exhibit 04ec32fbc2b2: range->valid cannot see a whole start/end pair (ABA)."""

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="range-valid-aba",
        commit="04ec32fbc2b2",
        subject=(
            "mm/hmm: allow hmm_range to be used with a mmu_interval_notifier "
            "or hmm_mirror"
        ),
        release="v5.5",
        date="2019-11-23",
        scenario="fault-vs-oom-reap",
        before="v5.3",
        after="v5.5",
        kinds=("device-use-after-free",),
        columns=("oom_reaper", "device"),
        summary=(
            "hmm_mirror's ranges carry a valid flag but no sequence count.  The "
            "OOM reaper holds mmap_sem only for read, so it runs a whole "
            "invalidate_range_start/end pair between the driver's "
            "hmm_range_fault and its hmm_range_valid check; the end sets valid "
            "back to true, the check passes and the device maps a page the "
            "reaper freed."
        ),
        rule=(
            "A flag that an invalidation clears and its end sets again cannot "
            "tell 'no invalidation ran' from 'one ran and finished': use a "
            "sequence count (mmu_interval_read_begin / mmu_interval_read_retry "
            "under the driver's lock), never a boolean."
        ),
        checked=(
            "The counterexample is the diagram of the commit message step by "
            "step: the device task's hmm_range_fault walks the range with valid "
            "true; the reaper's hmm_invalidate_range_start clears range->valid, "
            "its hmm_invalidate_range_end sets it again, it frees the page; the "
            "device's hmm_range_valid still sees true, device_pte_set maps the "
            "freed page and the device reads it.  The commit does not fix "
            "hmm_mirror; it lets drivers move to mmu_interval_notifier (v5.5 "
            "removed hmm_mirror), so 'after' is v5.5 with lib/test_hmm.c's "
            "sequence-count protocol; no other change between v5.3 and v5.5 "
            "touches this path (docs/scenarios.md)."
        ),
        bounds=(
            "one page, one mirror, one device fault (1 retry) and read, the "
            "reaper's 1 attempt; exhaustive DPOR, max_steps 4000"
        ),
    )
)
