"""Exhibit ``release-vs-unregister``: 751efd8610d3, two unhooks of one subscriber."""

from __future__ import annotations

from hmmsim.museum import Exhibit, register_exhibit

EXHIBIT = register_exhibit(
    Exhibit(
        slug="release-vs-unregister",
        commit="751efd8610d3",
        subject=(
            "mmu_notifier_unregister NULL Pointer deref and multiple ->release() "
            "callouts"
        ),
        release="v3.9",
        date="2013-01-16",
        scenario="release-vs-unregister",
        before="v5.3-revert-d34883d4e35c-751efd8610d3",
        after="v5.3-revert-d34883d4e35c",
        kinds=("null-deref",),
        columns=("unregister", "exit"),
        summary=(
            "mmu_notifier_unregister (a driver closing its file) tested "
            "hlist_unhashed without the list lock, called release under SRCU and "
            "only then unhooked the subscriber with hlist_del_rcu.  If the "
            "process exited in between, __mmu_notifier_release had already "
            "unhooked it with hlist_del_init_rcu, which clears pprev, and "
            "hlist_del_rcu stored through that NULL pointer.  The fix made "
            "whoever unhooks the subscriber under the lock the one that calls "
            "release (which also ended the double release callout)."
        ),
        rule=(
            "Test-then-act on a shared list needs the list's lock around both; "
            "when two teardown paths can remove the same node, the removal must "
            "tolerate an already removed node (hlist_del_init_rcu) or be "
            "decided under the lock."
        ),
        checked=(
            "Hand check of the shortest counterexample against the diagram of the "
            "commit message (quoted again in d34883d4e35c's): unregister (A) sees "
            "the subscriber hashed (t2), takes the SRCU read lock (t4) and runs "
            "kvm's release; exit (B) runs __mmu_notifier_release: release "
            "callouts under SRCU (t1-t3, here B also calls kvm's release: the "
            "'multiple ->release() callouts' of the subject), the "
            "hlist_del_init_rcu unhook (t5) and synchronize_srcu (t6); A drops "
            "SRCU (t7) and its hlist_del_rcu oopses (t8).  The only difference "
            "is where A's srcu_read_unlock falls relative to B's "
            "synchronize_srcu, which the diagram orders t6 before t7 and the "
            "shrunk schedule the other way round; both end the same.  "
            "Abstractions: v3.8 and v3.9 are v5.3's notifier core with the two "
            "commits reverted (their release drops SRCU before the unhook, "
            "v5.3's after); the subscriber is the KVM-style secondary MMU, the "
            "driver closing its file in the commit.  Date: the posting of the "
            "patch with this diagram (the commit's own author date was not read)."
        ),
        bounds=(
            "one page, one KVM-style subscriber mapping it; actors unregister "
            "(one mmu_notifier_unregister) and exit (the last mmput: exit_mmap); "
            "exhaustive DPOR, max_steps 4000"
        ),
    )
)
