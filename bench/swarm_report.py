"""The table, the targets and the plot of bench/swarm.py, from its measured outcomes."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from swarm_run import Outcome
from unified_swarm.core.bounds import Bounds


@dataclass(frozen=True)
class Measured:
    """One outcome with where it ran: the family, the seed and that DAG's references."""

    family: str
    seed: int
    workers: int
    bounds: Bounds
    heft: float
    out: Outcome
    oracle: float | None = None  # the oracle policy's makespan on the same DAG, if it ran

    @property
    def ref(self) -> float:
        return self.oracle if self.oracle is not None else self.heft

    def ratio(self, attr: str) -> float | None:
        m = self.out.makespan
        if m is None:
            return None
        return {"ref": m / self.ref, "lb": m / self.bounds.lower,
                "util": self.out.busy / (self.workers * m), "tph": self.out.tasks / m * 3600,
                "makespan": m}[attr]


HEADER = (f"{'family':<12} {'policy':<16} {'runs':>4} {'makespan s':>10} {'/REF':>7} "
          f"{'/LB':>6} {'util':>5} {'tasks/h':>8} {'dups':>5} {'wasted':>6} "
          f"{'sess-s':>7} {'p99 ms':>9}  curve /LB by round")


def med(values: Sequence[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.median(got) if got else None


def fmt(v: float | None, spec: str) -> str:
    return "-" if v is None else format(v, spec)


def label(o: Outcome) -> str:
    return f"{o.policy} r{o.round}" if o.policy == "learned" else o.policy


def row(family: str, name: str, group: Sequence[Measured], curve: str = "") -> str:
    r: Callable[[str], float | None] = lambda a: med([m.ratio(a) for m in group])  # noqa: E731
    done = sum(m.out.makespan is not None for m in group)
    runs = f"{done}/{len(group)}" if done < len(group) else str(len(group))
    p99 = med([m.out.p99 for m in group])
    src = group[0].out.p99_source[:1] if p99 is not None else ""
    span = None if family == "all" else r("makespan")  # seconds do not mix across DAGs
    return (f"{family:<12} {name:<16} {runs:>4} {fmt(span, '.2f'):>10} "
            f"{fmt(r('ref'), '.2f'):>7} {fmt(r('lb'), '.2f'):>6} {fmt(r('util'), '.0%'):>5} "
            f"{fmt(r('tph'), ',.0f'):>8} {sum(m.out.duplicates for m in group):>5} "
            f"{sum(m.out.wasted for m in group):>6} "
            f"{fmt(med([m.out.busy for m in group]), '.1f'):>7} "
            f"{fmt(None if p99 is None else p99 * 1000, '.1f') + src:>9}  {curve}").rstrip()


def reference_rows(family: str, group: Sequence[Measured]) -> list[str]:
    """HEFT's offline schedule and the lower bound on the same DAGs, once per DAG."""
    dags = {m.seed: m for m in group}.values()
    heft = med([m.heft for m in dags])
    h_ref = med([m.heft / m.ref for m in dags])
    h_lb = med([m.heft / m.bounds.lower for m in dags])
    lb = med([m.bounds.lower for m in dags])
    cp_share = sum(m.bounds.critical_path >= m.bounds.load for m in dags)
    return [f"{family:<12} {'heft (offline)':<16} {len(dags):>4} {fmt(heft, '.2f'):>10} "
            f"{fmt(h_ref, '.2f'):>7} {fmt(h_lb, '.2f'):>6}",
            f"{family:<12} {'lower bound':<16} {len(dags):>4} {fmt(lb, '.2f'):>10} "
            f"{'':>7} {'1.00':>6}  (critical path binds on {cp_share}/{len(dags)}, "
            f"LP load on the rest)"]


def curve(group: Sequence[Measured], rounds: int) -> str:
    pts = [med([m.ratio("lb") for m in group if m.out.round == r]) for r in range(1, rounds + 1)]
    return " > ".join(fmt(p, ".2f") for p in pts)


def table(measured: Sequence[Measured], families: Sequence[str], rounds: int,
          missing: dict[str, str]) -> list[str]:
    ref = "/oracle" if any(m.oracle is not None for m in measured) else "/HEFT"
    lines = [HEADER.replace("/REF".rjust(7), ref.rjust(7))]
    for family in [*families, "all"]:
        group = [m for m in measured if family in (m.family, "all")]
        if not group:
            continue
        lines += family_rows(family, group, rounds, missing)
    return lines


def family_rows(family: str, group: Sequence[Measured], rounds: int,
                missing: dict[str, str]) -> list[str]:
    lines = []
    for name in ("loose", "fifo", *[f"learned r{r}" for r in range(1, rounds + 1)], "oracle"):
        sub = [m for m in group if label(m.out) == name]
        if sub:
            c = curve([m for m in group if m.out.policy == "learned"], rounds) \
                if name == f"learned r{rounds}" else ""
            lines.append(row(family, name, sub, c))
    for policy, why in missing.items():
        lines.append(f"{family:<12} {policy:<16} not available: {why}")
    if family != "all":
        lines += reference_rows(family, group)
    return lines


def targets(measured: Sequence[Measured], families: Sequence[str], rounds: int,
            missing: dict[str, str]) -> list[str]:
    """The issue's targets, as measured here (or why they cannot be yet)."""
    def by(policy: str, rnd: int | None = None) -> dict[tuple[str, int], Measured]:
        return {(m.family, m.seed): m for m in measured if m.out.policy == policy
                and (rnd is None or m.out.round == rnd)}
    loose, fifo = by("loose"), by("fifo")
    learned, cold = by("learned", rounds), by("learned", 1)
    best = learned or fifo
    gain = med([_div(best[k].ratio("tph"), loose[k].ratio("tph")) for k in best if k in loose])
    dups = sum(m.out.duplicates for m in best.values())
    who = f"learned r{rounds}" if learned else "fifo (learned not available)"
    lines = [f"tasks/hour of {who} / loose: {fmt(gain, '.2f')}x median (target >= 3x), "
             f"duplicates {dups} (target 0); loose duplicates "
             f"{sum(m.out.duplicates for m in loose.values())}" if loose else
             f"tasks/hour against loose: not measured (loose not run); duplicates of {who}: "
             f"{dups} (target 0)"]
    if not learned:
        why = missing.get("learned", "not run")
        return [*lines, f"learned within 1.2x of oracle after {rounds} rounds; >= 1.5x better "
                        f"than fifo; cold start within 10% of fifo: not measurable ({why})"]
    for fam in families:
        keys = [k for k in learned if k[0] == fam]
        vs_oracle = med([learned[k].ratio("ref") for k in keys])
        vs_fifo = med([_div(fifo[k].ratio("makespan"), learned[k].ratio("makespan"))
                       for k in keys if k in fifo])
        vs_cold = med([_div(cold[k].ratio("makespan"), fifo[k].ratio("makespan"))
                       for k in keys if k in fifo and k in cold])
        lines.append(f"{fam}: learned r{rounds} / oracle {fmt(vs_oracle, '.2f')} (<= 1.2); "
                     f"fifo / learned r{rounds} {fmt(vs_fifo, '.2f')} (>= 1.5); "
                     f"learned r1 / fifo {fmt(vs_cold, '.2f')} (<= 1.1)")
    return lines


def overhead_note(measured: Sequence[Measured]) -> str:
    ov = med([m.out.extra.get("overhead") for m in measured])
    return ("per-task overhead under the server policies (an attempt on the server minus the "
            f"task's own run): median {fmt(None if ov is None else ov * 1000, '.0f')} ms")


def _div(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def plot(measured: Sequence[Measured], families: Sequence[str], rounds: int,
         missing: dict[str, str], path: Path, title: str) -> None:
    """Left: median makespan / lower bound per policy and family. Right: the learning
    curve (learned, by round) against fifo and the oracle (HEFT when no oracle ran)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(14, 5))
    _bars(left, measured, families, rounds, missing)
    _curve_panel(right, measured, families, rounds, missing)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _bars(ax: Any, measured: Sequence[Measured], families: Sequence[str], rounds: int,
          missing: dict[str, str]) -> None:
    names = [n for n in ("loose", "fifo", f"learned r{rounds}", "oracle", "heft")
             if n.split()[0] not in missing]
    width = 0.8 / len(names)
    for i, name in enumerate(names):
        ys = [_family_lb(measured, fam, name) for fam in families]
        xs = [j + (i - len(names) / 2 + 0.5) * width for j in range(len(families))]
        ax.bar(xs, [y or 0 for y in ys], width,
               label="HEFT (offline)" if name == "heft" else name)
    ax.set_xticks(range(len(families)), families)
    ax.set_ylabel("makespan / lower bound (median over seeds)")
    ax.axhline(1.0, color="black", linewidth=0.8)
    ax.legend(fontsize=8)
    gone = f"; not available: {', '.join(missing)}" if missing else ""
    ax.set_title(f"makespan per policy{gone}", fontsize=10)


def _family_lb(measured: Sequence[Measured], family: str, name: str) -> float | None:
    group = [m for m in measured if m.family == family]
    if name == "heft":
        return med([m.heft / m.bounds.lower for m in {m.seed: m for m in group}.values()])
    return med([m.ratio("lb") for m in group if label(m.out) == name])


def _curve_panel(ax: Any, measured: Sequence[Measured], families: Sequence[str],
                 rounds: int, missing: dict[str, str]) -> None:
    xs = list(range(1, rounds + 1))
    ref = "oracle" if "oracle" not in missing and any(
        m.out.policy == "oracle" for m in measured) else "heft"
    for i, fam in enumerate(families):
        color = f"C{i}"
        pts = [med([m.ratio("lb") for m in measured if m.family == fam
                    and m.out.policy == "learned" and m.out.round == r]) for r in xs]
        if any(p is not None for p in pts):
            ax.plot(xs, [p or float("nan") for p in pts], "o-", color=color,
                    label=f"{fam}: learned")
        for name, style in (("fifo", ":"), (ref, "--")):
            level = _family_lb(measured, fam, name)
            if level is not None:
                ax.axhline(level, color=color, linestyle=style, linewidth=1.1,
                           label=f"{fam}: {'HEFT' if name == 'heft' else name}")
    if "learned" in missing:
        ax.text(0.5, 0.55, f"learned: not yet available\n({missing['learned']})",
                transform=ax.transAxes, ha="center", va="center", fontsize=9)
    ax.set_xticks(xs)
    ax.set_xlim(0.8, rounds + 0.2)
    ax.set_ylim(bottom=0.9)
    ax.set_xlabel("round (same workers and session ids, model kept)")
    ax.set_ylabel("makespan / lower bound (median over seeds)")
    ax.set_title(f"learning curve (dotted: fifo, dashed: {'HEFT' if ref == 'heft' else ref})",
                 fontsize=10)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
