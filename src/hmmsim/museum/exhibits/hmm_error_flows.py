"""Exhibit 5a136b4ae327: the seed patch, hmm_invalidate_range_start's error flows."""

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="hmm-error-flows",
        commit="5a136b4ae327",
        subject="mm/hmm: Fix error flows in hmm_invalidate_range_start",
        release="v5.3",
        date="2019-06-07",
        scenario="oom-vs-driver-lock",
        before="prepatch",
        after="v5.3",
        kinds=("notifier-contract", "device-use-after-free"),
        columns=("driver", "oom_reaper"),
        summary=(
            "The OOM reaper's non-blocking invalidation reaches the mirror while "
            "its driver holds the device update lock, so "
            "sync_cpu_device_pagetables returns -EAGAIN.  Before the patch the "
            "mirror loop's own 'ret' shadows the function's, "
            "hmm_invalidate_range_start returns 0, the reaper clears the CPU PTE "
            "and frees the page while the device still maps it."
        ),
        rule=(
            "A non-blocking invalidate_range_start either finishes the device's "
            "invalidation or returns -EAGAIN and leaves nothing behind: an error "
            "from one mirror must fail the whole start, and everything the start "
            "counted up (hmm->notifiers) must be undone on that path, since no "
            "invalidate_range_end follows a failed start."
        ),
        checked=(
            "Replayed counterexample of notifier-contract on prepatch (86 steps): "
            "the driver takes dmirror0->update; the reaper's start raises "
            "hmm->notifiers, dummy_sync's mutex_trylock fails (-EAGAIN), "
            "hmm_invalidate_range_start still returns 0 (the shadowed ret), and "
            "zap_pte_range clears the PTE while gpu0 maps the page; the reaper "
            "then frees it and the device reads it.  This is the second paragraph "
            "of the commit message ('will not return EAGAIN even though the "
            "device continues to touch the pages ... a violation of the mmu "
            "notifier contract').  The same run also shows the first paragraph's "
            "other half on prepatch: hmm_invalidate_range_end takes the sleeping "
            "hmm->lock in the non-blocking section (sleep-in-nonblockable), which "
            "the patch's spinlock removes; the notifiers leak of a failed "
            "mirrors_sem trylock is scenario oom-vs-mirror-unregister's."
        ),
        bounds=(
            "one page, one mirror, the reaper's 1 attempt, one device read; "
            "exhaustive DPOR, max_steps 4000, no preemption bound"
        ),
    )
)
