"""Exhibit ``migrate-vs-madvise``: 60bae7370896, the TLB flushed after the PTE lock was dropped."""

from __future__ import annotations

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="migrate-vs-madvise",
        commit="60bae7370896",
        subject="mm/migrate_device.c: flush TLB while holding PTL",
        release="v6.0",
        date="2022-09-02",
        scenario="migrate-vs-madvise",
        before="current-revert-60bae7370896",
        after="current",
        kinds=("stale-tlb",),
        columns=("migrate", "madvise"),
        summary=(
            "migrate_vma_collect_pmd replaces a present PTE by a migration entry "
            "and, before the fix, flushed the TLB only after dropping the "
            "page-table lock.  MADV_DONTNEED, which like the migration holds "
            "mmap_lock only for read, takes the lock in that window, finds a "
            "migration entry (not present, so nothing to flush), zaps it and "
            "returns, while another CPU still holds the old translation: the "
            "thread's next store, made after madvise returned, lands in the old "
            "page instead of a fresh zero page and is lost.  The fix flushes "
            "before the unlock."
        ),
        rule=(
            "Flush the TLB for a PTE you cleared before releasing the page-table "
            "lock: whoever takes the lock next judges what needs flushing from "
            "the PTE it finds, and a non-present entry tells it nothing is left "
            "to flush."
        ),
        checked=(
            "Hand check of the shortest stale-tlb counterexample against the "
            "commit message's diagram: 'cpu' stores to BASE through its TLB "
            "(the translation is cached); migrate (CPU0) runs "
            "migrate_vma_collect_pmd: under the page-table lock it replaces the "
            "PTE by a writable migration entry and drops the lock "
            "(pte_unmap_unlock) with the flush still to come; madvise (CPU1) "
            "runs MADV_DONTNEED: zap_pte_range takes the lock, finds the entry "
            "not present, clears it without widening the flush range "
            "('PTE not present, TLB not flushed'), and madvise returns; 'cpu' "
            "then stores 2 through its stale TLB entry into the old page ('page "
            "is still accessible via stale TLB'); only then does CPU0's "
            "flush_tlb_range run.  The thread reads BASE back and gets a fresh "
            "zero page: its store was lost.  What the model abstracts: the CPU "
            "TLB exists only for the thread's cached accesses (kernel.tlbflush), "
            "flushed by flush_tlb_range and by the mmu_gather of a zap that "
            "cleared present PTEs; the migrating driver finds no free device "
            "page and finalizes without destinations (the race is in the "
            "collection, before any copy); the commit's 'madvise/munmap/etc.' is "
            "MADV_DONTNEED, since munmap needs mmap_lock for write and cannot "
            "run while migrate_vma_setup holds it for read.  First released in "
            "v6.0 (stable 5.10.147 carried it as 'commit 60bae7370896 "
            "upstream')."
        ),
        bounds=(
            "one page; actors migrate (one migrate_vma_setup/pages/finalize of "
            "the page), madvise (one MADV_DONTNEED of the page) and cpu (a "
            "cached store, then after madvise returned a cached store and a "
            "load); exhaustive DPOR, max_steps 4000"
        ),
    )
)
