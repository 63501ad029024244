"""Exhibit ``release-vs-reclaim``: d34883d4e35c, reclaim behind a released subscriber's back."""

from __future__ import annotations

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="release-vs-reclaim",
        commit="d34883d4e35c",
        subject="mm: mmu_notifier: re-fix freed page still mapped in secondary MMU",
        release="v3.10",
        date="2013-05-24",
        scenario="release-vs-reclaim",
        before="v5.3-revert-d34883d4e35c",
        after="v5.3",
        kinds=("notifier-contract",),
        columns=("exit", "reclaim"),
        summary=(
            "v3.9's __mmu_notifier_release (751efd8610d3) unhooked each "
            "subscriber under the lock and called its release only after "
            "dropping it.  Between the two, page reclaim's try_to_unmap "
            "invalidated the page without reaching the unhooked subscriber, "
            "cleared the PTE and freed the page, while the secondary MMU (KVM's "
            "shadow page table) still mapped it until its release ran.  The fix "
            "calls every release under SRCU first and unhooks afterwards."
        ),
        rule=(
            "A secondary MMU must stay reachable by invalidations until it has "
            "dropped every mapping: tear the mappings down first (release), "
            "unsubscribe afterwards, never the other way round."
        ),
        checked=(
            "Hand check of the counterexample against the commit's discussion "
            "(Xiao Guangrong's reply to Robin Holt, and the commit message): "
            "exit's release unhooks kvm0's notifier under the lock (point 1); "
            "reclaim then isolates the page and its "
            "mmu_notifier_invalidate_range_start finds no subscriber, so "
            "try_to_unmap_one clears the PTE while kvm0's shadow table still "
            "maps the page (notifier-contract) and shrink_page_list frees it; "
            "only then does exit call kvm0's release (point 2), which in KVM "
            "marks the freed page accessed/dirty.  The model reports the PTE "
            "clear and shows the shadow entry on a free page; it does not model "
            "KVM's accessed/dirty update in release.  Abstractions: v3.9 is v5.3's core with the commit reverted; exit "
            "runs only exit_mmap's mmu_notifier_release (the model's rmap walk "
            "takes no anon_vma lock, which in the kernel keeps exit_mmap's "
            "free_pgtables from freeing the mm under a running try_to_unmap), "
            "then closes the VM.  Date: as NVIDIA's UVM driver dates the commit in "
            "its conftest notes (the commit itself was read as Xiao Guangrong's "
            "posted patch of 2013-05-06 and the linux-next log that applies it)."
        ),
        bounds=(
            "one page mapped by one KVM-style subscriber; actors exit "
            "(mmu_notifier_release, then mmu_notifier_unregister) and reclaim "
            "(shrink_inactive_list of the page); exhaustive DPOR, max_steps 4000"
        ),
    )
)
