"""Exhibit ``device-fault-livelock``: 1afaeb8293c9, CPU faults on one device page defeat each other."""

from __future__ import annotations

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="device-fault-livelock",
        commit="1afaeb8293c9",
        subject="mm/migrate: Trylock device page in do_swap_page",
        release="v6.15",
        date="2025-03-05",
        scenario="device-fault-livelock",
        before="current-revert-1afaeb8293c9",
        after="current",
        kinds=("fault-livelock",),
        columns=("cpu0", "cpu1"),
        summary=(
            "Two threads fault on the same device-private page.  Before the fix "
            "do_swap_page took a reference on the page and called migrate_to_ram "
            "without its lock, so each fault started a migration of its own: the "
            "one that got the page lock in migrate_vma_collect_pmd saw the other "
            "fault's reference in folio_migrate_mapping (-EAGAIN) and rolled the "
            "migration back, and the other found the page locked and skipped it.  "
            "Both faults return, both threads retry, and the same schedule can "
            "repeat for ever.  The fix trylocks the page in do_swap_page: a fault "
            "that finds it locked backs off without taking a reference, and the "
            "holder migrates it as the already-locked fault_page."
        ),
        rule=(
            "A migration succeeds only if nobody else holds a reference to the "
            "page: code that takes a page reference on the way into a migration "
            "must first win the page lock (trylock and back off), or concurrent "
            "callers make each other's migrations fail."
        ),
        checked=(
            "Hand check of the shortest fault-livelock counterexample against "
            "the commit message: cpu0 and cpu1 both enter do_swap_page on the "
            "device-private entry and take get_page (refcount 1 -> 3) before "
            "either migrates.  cpu1's migrate_to_ram (dmirror_devmem_fault) "
            "collects the page (folio_trylock, migration entry), and its "
            "folio_migrate_mapping finds refcount 3 where 2 is expected (cpu0's "
            "reference is the extra one): -EAGAIN, finalize restores the "
            "device-private entry and unlocks.  cpu0 then does the same and "
            "fails on cpu1's reference, which cpu1 drops only after its "
            "migration returned.  Both faults return 0 with the page, its "
            "counts and its PTE as before: the message's 'multiple CPU page "
            "faults each take an extra reference to a device page, which could "
            "abort migration in folio_migrate_mapping'.  Other counterexamples "
            "have one fault skip the page because the other holds its lock.  "
            "What the model abstracts: the livelock itself is the infinite "
            "repetition of this round, which the engine cannot detect between "
            "two tasks (its hang check is for one task spinning alone), so the "
            "scenario checks one round and reports when it ends where it "
            "started.  The fixed kernel has a later livelock (the trylock "
            "failing while the holder waits in lru_add_drain_all without "
            "preemption, fixed in 2026) that needs the LRU and preemption, "
            "which are not modelled.  Date: the applied series version (v7) "
            "was posted 2025-03-05; linux-next carried the commit from the "
            "drm-xe tree on 2025-03-07."
        ),
        bounds=(
            "one page migrated to dmirror's device memory in the set-up; actors "
            "cpu0 and cpu1 each take one CPU fault on it (one do_swap_page); "
            "exhaustive DPOR, max_steps 4000"
        ),
    )
)
