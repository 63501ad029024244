"""Device drivers and devices that use HMM and mmu notifiers (models).

* :mod:`~hmmsim.kernel.drivers.device`: a device with its own page table and
  a DMA engine that reads and writes memory through it.
* :mod:`~hmmsim.kernel.drivers.dummy_mirror`: the reference ``hmm_mirror``
  driver of Documentation/vm/hmm.rst (v5.3), in the shape of nouveau_svm.
* :mod:`~hmmsim.kernel.drivers.kvm_mmu`: a secondary MMU in the style of KVM
  subscribed directly to the mmu-notifier core.
"""

from __future__ import annotations

__all__: list[str] = []
