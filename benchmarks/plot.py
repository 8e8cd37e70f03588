"""The PNG beside each results JSON: loader throughput bars (median, min–max whiskers), the
augmentation-alone times, the scaling sweeps and the targets."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

COLORS = {
    "torchvision": "#7f7f7f",
    "reference": "#d62728",
    "dali-cpu": "#1f77b4",
    "dali-gpu": "#2ca02c",
    "op-reference": "#d62728",
    "op-ours": "#1f77b4",
}

SWEEPS = (
    ("sweep-batch", "batch size", "images/s vs batch size"),
    ("sweep-threads", "DALI CPU threads", "images/s vs threads"),
    ("sweep-size", "output side (px)", "images/s vs image size"),
    ("sweep-hw-decoder", "hw_decoder_load", "images/s vs hw_decoder_load (GPU)"),
)


def _done(result: dict[str, Any], suites: tuple[str, ...]) -> list[dict[str, Any]]:
    return [c for c in result["configs"] if c["suite"] in suites and "images_per_s" in c]


def _skipped(result: dict[str, Any], suite: str) -> str | None:
    for c in result["configs"]:
        if c["suite"] == suite and "skipped" in c:
            return c["skipped"]
    return None


def _empty(ax: Any, title: str, why: str | None) -> None:
    ax.set_title(title, fontsize=10)
    ax.text(
        0.5,
        0.5,
        f"skipped: {why}" if why else "not run",
        ha="center",
        va="center",
        wrap=True,
        fontsize=9,
        transform=ax.transAxes,
    )
    ax.set_xticks([])
    ax.set_yticks([])


def plot(result: dict[str, Any], path: str | Path) -> Path:
    """Draw ``result`` (the runner's JSON dict) to ``path``; returns the path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    loaders = _done(result, ("torchvision", "dali-cpu", "dali-gpu"))
    ops = [dict(c) for c in _done(result, ("augment-op",))]
    keep = [dict(c) for c in _done(result, ("saliency-stage",)) if "relative_to_plain" in c]
    n_side = max(len(ops), len(keep), 8)
    heights = [max(4.0, 0.3 * len(loaders)), max(3.0, 0.3 * n_side), 3.4, 3.4, 2.2]
    fig = plt.figure(figsize=(15, sum(heights) + 1.0), layout="constrained")
    gs = fig.add_gridspec(5, 2, height_ratios=heights)
    ds = result.get("dataset", {})
    st = result.get("settings", {})
    fig.suptitle(
        f"dali-gridaug throughput on {result['device']} ({result['cpu_count']} CPUs) — "
        f"{ds.get('images')} {ds.get('kind')} JPEGs ~{ds.get('mean_width', 0):.0f}×"
        f"{ds.get('mean_height', 0):.0f}, batch {st.get('batch_size')}, "
        f"{st.get('image_size')} px, median of {st.get('runs')}×{st.get('rounds', 1)} runs — "
        f"{result['date'][:10]}",
        fontsize=11,
    )

    ax = fig.add_subplot(gs[0, :])
    if loaders:
        _bars(ax, loaders, "images_per_s", "images/s (median; whiskers: IQR of the runs)")
        ax.set_title("End-to-end loaders on the same JPEG files", fontsize=10)
    else:
        _empty(ax, "End-to-end loaders", None)

    ax = fig.add_subplot(gs[1, 0])
    if ops:
        for c in ops:
            c["_v"] = c["median_s"] * 1e3
            c["_lo"], c["_hi"] = c["q1_s"] * 1e3, c["q3_s"] * 1e3
        _bars(ax, ops, "_v", "ms per batch (median; whiskers: IQR; log scale)", log=True)
        b = ops[0].get("batch_size")
        ax.set_title(f"Augmentation alone, batch {b} resident on the device", fontsize=10)
    else:
        _empty(ax, "Augmentation alone", _skipped(result, "augment-op"))

    ax = fig.add_subplot(gs[1, 1])
    if keep:
        for c in keep:
            c["_v"] = c["relative_to_plain"]
            c["_lo"] = c["q1_s"] / c["median_s"] * c["_v"]
            c["_hi"] = c["q3_s"] / c["median_s"] * c["_v"]
            c["family"] = "op-ours"
        _bars(ax, keep, "_v", "time / plain training step (ResNet-18)")
        ax.axvline(1.0, color="k", lw=0.8)
        ax.set_title("Keep stage cost relative to a training step", fontsize=10)
    else:
        why = _skipped(result, "saliency-stage") or _skipped(result, "keep-stage")
        _empty(
            ax,
            "Keep stage cost",
            why or "saliency-stage not selected in this run (see saliency_stage_*.json)",
        )

    for i, (suite, xlabel, title) in enumerate(SWEEPS):
        ax = fig.add_subplot(gs[2 + i // 2, i % 2])
        pts = sorted(_done(result, (suite,)), key=lambda c: c["x"])
        if not pts:
            _empty(ax, title, _skipped(result, suite))
            continue
        _line(ax, pts, label=f"ours ({pts[0].get('device_used')})")
        if suite == "sweep-threads":
            tv = sorted(_done(result, ("sweep-tv-workers",)), key=lambda c: c["x"])
            if tv:
                _line(ax, tv, label="torchvision (workers)", color=COLORS["torchvision"])
                xlabel = "DALI threads / DataLoader workers"
        ax.set_xlabel(xlabel)
        ax.set_ylabel("images/s")
        ax.set_title(title, fontsize=10)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)

    _targets(fig.add_subplot(gs[4, :]), result.get("targets", {}))
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _bars(ax: Any, configs: list[dict[str, Any]], key: str, xlabel: str, log: bool = False) -> None:
    names = [c["name"] for c in configs]
    vals = [c[key] for c in configs]
    if key == "images_per_s":  # interquartile range of the run times, as images/s
        lo = [c["images_per_s"] - c["images_per_run"] / c["q3_s"] for c in configs]
        hi = [c["images_per_run"] / c["q1_s"] - c["images_per_s"] for c in configs]
    else:
        lo = [c[key] - c["_lo"] for c in configs]
        hi = [c["_hi"] - c[key] for c in configs]
    colors = [COLORS.get(c.get("family", ""), "#9467bd") for c in configs]
    y = range(len(configs))
    ax.barh(y, vals, xerr=[lo, hi], color=colors, capsize=2, error_kw={"lw": 0.8})
    ax.set_yticks(list(y), names, fontsize=8)
    ax.invert_yaxis()
    if log:
        from matplotlib.ticker import FuncFormatter, NullFormatter

        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", alpha=0.3)
    for yi, v in zip(y, vals, strict=True):
        ax.text(v, yi, f" {v:,.0f}" if v >= 100 else f" {v:.3g}", va="center", fontsize=7)


def _line(ax: Any, pts: list[dict[str, Any]], label: str, color: str | None = None) -> None:
    xs = [c["x"] for c in pts]
    ys = [c["images_per_s"] for c in pts]
    lo = [c["images_per_s"] - c["images_per_run"] / c["q3_s"] for c in pts]
    hi = [c["images_per_run"] / c["q1_s"] - c["images_per_s"] for c in pts]
    ax.errorbar(xs, ys, yerr=[lo, hi], marker="o", capsize=3, label=label, color=color)


def _targets(ax: Any, targets: dict[str, Any]) -> None:
    ax.axis("off")
    ax.set_title("Targets (issue #6)", fontsize=10)
    lines = []
    for key, t in targets.items():
        status = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        value = t["value"]
        if isinstance(value, dict) and "default_backend" in value:
            value = value["default_backend"]
        if isinstance(value, dict):
            value = ", ".join(
                f"{k} {v:.3g}" if isinstance(v, (int, float)) else f"{k} –"
                for k, v in value.items()
            )
        elif isinstance(value, (int, float)):
            value = f"{value:.3g}"
        why = t.get("reason") or t.get("measured_on") or ""
        lines.append(f"[{status}] {key} (threshold {t['threshold']:g}; {why})\n      {value}")
    ax.text(
        0,
        1,
        "\n".join(lines) or "none computed",
        va="top",
        family="monospace",
        fontsize=7.5,
        wrap=True,
        transform=ax.transAxes,
    )


def main(argv: list[str] | None = None) -> int:
    """``python -m benchmarks.plot RESULT.json [OUT.png]``: redraw a saved result."""
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m benchmarks.plot RESULT.json [OUT.png]")
        return 2
    src = Path(args[0])
    out = plot(json.loads(src.read_text()), args[1] if len(args) > 1 else src.with_suffix(".png"))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
