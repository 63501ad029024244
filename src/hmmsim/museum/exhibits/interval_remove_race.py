"""Exhibit 319561669a59: mmu_interval_notifier_remove returns too early."""

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="interval-remove-race",
        commit="319561669a59",
        subject="mm/mmu_notifier.c: fix race in mmu_interval_notifier_remove()",
        release="v5.18",
        date="2022-04-20",
        scenario="interval-remove-vs-reap",
        before="current-revert-319561669a59",
        after="current",
        kinds=("use-after-free",),
        columns=("oom_reaper", "unbind"),
        summary=(
            "The driver's release removes its interval notifier while the OOM "
            "reaper's invalidation is open, so remove queues it on the deferred "
            "list and waits for the mm sequence to change.  The last "
            "mn_itree_inv_end makes the sequence even under the lock and only "
            "then unlinks the deferred notifier; the waiter reads the sequence "
            "without the lock, returns in between, and the driver frees the "
            "notifier that mn_itree_inv_end is about to touch."
        ),
        rule=(
            "A wait whose condition is written inside another CPU's critical "
            "section must read it under the same lock, or it can return before "
            "that section is over; only then may the caller free the object the "
            "section still uses."
        ),
        checked=(
            "The counterexample follows the commit message's two columns: "
            "remove takes the lock, samples invalidate_seq (odd, the reaper's "
            "invalidation is open) and unlocks; the reaper's mn_itree_inv_end "
            "takes the lock and bumps the sequence; remove's wait_event reads "
            "the new value without the lock and returns; dmirror_fops_release "
            "kfree()s the notifier; mn_itree_inv_end's interval_tree_remove "
            "touches the freed object (KASAN-style use-after-free).  The pair "
            "is today's kernel with and without the commit (patch switch in "
            "mmu_notifier_current.mmu_interval_notifier_remove: the wait "
            "condition only); the built-in oom-vs-mirror-unregister shows the "
            "same use-after-free on v5.5 itself."
        ),
        bounds=(
            "one page, two mirrors (gpu1's unbound), the reaper's 2 attempts, "
            "one fault and read by gpu0; exhaustive DPOR, max_steps 4000"
        ),
    )
)
