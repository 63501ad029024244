"""Kernel-style synchronisation primitives, driven by the hmmsim engine.

Every primitive that can block or that touches shared state is ``async`` and
awaits an :class:`~hmmsim.engine.ops.Op` before it takes effect, so the
explorer decides the interleaving.  Names and semantics follow the kernel.
"""

from __future__ import annotations

from hmmsim.sync import audit
from hmmsim.sync._base import (
    current_execution,
    current_task,
    new_oid,
    report,
    tracepoint,
)
from hmmsim.sync.bitlock import (
    BitLock,
    clear_bit_unlock,
    test_and_set_bit_lock,
    wait_on_bit,
    wait_on_bit_lock,
)
from hmmsim.sync.debug import (
    BUG_ON,
    WARN_ON,
    WARN_ON_ONCE,
    lockdep_assert_held,
    lockdep_is_held,
    lockdep_is_held_type,
    might_sleep,
    non_block_end,
    non_block_start,
)
from hmmsim.sync.kref import (
    Kref,
    kref_check_live,
    kref_get,
    kref_get_unless_zero,
    kref_init,
    kref_put,
    kref_read,
)
from hmmsim.sync.mutex import (
    Mutex,
    mutex_init,
    mutex_is_locked,
    mutex_lock,
    mutex_trylock,
    mutex_unlock,
)
from hmmsim.sync.once import (
    READ_ONCE,
    WRITE_ONCE,
    Cell,
    shared_access,
    smp_load_acquire,
    smp_store_release,
)
from hmmsim.sync.rwsem import (
    RwSemaphore,
    down_read,
    down_read_trylock,
    down_write,
    down_write_trylock,
    downgrade_write,
    init_rwsem,
    rwsem_is_locked,
    up_read,
    up_write,
)
from hmmsim.sync.sched import (
    cond_resched,
    kthread_run,
    msleep,
    schedule,
    schedule_timeout_idle,
)
from hmmsim.sync.spinlock import (
    SpinLock,
    spin_lock,
    spin_lock_init,
    spin_lock_irqsave,
    spin_trylock,
    spin_unlock,
    spin_unlock_irqrestore,
)
from hmmsim.sync.srcu import (
    SrcuStruct,
    call_srcu,
    srcu_read_lock,
    srcu_read_unlock,
    synchronize_srcu,
)
from hmmsim.sync.waitqueue import (
    WaitQueueHead,
    init_waitqueue_head,
    wait_event,
    wait_event_timeout,
    wake_up,
    wake_up_all,
)

__all__ = [
    "BUG_ON",
    "READ_ONCE",
    "WARN_ON",
    "WARN_ON_ONCE",
    "WRITE_ONCE",
    "BitLock",
    "Cell",
    "Kref",
    "Mutex",
    "RwSemaphore",
    "SpinLock",
    "SrcuStruct",
    "WaitQueueHead",
    "audit",
    "call_srcu",
    "clear_bit_unlock",
    "cond_resched",
    "current_execution",
    "current_task",
    "down_read",
    "down_read_trylock",
    "down_write",
    "down_write_trylock",
    "downgrade_write",
    "init_rwsem",
    "init_waitqueue_head",
    "kref_check_live",
    "kref_get",
    "kref_get_unless_zero",
    "kref_init",
    "kref_put",
    "kref_read",
    "kthread_run",
    "lockdep_assert_held",
    "lockdep_is_held",
    "lockdep_is_held_type",
    "might_sleep",
    "msleep",
    "mutex_init",
    "mutex_is_locked",
    "mutex_lock",
    "mutex_trylock",
    "mutex_unlock",
    "new_oid",
    "non_block_end",
    "non_block_start",
    "report",
    "rwsem_is_locked",
    "schedule",
    "schedule_timeout_idle",
    "shared_access",
    "smp_load_acquire",
    "smp_store_release",
    "spin_lock",
    "spin_lock_init",
    "spin_lock_irqsave",
    "spin_trylock",
    "spin_unlock",
    "spin_unlock_irqrestore",
    "srcu_read_lock",
    "srcu_read_unlock",
    "synchronize_srcu",
    "test_and_set_bit_lock",
    "tracepoint",
    "up_read",
    "up_write",
    "wait_event",
    "wait_event_timeout",
    "wait_on_bit",
    "wait_on_bit_lock",
    "wake_up",
    "wake_up_all",
]
