"""Draws the PNG plots of bench/RESULTS.md from the JSON figures bench/run writes.

Usage: plot.py DIR  (reads DIR/rate.json, DIR/concurrency.json, DIR/api.json when present)
"""
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(directory, name):
    path = os.path.join(directory, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def rate(directory, report):
    steps = sorted(report["steps"], key=lambda s: s["rate"])
    rates = [s["rate"] for s in steps]
    fig, (failures, cpu) = plt.subplots(1, 2, figsize=(11, 4))
    failures.plot(rates, [100 * s["failed"] / max(s["calls"], 1) for s in steps], "o-", label="dialbridge")
    failures.plot(rates, [100 * s["baseline_failed"] / max(s["calls"], 1) for s in steps], "s--", label="SIPp→SIPp")
    if any(s.get("kamailio_failed") is not None for s in steps):
        failures.plot(rates, [100 * (s.get("kamailio_failed") or 0) / max(s["calls"], 1) for s in steps], "^:", label="Kamailio")
    failures.axhline(0.1, color="grey", linewidth=0.8, linestyle="--")
    failures.set_xlabel("call attempts per second")
    failures.set_ylabel("failed calls (%)")
    failures.set_title("Failures")
    failures.legend()
    cpu.plot(rates, [s["cpu_ms_per_call"] for s in steps], "o-", label="dialbridge (full preview outcall)")
    cpu.plot(rates, [s["baseline_sipp_cpu_ms_per_call"] for s in steps], "s--", label="SIPp→SIPp (both SIPp)")
    if any(s.get("kamailio_cpu_ms_per_call") for s in steps):
        cpu.plot(rates, [s.get("kamailio_cpu_ms_per_call") or 0 for s in steps], "^:", label="Kamailio (proxied call)")
    cpu.set_xlabel("call attempts per second")
    cpu.set_ylabel("CPU ms per call")
    cpu.set_title("CPU per call")
    cpu.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "rate.png"), dpi=100)


def concurrency(directory, levels):
    names = []
    for level in levels:
        for relay in level["relays"]:
            if relay["name"] not in names:
                names.append(relay["name"])
    calls = [level["calls"] for level in levels]
    fig, (cpu, loss) = plt.subplots(1, 2, figsize=(11, 4))
    for name in names:
        per_packet = [next((r["cpu_us_per_packet"] for r in l["relays"] if r["name"] == name), None) for l in levels]
        lost = [next((r["loss_percent"] for r in l["relays"] if r["name"] == name), None) for l in levels]
        cpu.plot(calls, per_packet, "o-", label=name)
        loss.plot(calls, lost, "o-", label=name)
    cpu.set_xlabel("bridged calls (RTP both ways, 50 packets/s per direction per leg)")
    cpu.set_ylabel("CPU µs per relayed packet")
    cpu.set_title("Relay cost")
    cpu.legend()
    loss.set_xlabel("bridged calls")
    loss.set_ylabel("packets lost (%)")
    loss.set_title("Loss")
    loss.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "concurrency.png"), dpi=100)


def api(directory, steps):
    labels = [f'{s["path"].split(" ")[0]}\n{s["rate"]}/s' for s in steps]
    x = range(len(steps))
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.27
    for i, (key, label) in enumerate([("p50_ms", "p50"), ("p99_ms", "p99"), ("p999_ms", "p99.9")]):
        ax.bar([p + (i - 1) * width for p in x], [s[key] for s in steps], width, label=label)
    ax.set_xticks(list(x))
    ax.set_xticklabels(labels)
    ax.set_ylabel("PreviewOutcall latency (ms)")
    ax.set_title("API latency")
    ax.legend()
    fig.tight_layout()
    fig.savefig(os.path.join(directory, "api.png"), dpi=100)


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "bench/results"
    for name, draw in [("rate", rate), ("concurrency", concurrency), ("api", api)]:
        data = load(directory, name)
        if data:
            draw(directory, data)
            print(f"drew {os.path.join(directory, name + '.png')}")


if __name__ == "__main__":
    main()
