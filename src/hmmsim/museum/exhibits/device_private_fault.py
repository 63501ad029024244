"""Exhibit ``device-private-fault``: 16ce101db85d (CVE-2022-3523), migrate_to_ram on a freed device page."""

from __future__ import annotations

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="device-private-fault",
        commit="16ce101db85d",
        subject="mm/memory.c: fix race when faulting a device private page",
        release="v6.1",
        date="2022-09-28",
        scenario="device-private-fault",
        before="current-revert-16ce101db85d",
        after="current",
        kinds=("use-after-free",),
        columns=("cpu0", "cpu1"),
        summary=(
            "Two threads fault on the same device-private page.  Before the "
            "fix do_swap_page called vmf->page->pgmap->ops->migrate_to_ram on "
            "the page of the entry it had read without the page-table lock "
            "and without a reference, so the other thread's fault could "
            "migrate the page back to RAM and free it (the last put calls the "
            "driver's page_free) before this one dereferenced it.  The fix "
            "re-checks the entry under the page-table lock and takes a "
            "reference (since v6.15 also the page lock) before dropping the "
            "lock and calling migrate_to_ram."
        ),
        rule=(
            "A struct page found through a PTE read without the page-table "
            "lock may be freed at any moment: take a reference (or the lock "
            "that keeps it mapped) before using it, and let callbacks such as "
            "migrate_to_ram rely on the caller's reference; a driver's "
            "migration must expect that reference (migrate_vma's fault_page)."
        ),
        checked=(
            "Hand check of the shortest counterexample (117 steps, 2 "
            "preemptions) against the commit message: cpu1 enters "
            "handle_mm_fault and reads the device-private entry (READ_ONCE of "
            "the PTE); cpu0 then runs its whole fault: do_swap_page calls "
            "dmirror_devmem_fault, whose migrate_vma_setup locks the device "
            "page and replaces the entry by a migration entry (dropping the "
            "mapping's reference), migrate_vma_pages moves it to a new RAM "
            "page and migrate_vma_finalize unlocks it and drops the last "
            "reference, so free_zone_device_folio calls the driver's page_free "
            "(dmirror_devmem_free puts it back on the device's free list); cpu1 "
            "then loads vmf->page->pgmap to find migrate_to_ram, and the model "
            "reports use-after-free.  This is the commit's 'a concurrent "
            "migration of the device private page can free the page ... the "
            "migrate_to_ram() function pointer becoming invalid'.  What the "
            "model abstracts: the free is the page's own (refcount 0, back with "
            "its driver), not the memunmap_pages of the whole map the message "
            "also mentions, and a load from a free device page is reported as "
            "KASAN would report a freed struct (memremap.page_pgmap_checked); "
            "the concurrent migration is a second fault (two threads), where "
            "the message names any migration; the reverted kernel is v6.16 "
            "minus the commit, so the driver calls migrate_vma_setup without "
            "fault_page (the field came with the commit) and reverting it also "
            "removes 1afaeb8293c9's page lock, which sits inside the section "
            "16ce101db85d added."
        ),
        bounds=(
            "one page migrated to dmirror's device-private memory in the "
            "set-up; actors cpu0 and cpu1 take one read fault each on it "
            "(handle_mm_fault, no instruction retry); exhaustive DPOR, "
            "max_steps 4000"
        ),
    )
)
