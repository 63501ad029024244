"""Exhibit ``hmm-free-vs-notifier``: 6d7c3cde93c1, struct hmm freed under a notifier callback."""

from __future__ import annotations

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="hmm-free-vs-notifier",
        commit="6d7c3cde93c1",
        subject="mm/hmm: fix use after free with struct hmm in the mmu notifiers",
        release="v5.3",
        date="2019-05-22",
        scenario="hmm-free-vs-notifier",
        before="v5.3-revert-6d7c3cde93c1",
        after="v5.3",
        kinds=("use-after-free",),
        columns=("unbind", "munmap"),
        summary=(
            "munmap's invalidation walks the mm's notifier list under SRCU and "
            "has picked HMM's notifier when the last hmm_mirror_unregister drops "
            "the final reference: hmm_free unhooks the notifier with "
            "mmu_notifier_unregister_no_release, which is no fence, and kfrees "
            "the struct at once, so the callback then runs on freed memory.  "
            "Before the fix the callbacks found the hmm through mm->hmm "
            "(mm_get_hmm) and hit VM_BUG_ON when it was gone; the fix frees "
            "through mmu_notifier_call_srcu and takes the reference with "
            "kref_get_unless_zero on the embedding struct."
        ),
        rule=(
            "Memory that embeds an mmu_notifier may be freed only after an SRCU "
            "grace period of the notifier core (mmu_notifier_call_srcu, later "
            "mmu_notifier_put); unregister_no_release does not wait for "
            "callbacks that already started."
        ),
        checked=(
            "Hand check of the shortest use-after-free counterexample against "
            "the commit message's diagram: munmap (CPU1) is inside "
            "__mmu_notifier_invalidate_range_start with srcu_read_lock held and "
            "has read HMM's notifier from the list; unbind (CPU0) runs "
            "hmm_mirror_unregister -> hmm_put -> hmm_free -> "
            "mmu_notifier_unregister_no_release (hlist_del_init_rcu), then the "
            "kfree; CPU1 then enters the callback through mn->ops and KASAN "
            "reports the load.  Agrees with the message step for step except "
            "where the model stops: the commit draws CPU1 getting as far as "
            "mutex_lock(&hmm->lock); the model reports the first load from the "
            "freed struct (mn->ops, then mm_get_hmm's kref).  Abstractions: "
            "the reverted kernel is v5.3 minus this commit, so hmm_free clears "
            "mm->hmm before unhooking (v5.2 did it after) and hmm->lock is "
            "v5.3's ranges_lock; the order does not matter to the race, since "
            "CPU1 already holds the notifier pointer.  The other counterexample "
            "(kind bug) is the VM_BUG_ON(!hmm) the commit removed: mm_get_hmm "
            "finds the hmm with a zero kref."
        ),
        bounds=(
            "one page, one mirror; actors unbind (one hmm_mirror_unregister) and "
            "munmap (one vm_munmap of the page); exhaustive DPOR, max_steps 4000"
        ),
    )
)
