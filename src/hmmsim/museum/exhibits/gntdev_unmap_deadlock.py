"""Exhibit ``gntdev-unmap-deadlock``: dbe97cff7dd9, gntdev's invalidate waits for i915's pins."""

from __future__ import annotations

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="gntdev-unmap-deadlock",
        commit="dbe97cff7dd9",
        subject="xen/gntdev: Avoid blocking in unmap_grant_pages()",
        release="v5.19",
        date="2022-06-22",
        scenario="gntdev-vs-i915",
        before="current-revert-dbe97cff7dd9",
        after="current",
        kinds=("hang",),
        columns=("munmap", "execbuf"),
        summary=(
            "Two interval-notifier subscribers on one mm: Xen's gntdev maps a "
            "grant at an address, and an i915 userptr object over the same "
            "address holds the grant page pinned since its last submission.  "
            "munmap's invalidation calls i915's callback, which bumps the "
            "object's sequence and keeps the pins, then gntdev's, which before "
            "the fix unmapped the grant synchronously: gnttab_unmap_refs_sync "
            "sleeps until the page count is back to 1, and the grant-table "
            "work retries for ever.  i915's next submission sleeps in "
            "mmu_interval_read_begin until the invalidation is over, and would "
            "drop its pins only after that.  The fix starts the unmap "
            "asynchronously and returns, so the invalidation ends, i915 unpins "
            "and the retrying work completes the unmap."
        ),
        rule=(
            "An invalidate callback must not wait for something another "
            "subscriber of the same mm releases only after "
            "mmu_interval_read_begin returns: while one callback sleeps, every "
            "reader of every interval the invalidation reached sleeps too.  "
            "Wait for your own hardware; defer anything that waits for other "
            "users of the pages (page references, pins) to a worker."
        ),
        checked=(
            "Hand check of the shortest hang counterexample against the commit "
            "message and the Xorg stack of QubesOS issue 7481: munmap takes "
            "mmap_sem, downgrades it and starts the blockable invalidation "
            "(mn_itree_inv_start_range makes the mm sequence odd); i915's "
            "callback (i915_gem_userptr_invalidate) sets the object's sequence "
            "under notifier_lock; gntdev_invalidate -> unmap_grant_pages -> "
            "__unmap_grant_pages -> gnttab_unmap_refs_sync: "
            "__gnttab_unmap_refs_async finds page_count 1025 (gntdev's "
            "reference plus i915's GUP_PIN_COUNTING_BIAS), queues "
            "gnttab_unmap_work and munmap sleeps in wait_for_completion (the "
            "issue's trace: wait_for_completion <- gnttab_unmap_refs_sync <- "
            "__unmap_grant_pages <- gntdev_invalidate <- mn_itree_invalidate).  "
            "execbuf's i915_gem_object_userptr_submit_init calls "
            "mmu_interval_read_begin, finds the object's sequence equal to the "
            "mm's odd one and sleeps on the notifier queue ('i915 was waiting "
            "for gntdev's MMU notifier to finish'); its unbind, which unpins, "
            "comes after.  The kworker finds the count unchanged each time "
            "('gntdev was waiting for i915 to free its pages'); the engine "
            "reports it going round with both threads asleep.  What the model "
            "abstracts: the i915 task of the issue's trace is a workqueue "
            "whose stack could not be read (only the excerpt of Xorg's); the "
            "exhibit's i915 side is the submit path, the one place of v5.18's "
            "userptr code that waits for an invalidation while its pins are "
            "held (the free path drops the pages before its "
            "mmu_interval_notifier_remove).  The interval tree must reach "
            "i915's object before gntdev's map (an object created over the "
            "address first); the GPU is idle; the hypervisor, the grant PTEs "
            "and time are not modelled (kernel.drivers.xen_gntdev Deviations).  "
            "Date: the applied version (with live_grants) was posted on "
            "2022-06-22 (lore message id 20220622022726, the Link of the "
            "commit as the v5.10 backport quotes it); v2 on 2022-05-25."
        ),
        bounds=(
            "one grant mapped at BASE, one userptr object over it pinned by a "
            "first execbuf in the set-up; actors munmap (munmap(2) of the "
            "grant mapping) and execbuf (one execbuf with the object, then "
            "its free); the grant-table work as a kworker task; exhaustive "
            "DPOR, max_steps 4000"
        ),
    )
)
