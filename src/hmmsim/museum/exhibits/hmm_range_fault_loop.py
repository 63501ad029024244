"""Exhibit c18ce674d548: hmm_range_fault loops for ever on a read-only VMA."""

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="hmm-range-fault-loop",
        commit="c18ce674d548",
        subject="mm/hmm: hmm_range_fault() infinite loop",
        release="v5.4",
        date="2019-08-23",
        scenario="readonly-fault-loop",
        before="v5.5-revert-c18ce674d548",
        after="v5.5",
        kinds=("hang",),
        columns=("device", "cpu"),
        summary=(
            "A device asks hmm_range_fault for write access to a page whose VMA "
            "is read-only.  v5.3 checks VM_READ but not VM_WRITE, and "
            "handle_mm_fault checks no permission: the write fault 'succeeds' "
            "without making the PTE writable, the walk returns -EBUSY and "
            "hmm_range_fault walks again while the range stays valid, for ever, "
            "holding mmap_sem.  Shown on v5.5 with the fix reverted (v5.4 is "
            "not modelled); the built-in fault-on-readonly-vma shows the same "
            "hang on v5.3 itself."
        ),
        rule=(
            "handle_mm_fault trusts its caller to have checked the VMA: whoever "
            "faults on behalf of a device checks vm_flags for the access it "
            "asks (VM_WRITE for a write) and fails with -EPERM instead of "
            "retrying."
        ),
        checked=(
            "The hang's counterexample is the loop of the commit message: "
            "hmm_range_fault -> walk -> hmm_vma_walk_hole_ -> "
            "handle_mm_fault(FAULT_FLAG_WRITE) -> do_wp_page reuses the page "
            "but leaves the PTE read-only (no VM_WRITE) -> -EBUSY -> the range is "
            "still valid -> walk again; the explorer reports the device task "
            "back in the same state with nothing else able to change it.  v5.4 "
            "is not modelled, so the pair is v5.5 with and without the commit "
            "(patch switch in hmm_v55.hmm_vma_walk_hole_, the three lines of "
            "the patch); v5.5's hmm_range_fault retries -EBUSY while "
            "mmu_interval_check_retry says the range is fine, as v5.3's did "
            "while range->valid was true, and the built-in "
            "fault-on-readonly-vma reports the same hang on v5.3 itself."
        ),
        bounds=(
            "one read-only page, one mirror, one device write fault (1 retry) "
            "and a CPU read; exhaustive DPOR, max_steps 4000"
        ),
    )
)
