"""An independent reference enumerator for the programs of `random_programs`.

It shares no code with hmmsim's engine, strategies or primitives.  Each task
body is compiled to a small linear instruction list with its own semantics
(locks, rwsem, wait queue, kref, SRCU, spawn ...), and every interleaving is
enumerated by an explicit-state search with a visited set: a transition is
one shared instruction followed by the task's local instructions up to its
next shared one.  The terminal states give the reference behaviours: the
outcome, the final summary (as :func:`random_programs.summary`) and the set
of finding kinds.

Findings, as hmmsim's primitives define them: ``bug`` and ``kref`` stop the
execution; ``warn``, ``sleep-in-nonblockable`` (a sleeping call while a
spinlock is held) and ``lock-order`` (the blocking acquisitions of one
execution order two lock classes both ways) do not; ``deadlock`` when no task
can move and some have not finished.  A timed wait can always time out, so
it never blocks for good.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from tests.support.random_programs import RELEASED, TIMEOUT, Body, Spec, summary

Instr = tuple[object, ...]
Code = tuple[Instr, ...]

#: Instructions that call might_sleep on arrival (hmmsim's sleeping calls).
_SLEEPS = {"lock:m", "down", "wait_check", "twait_check", "sync_snap"}


class _Compiler:
    """Compiles bodies to linear code; ``spawn`` refers to another code index."""

    def __init__(self) -> None:
        self.codes: list[Code] = []

    def compile(self, body: Body) -> int:
        index = len(self.codes)
        self.codes.append(())
        out: list[Instr] = []
        self._body(body, out)
        out.append(("end",))
        self.codes[index] = tuple(out)
        return index

    def _body(self, body: Body, out: list[Instr]) -> None:
        for item in body:
            self._item(item, out)

    def _guarded(
        self, take: Instr, body: object, release: Instr, out: list[Instr]
    ) -> None:
        at = len(out)
        out.append(take)
        assert isinstance(body, tuple)
        self._body(body, out)
        out.append(release)
        out[at] = (*take, len(out))  # where a failed trylock goes

    def _item(self, item: tuple[object, ...], out: list[Instr]) -> None:
        kind = item[0]
        a = item[1] if len(item) > 1 else None
        simple: dict[object, list[Instr]] = {
            "write": [("write", a, item[-1])],
            "read": [("read", a, item[-1])],
            "warn": [("warn", a, item[-1])],
            "bug": [("bug", a, item[-1])],
            "wait": [("wait_check",), ("wait_block",)],
            "twait": [("twait_check", a), ("twait_block", a)],
            "wake": [("wake_flag",), ("wake",)],
            "kget": [("kget",)],
            "kget_nz": [("kget_nz", a)],
            "sync_srcu": [("sync_snap",), ("sync_wait",)],
        }
        if kind in simple:
            out.extend(simple[kind])
        elif kind == "kput":
            out.append(("kput", len(out) + 2))
            out.append(("release",))
        elif kind == "if":
            at = len(out)
            out.append(("jne", item[1], item[2], -1))
            assert isinstance(item[3], tuple)
            assert isinstance(item[4], tuple)
            self._body(item[3], out)
            jump = len(out)
            out.append(("jmp", -1))
            out[at] = ("jne", item[1], item[2], len(out))
            self._body(item[4], out)
            out[jump] = ("jmp", len(out))
        elif kind in {"mutex", "spin"}:
            cls = "m" if kind == "mutex" else "s"
            out.append(("lock", cls))
            assert isinstance(item[1], tuple)
            self._body(item[1], out)
            out.append(("unlock", cls))
        elif kind in {"trymutex", "tryspin"}:
            cls = "m" if kind == "trymutex" else "s"
            self._guarded(("trylock", cls), item[1], ("unlock", cls), out)
        elif kind in {"rsem", "wsem"}:
            mode = kind[0]
            out.append(("down", mode))
            assert isinstance(item[1], tuple)
            self._body(item[1], out)
            out.append(("up", mode))
        elif kind in {"rtry", "wtry"}:
            mode = kind[0]
            self._guarded(("downtry", mode), item[1], ("up", mode), out)
        elif kind == "srcu":
            out.append(("srcu_lock",))
            assert isinstance(item[1], tuple)
            self._body(item[1], out)
            out.append(("srcu_unlock",))
        else:
            assert kind == "spawn", kind
            assert isinstance(item[1], tuple)
            out.append(("spawn", self.compile(item[1])))


@dataclass(frozen=True, slots=True)
class _Task:
    name: str
    code: int
    pc: int = 0
    regs: tuple[int, int] = (0, 0)
    held: tuple[str, ...] = ()
    sections: tuple[int, ...] = ()
    next_section: int = 0
    snapshot: frozenset[tuple[int, int]] = frozenset()
    spawned: int = 0


@dataclass(frozen=True, slots=True)
class _State:
    tasks: tuple[_Task, ...]
    cells: tuple[int, int] = (0, 0)
    flag: int = 0
    count: int = 1
    owner: tuple[tuple[str, int], ...] = ()  # (lock class, task index) pairs
    writer: int = -1
    readers: tuple[int, ...] = ()
    active: frozenset[tuple[int, int]] = frozenset()
    edges: frozenset[tuple[str, str]] = frozenset()
    findings: frozenset[str] = frozenset()
    stopped: bool = False


Behaviour = tuple[str, object, frozenset[str]]


class Reference:
    """Enumerates every interleaving of one program (see the module docstring)."""

    def __init__(self, spec: Spec) -> None:
        compiler = _Compiler()
        roots = [compiler.compile(body) for body in spec]
        self.codes = compiler.codes
        self.names = [f"t{i}" for i in range(len(spec))]
        state = _State(
            tasks=tuple(
                _Task(name=n, code=c) for n, c in zip(self.names, roots, strict=True)
            )
        )
        for index in range(len(spec)):
            state = self._settle(state, index)
            if state.stopped:
                break
        self.initial = state
        #: States visited by the last :meth:`behaviours` call.
        self.states = 0

    def behaviours(self, *, limit: int = 200_000) -> set[Behaviour]:
        """Return the behaviours of every terminal state reachable."""
        seen = {self.initial}
        stack = [self.initial]
        out: set[Behaviour] = set()
        while stack:
            state = stack.pop()
            successors = [] if state.stopped else self._successors(state)
            if not successors:
                out.add(self._behaviour(state))
                continue
            for nxt in successors:
                if nxt not in seen:
                    assert len(seen) < limit, "reference state space too large"
                    seen.add(nxt)
                    stack.append(nxt)
        self.states = len(seen)
        return out

    # -- terminal states --------------------------------------------------

    def _behaviour(self, state: _State) -> Behaviour:
        findings = set(state.findings)
        live = [t for t in state.tasks if self._instr(t)[0] != "end"]
        if live and not state.stopped:
            findings.add("deadlock")
        if _has_cycle(state.edges):
            findings.add("lock-order")
        regs = {t.name: list(t.regs) for t in state.tasks}
        for name in self.names:
            regs.setdefault(name, [0, 0])
        final = summary(list(state.cells), state.flag, state.count, regs)
        return ("violation" if findings else "passed", final, frozenset(findings))

    # -- transitions --------------------------------------------------------

    def _instr(self, task: _Task) -> Instr:
        return self.codes[task.code][task.pc]

    def _successors(self, state: _State) -> list[_State]:
        out: list[_State] = []
        for index, task in enumerate(state.tasks):
            out.extend(
                nxt if nxt.stopped else self._settle(nxt, index)
                for nxt in self._step(state, index, task, self._instr(task))
            )
        return out

    def _step(self, s: _State, i: int, t: _Task, ins: Instr) -> list[_State]:  # noqa: PLR0911, PLR0912, PLR0915 - one case per instruction
        op = ins[0]
        nxt = replace(t, pc=t.pc + 1)
        if op == "end":
            return []
        if op == "write":
            return [_put(s, i, nxt, cells=_set(s.cells, _n(ins[1]), _n(ins[2])))]
        if op == "read":
            return [
                _put(
                    s,
                    i,
                    replace(nxt, regs=_set(t.regs, _n(ins[2]), s.cells[_n(ins[1])])),
                )
            ]
        if op == "lock":
            cls = str(ins[1])
            if dict(s.owner).get(cls) is not None:
                return []
            return [
                _put(
                    s, i, replace(nxt, held=(*t.held, cls)), owner=(*s.owner, (cls, i))
                )
            ]
        if op == "unlock":
            return [
                _put(
                    s,
                    i,
                    replace(nxt, held=_drop(t.held, str(ins[1]))),
                    owner=tuple(p for p in s.owner if p[0] != ins[1]),
                )
            ]
        if op == "trylock":
            cls = str(ins[1])
            if dict(s.owner).get(cls) is not None:
                return [_put(s, i, replace(t, pc=_n(ins[2])))]
            return [
                _put(
                    s, i, replace(nxt, held=(*t.held, cls)), owner=(*s.owner, (cls, i))
                )
            ]
        if op in {"down", "downtry"}:
            can = s.writer < 0 and (ins[1] == "r" or not s.readers)
            if not can:
                return [] if op == "down" else [_put(s, i, replace(t, pc=_n(ins[2])))]
            taken = replace(nxt, held=(*t.held, "r"))
            if ins[1] == "r":
                return [_put(s, i, taken, readers=tuple(sorted((*s.readers, i))))]
            return [_put(s, i, taken, writer=i)]
        if op == "up":
            t2 = replace(nxt, held=_drop(t.held, "r"))
            if ins[1] == "r":
                readers = list(s.readers)
                readers.remove(i)
                return [_put(s, i, t2, readers=tuple(readers))]
            return [_put(s, i, t2, writer=-1)]
        if op in {"wait_check", "twait_check"}:
            if s.flag != 1:
                return [_put(s, i, nxt)]
            done = replace(t, pc=t.pc + 2)
            if op == "twait_check":
                done = replace(done, regs=_set(t.regs, _n(ins[1]), TIMEOUT))
            return [_put(s, i, done)]
        if op == "wait_block":
            return [_put(s, i, nxt)] if s.flag == 1 else []
        if op == "twait_block":
            r = _n(ins[1])
            outs = [
                _put(s, i, replace(nxt, regs=_set(t.regs, r, s.flag)))
            ]  # the timeout fires
            if s.flag == 1:  # woken, or the second check saw the flag
                outs.append(_put(s, i, replace(nxt, regs=_set(t.regs, r, TIMEOUT))))
            return outs
        if op == "wake_flag":
            return [_put(s, i, nxt, flag=1)]
        if op == "wake":
            return [_put(s, i, nxt)]
        if op == "kget":
            if s.count == 0:
                return [_stop(s, "kref")]
            return [_put(s, i, nxt, count=s.count + 1)]
        if op == "kget_nz":
            got = int(s.count != 0)
            return [
                _put(
                    s,
                    i,
                    replace(nxt, regs=_set(t.regs, _n(ins[1]), got)),
                    count=s.count + got,
                )
            ]
        if op == "kput":
            if s.count == 0:
                return [_stop(s, "kref")]
            after = nxt if s.count == 1 else replace(t, pc=_n(ins[1]))
            return [_put(s, i, after, count=s.count - 1)]
        if op == "release":
            return [_put(s, i, nxt, cells=_set(s.cells, 1, RELEASED))]
        if op == "srcu_lock":
            section = (i, t.next_section)
            t2 = replace(
                nxt,
                sections=(*t.sections, t.next_section),
                next_section=t.next_section + 1,
            )
            return [_put(s, i, t2, active=s.active | {section})]
        if op == "srcu_unlock":
            section = (i, t.sections[-1])
            return [
                _put(
                    s,
                    i,
                    replace(nxt, sections=t.sections[:-1]),
                    active=s.active - {section},
                )
            ]
        if op == "sync_snap":
            return [_put(s, i, replace(nxt, snapshot=s.active))]
        if op == "sync_wait":
            return [_put(s, i, nxt)] if not (t.snapshot & s.active) else []
        assert op == "spawn", op
        child = _Task(name=f"{t.name}.{t.spawned}", code=_n(ins[1]))
        spawned = _put(s, i, replace(nxt, spawned=t.spawned + 1))
        spawned = replace(spawned, tasks=(*spawned.tasks, child))
        return [self._settle(spawned, len(spawned.tasks) - 1)]

    def _settle(self, s: _State, i: int) -> _State:
        """Run task ``i``'s local instructions up to its next shared one."""
        while not s.stopped:
            t = s.tasks[i]
            ins = self._instr(t)
            op = ins[0]
            if op == "jne":
                target = t.pc + 1 if t.regs[_n(ins[1])] == ins[2] else _n(ins[3])
                s = _put(s, i, replace(t, pc=target))
            elif op == "jmp":
                s = _put(s, i, replace(t, pc=_n(ins[1])))
            elif op in {"warn", "bug"}:
                if t.regs[_n(ins[1])] == ins[2]:
                    s = replace(s, findings=s.findings | {op}, stopped=op == "bug")
                s = _put(s, i, replace(t, pc=t.pc + 1)) if not s.stopped else s
            else:
                return self._arrive(s, i, t, ins)
        return s

    def _arrive(self, s: _State, i: int, t: _Task, ins: Instr) -> _State:
        """The task reached a shared instruction: might_sleep and lockdep."""
        op = str(ins[0])
        key = f"{op}:{ins[1]}" if op == "lock" else op
        if key in _SLEEPS and "s" in t.held:
            s = replace(s, findings=s.findings | {"sleep-in-nonblockable"})
        if op in {"lock", "down"}:
            cls = "r" if op == "down" else str(ins[1])
            new = {(h, cls) for h in t.held if h != cls}
            s = replace(s, edges=s.edges | new)
        return s


def _put(s: _State, i: int, task: _Task, **changes: object) -> _State:
    tasks = (*s.tasks[:i], task, *s.tasks[i + 1 :])
    return replace(s, tasks=tasks, **changes)  # type: ignore[arg-type]


def _stop(s: _State, kind: str) -> _State:
    return replace(s, findings=s.findings | {kind}, stopped=True)


def _set(values: tuple[int, int], index: int, value: int) -> tuple[int, int]:
    return (value, values[1]) if index == 0 else (values[0], value)


def _drop(held: tuple[str, ...], cls: str) -> tuple[str, ...]:
    at = len(held) - 1 - held[::-1].index(cls)
    return held[:at] + held[at + 1 :]


def _n(value: object) -> int:
    assert isinstance(value, int)
    return value


def _has_cycle(edges: frozenset[tuple[str, str]]) -> bool:
    nodes = {a for a, _ in edges} | {b for _, b in edges}
    succ = {n: [b for a, b in edges if a == n] for n in nodes}
    state: dict[str, int] = {}

    def visit(node: str) -> bool:
        state[node] = 1
        for nxt in succ[node]:
            if state.get(nxt) == 1 or (nxt not in state and visit(nxt)):
                return True
        state[node] = 2
        return False

    return any(node not in state and visit(node) for node in sorted(nodes))
