"""The peer comparison: one Markdown table of the issue's six cells (4 KiB GET/PUT ops/s,
1 MiB and 64 MiB GET/PUT MiB/s) for every configuration of both servers, the ratios that
matter, and the same numbers as a PNG bar chart.

Ratios are only meaningful within one run: every configuration was measured back to back
under the same host load, which numbers from two runs on a shared machine are not.
"""

from __future__ import annotations

import textwrap

# (size label, operation, unit): ops/s where requests dominate, MiB/s where bytes do.
CELLS = [
    ("4 KiB", "GET", "ops/s"),
    ("4 KiB", "PUT", "ops/s"),
    ("1 MiB", "GET", "MiB/s"),
    ("1 MiB", "PUT", "MiB/s"),
    ("64 MiB", "GET", "MiB/s"),
    ("64 MiB", "PUT", "MiB/s"),
]
# configuration name -> short label (table rows, chart bars), in display order.
LABELS = {
    "none": "sealstore plain",
    "sse-master-key": "sealstore SSE-S3 master key",
    "sse-openbao": "sealstore SSE-S3 OpenBao",
    "seaweedfs": "SeaweedFS plain",
    "seaweedfs-sse": "SeaweedFS SSE-S3",
    "seaweedfs-sse-fsync": "SeaweedFS SSE-S3 + fsync",
}
# (label, numerator, denominator)
RATIOS = [
    ("sealstore SSE (master key) / SeaweedFS SSE-S3", "sse-master-key", "seaweedfs-sse"),
    ("sealstore SSE (OpenBao) / SeaweedFS SSE-S3", "sse-openbao", "seaweedfs-sse"),
    (
        "sealstore SSE (master key) / SeaweedFS SSE-S3 + fsync (both fsync data)",
        "sse-master-key",
        "seaweedfs-sse-fsync",
    ),
    ("sealstore plain / SeaweedFS plain", "none", "seaweedfs"),
    ("OpenBao / master key (sealstore SSE-S3)", "sse-openbao", "sse-master-key"),
    ("sealstore SSE (master key) / sealstore plain", "sse-master-key", "none"),
    ("sealstore SSE (OpenBao) / sealstore plain", "sse-openbao", "none"),
    ("SeaweedFS SSE-S3 / SeaweedFS plain", "seaweedfs-sse", "seaweedfs"),
    ("SeaweedFS SSE-S3 + fsync / SeaweedFS SSE-S3", "seaweedfs-sse-fsync", "seaweedfs-sse"),
]
# The ratios printed under each chart panel (the headline comparisons).
CHART_RATIOS = [
    ("SSE/peer SSE", "sse-master-key", "seaweedfs-sse"),
    ("plain/peer plain", "none", "seaweedfs"),
    ("OpenBao/master key", "sse-openbao", "sse-master-key"),
    ("SSE/plain", "sse-master-key", "none"),
    ("peer SSE/peer plain", "seaweedfs-sse", "seaweedfs"),
]

DURABILITY_NOTE = (
    "Durability: sealstore fsyncs data and index before answering every PUT; SeaweedFS by "
    "default does not fsync; 'SeaweedFS SSE-S3 + fsync' fsyncs volume data (filer metadata "
    "unsynced)."
)


def cell_value(results: dict, name: str, size: str, op: str, unit: str) -> float | None:
    """The rate of one cell, or None when that configuration was not measured."""
    cell = results.get(name, {}).get(size, {}).get(op)
    if cell is None:
        return None
    return cell.ops_per_s if unit == "ops/s" else cell.mib_per_s


def ratio(num: float | None, den: float | None) -> float | None:
    return num / den if num is not None and den else None


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "n/a"
    return f"{value:.0f}" if unit == "ops/s" or value >= 100 else f"{value:.1f}"


def _fmt_ratio(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}x"


def present(results: dict) -> list[str]:
    return [name for name in LABELS if name in results]


def peer_table(results: dict) -> str:
    """Rows: each configuration's rate, then each ratio; columns: the six cells."""
    head = "| | " + " | ".join(f"{s} {op} {unit}" for s, op, unit in CELLS) + " |"
    lines = [head, "|---|" + "---:|" * len(CELLS)]
    for name in present(results):
        values = [cell_value(results, name, *c) for c in CELLS]
        row = " | ".join(_fmt(v, c[2]) for v, c in zip(values, CELLS, strict=True))
        lines.append(f"| {LABELS[name]} | {row} |")
    for label, num, den in RATIOS:
        if num not in results or den not in results:
            continue
        cells = [ratio(cell_value(results, num, *c), cell_value(results, den, *c)) for c in CELLS]
        lines.append(f"| **{label}** | " + " | ".join(_fmt_ratio(v) for v in cells) + " |")
    return "\n".join(lines)


def servers_table(rows: list[tuple[str, str, float | None, str]]) -> str:
    """(configuration label, durability, peak RSS MiB, at-rest check) per server process."""
    lines = [
        "| server process | durability of an acknowledged PUT | peak RSS (VmHWM) | at-rest check |",
        "|---|---|---:|---|",
    ]
    for label, durability, rss, check in rows:
        rss_text = "n/a" if rss is None else f"{rss:.0f} MiB"
        lines.append(f"| {label} | {durability} | {rss_text} | {check} |")
    return "\n".join(lines)


def chart(results: dict, path: str, subtitle: str) -> None:
    """One bar panel per cell, one bar per configuration, headline ratios under each panel."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    names = present(results)
    colours = {
        "none": "#9ecae1",
        "sse-master-key": "#3182bd",
        "sse-openbao": "#08519c",
        "seaweedfs": "#fdae6b",
        "seaweedfs-sse": "#e6550d",
        "seaweedfs-sse-fsync": "#a63603",
    }
    fig, axes = plt.subplots(2, 3, figsize=(16, 10.5))
    for ax, (size, op, unit) in zip(axes.flat, CELLS, strict=True):
        values = [cell_value(results, n, size, op, unit) or 0.0 for n in names]
        bars = ax.bar(range(len(names)), values, color=[colours[n] for n in names])
        ax.set_title(f"{size} {op} ({unit})", fontsize=12, fontweight="bold")
        ax.set_xticks([])
        ax.bar_label(bars, labels=[_fmt(v, unit) for v in values], fontsize=8, padding=2)
        ax.set_ylim(0, max([*values, 1.0]) * 1.18)
        ax.grid(axis="y", alpha=0.3)
        parts = []
        for label, num, den in CHART_RATIOS:
            value = ratio(
                cell_value(results, num, size, op, unit), cell_value(results, den, size, op, unit)
            )
            if value is not None:
                parts.append(f"{label} {value:.2f}x")
        half = (len(parts) + 1) // 2
        ax.set_xlabel("  ".join(parts[:half]) + "\n" + "  ".join(parts[half:]), fontsize=8.5)
    title = "sealstore vs SeaweedFS" if "seaweedfs" in results else "sealstore"
    fig.suptitle(
        f"{title}, same run (ratios matter, absolute numbers are noisy); "
        "SSE = sealstore SSE-S3 with the master key, peer = SeaweedFS",
        fontsize=11,
    )
    handles = [Patch(color=colours[n], label=LABELS[n]) for n in names]
    fig.legend(handles=handles, loc="upper center", ncol=len(names), bbox_to_anchor=(0.5, 0.965))
    if "seaweedfs" in results:
        subtitle += " " + DURABILITY_NOTE
    fig.text(0.5, 0.005, "\n".join(textwrap.wrap(subtitle, 190)), ha="center", fontsize=8)
    fig.tight_layout(rect=(0, 0.065, 1, 0.93))
    fig.savefig(path, dpi=110)
    plt.close(fig)
