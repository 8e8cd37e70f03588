"""The PNG beside each results JSON: one panel per suite that ran (bars of images/s with the
interquartile range of the runs, each labelled with its ratio to the suite's baseline; a line
for a scaling sweep; CPU ms per image with each stage's cost for a stage suite), then the
targets. Skipped configurations are not drawn.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """Draw ``result`` (the runner's JSON dict) to ``path`` (PNG); returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from dali_gridaug.bench.core import load_suites

    suites = load_suites()
    ran: dict[str, list[dict[str, Any]]] = {}
    for c in result["configs"]:
        if "images_per_s" in c:
            ran.setdefault(c["suite"], []).append(c)
    panels = [(name, cs) for name, cs in ran.items()]
    heights = [1.2 + (2.2 if _sweep(suites, n) else 0.28 * len(cs)) for n, cs in panels]
    lines = _target_lines(result.get("targets", {}))
    if lines:
        heights.append(0.3 + 0.2 * len(lines))
    fig, axes = plt.subplots(
        len(heights),
        1,
        figsize=(11, sum(heights) + 0.8),
        height_ratios=heights,
        layout="constrained",
        squeeze=False,
    )
    m, ds, st = result["machine"], result["dataset"], result["settings"]
    kind = {"photos": "natural-photo"}.get(ds.get("kind"), ds.get("kind"))
    fig.suptitle(
        f"{m['device']} ({m['cpu_count']} CPUs) — {ds.get('images')} {kind} JPEGs, "
        f"batch {st['batch_size']}, {st['image_size']} px, median of {st['rounds']} rounds × "
        f"{st['runs']} runs — {result['date'][:10]}",
        fontsize=10,
    )
    for ax, (name, cs) in zip(axes[:, 0], panels, strict=False):
        sweep = _sweep(suites, name)
        if sweep:
            _line(ax, cs, sweep)
        elif name in suites and suites[name].stages:
            _stages(ax, cs, suites[name].baseline)
        else:
            base = suites[name].baseline if name in suites else None
            _bars(ax, cs, next((c for c in cs if c["config"] == base), None))
        ax.set_title(name, fontsize=10, loc="left")
    if lines:
        ax = axes[-1, 0]
        ax.axis("off")
        ax.set_title("targets", fontsize=10, loc="left")
        ax.text(
            0, 1, "\n".join(lines), va="top", family="monospace", fontsize=8, transform=ax.transAxes
        )
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _sweep(suites: dict[str, Any], name: str) -> str | None:
    return suites[name].sweep if name in suites else None


def _iqr(c: dict[str, Any]) -> tuple[float, float]:
    n, v = c["images_per_run"], c["images_per_s"]
    return v - n / c["q3_s"], n / c["q1_s"] - v


def _bars(ax: Any, cs: list[dict[str, Any]], base: dict[str, Any] | None) -> None:
    y = range(len(cs))
    vals = [c["images_per_s"] for c in cs]
    err = list(zip(*map(_iqr, cs), strict=True))
    ax.barh(y, vals, height=0.6, xerr=err, color="#1f77b4", capsize=2, error_kw={"lw": 0.8})
    ax.set_yticks(list(y), [c["config"] for c in cs], fontsize=8)
    ax.invert_yaxis()
    vs = f"; × = relative to {base['config']}" if base else ""
    ax.set_xlabel(f"images/s (median; whiskers: interquartile range of the runs{vs})", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(0, max(v + h for v, h in zip(vals, err[1], strict=True)) * 1.3)
    for yi, c, hi in zip(y, cs, err[1], strict=True):
        rel = f"  {c['images_per_s'] / base['images_per_s']:.2f}×" if base else ""
        x = c["images_per_s"] + hi
        ax.text(x, yi, f" {c['images_per_s']:,.0f}{rel}", va="center", fontsize=7)


def _stages(ax: Any, cs: list[dict[str, Any]], base: str | None) -> None:
    """CPU ms per image of cumulative pipelines, each labelled with its stage's cost (the
    difference from the config before it; a ``+name`` config's from ``base``).
    """
    ms = {c["config"]: c["cpu_s_per_image"] * 1e3 for c in cs}
    y = range(len(cs))
    ax.barh(y, list(ms.values()), height=0.6, color="#1f77b4")
    ax.set_yticks(list(y), list(ms), fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("CPU ms per image (median of the runs; label: this stage's cost)", fontsize=8)
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlim(0, max(ms.values()) * 1.3)
    prev = 0.0
    for yi, (name, v) in zip(y, ms.items(), strict=True):
        ref = ms.get(base, 0.0) if name.startswith("+") else prev
        ax.text(v, yi, f" {v:.2f}  ({v - ref:+.2f})", va="center", fontsize=7)
        prev = prev if name.startswith("+") else v


def _line(ax: Any, cs: list[dict[str, Any]], key: str) -> None:
    cs = sorted(cs, key=lambda c: c["params"][key])
    err = list(zip(*map(_iqr, cs), strict=True))
    ax.errorbar(
        [c["params"][key] for c in cs],
        [c["images_per_s"] for c in cs],
        yerr=err,
        marker="o",
        capsize=3,
    )
    ax.set_xlabel(key, fontsize=8)
    ax.set_ylabel("images/s", fontsize=8)
    ax.grid(alpha=0.3)


def _target_lines(targets: dict[str, Any]) -> list[str]:
    out = []
    for key, t in targets.items():
        status = {True: "PASS", False: "FAIL", None: "n/a "}[t["pass"]]
        vals = ", ".join(f"{k.split('/')[-1]} {v:.3g}" for k, v in t["value"].items() if v)
        out.append(f"[{status}] {key}: {vals or '–'}  (≥ {t['threshold']:g})")
    return out


def main(argv: list[str] | None = None) -> int:
    """``python -m dali_gridaug.bench.plot RESULT.json [OUT.png]``: redraw a saved result."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m dali_gridaug.bench.plot RESULT.json [OUT.png]")
        return 2
    src = Path(args[0])
    out = plot(json.loads(src.read_text()), args[1] if len(args) > 1 else src.with_suffix(".png"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
