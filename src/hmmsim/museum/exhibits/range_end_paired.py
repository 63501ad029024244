"""Exhibit c2655835fd8c: a refused non-blocking start must still end the others."""

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="range-end-paired",
        commit="c2655835fd8c",
        subject="mm/mmu_notifiers: ensure range_end() is paired with range_start()",
        release="v5.12",
        date="2021-03-11",
        scenario="oom-kvm-and-nouveau",
        before="current-revert-c2655835fd8c",
        after="current",
        kinds=("notifier-leak",),
        columns=("oom_reaper", "vcpu"),
        summary=(
            "KVM and nouveau's SVM notifier subscribe to one mm.  The OOM "
            "reaper's non-blocking invalidate_range_start calls both: nouveau "
            "refuses (-EAGAIN), KVM's start succeeds and raises "
            "mmu_notifier_count.  The start fails, so the reaper calls no "
            "invalidate_range_end, and before the commit nothing else did: "
            "KVM's count stays raised and its vCPU faults retry for ever."
        ),
        rule=(
            "A subscriber whose invalidate_range_start can fail must not have "
            "an invalidate_range_end (nobody tells it its own start failed); "
            "the core ends every other subscriber after a refusal, so a start "
            "that counts up may rely on its end."
        ),
        checked=(
            "Replayed counterexample on current with c2655835fd8c reverted "
            "(72 steps): the vCPU maps BASE; the reaper's start calls nouveau's "
            "notifier first (registered last), which returns -EAGAIN, then "
            "KVM's, which raises kvm0->mmu_notifier_count to 1 and zaps its "
            "shadow PTE; __mmu_notifier_invalidate_range_start returns -EAGAIN, "
            "the reaper skips the VMA, calls no end and gives up; at the end "
            "the count is still 1 (notifier-leak).  That is the commit "
            "message's case ('those that did not fail are expecting _start() "
            "and _end() to be paired, e.g. KVM's mmu_notifier_count would "
            "become imbalanced'), found there by adding a second, refusing "
            "notifier next to KVM and triggering OOM, as here with nouveau's.  "
            "The oracle's second cause note reads nouveau's -EAGAIN as an error "
            "KVM's start dropped (a heuristic written for HMM's mirror loop); "
            "the step it marks, the refusal, is right.  'after' is current: "
            "the unwind calls KVM's end and nouveau has none, so no WARN."
        ),
        bounds=(
            "one page, KVM (shadow table maps BASE) and nouveau's hlist "
            "notifier, no interval notifier, the reaper's 1 attempt, one vCPU "
            "fault (1 retry); exhaustive DPOR, max_steps 4000"
        ),
    )
)
