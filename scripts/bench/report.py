"""Renders bench results (JSON lines from time_peers.py, optionally merged with Kestrel's
`kestrel bench --json` as {"model":…, "kestrel": {...}}) as a markdown table, prints it and
writes it between the BENCH-TABLE markers of docs/performance.md.

Usage: report.py RESULTS.jsonl DOC.md MACHINE_LINE
"""

import json
import sys

BEGIN, END = "<!-- BENCH-TABLE:BEGIN -->", "<!-- BENCH-TABLE:END -->"
PEERS = [("ort_fp32", "ORT fp32"), ("ort_int8", "ORT int8 QDQ"), ("opencv", "OpenCV DNN")]


def ms(entry):
    return None if not entry else entry.get("median_ms")


def fmt(v):
    return "n/a" if v is None else f"{v:.1f}"


def ratio(k, p):
    return "n/a" if k is None or p is None else f"{k / p:.2f}×"


def table(rows):
    head = ["model @size", "Kestrel f32", "Kestrel q8", "Kestrel q8 chained", "Kestrel bf16",
            *[n for _, n in PEERS], "K/ORT fp32", "K/OpenCV", "Kq8/ORT int8",
            "Kq8 chained/ORT int8", "ORT int8 rel L2 err"]
    out = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        k = ms(r.get("kestrel"))
        kq = ms(r.get("kestrel_q8"))
        kc = ms(r.get("kestrel_q8_chained"))
        kb = ms(r.get("kestrel_bf16"))
        peers = [ms(r.get(key)) for key, _ in PEERS]
        out.append("| " + " | ".join([
            f"{r['model']} @{r['size']}", fmt(k), fmt(kq), fmt(kc), fmt(kb),
            *[fmt(p) for p in peers], ratio(k, peers[0]), ratio(k, peers[2]),
            ratio(kq, peers[1]), ratio(kc, peers[1]), f"{r.get('int8_rel_l2_err', 0):.3f}",
        ]) + " |")
    return "\n".join(out)


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    results, doc, machine = sys.argv[1:]
    with open(results, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    body = (f"{machine}\n\nMedian forward latency, ms (batch 1, 2 threads, same input; Kestrel bf16 "
            f"needs AMX-BF16 or AVX512-BF16, n/a elsewhere; q8 chained = KESTREL_CHAIN=1, int8 "
            f"activations kept between int8 convs with scales calibrated on the first frame; "
            f"the last column is ORT's own int8 error against its fp32):\n\n{table(rows)}")
    print(body)
    text = open(doc, encoding="utf-8").read()
    if BEGIN not in text or END not in text:
        sys.exit(f"report: {doc} has no {BEGIN} … {END} section")
    pre, rest = text.split(BEGIN, 1)
    post = rest.split(END, 1)[1]
    with open(doc, "w", encoding="utf-8") as f:
        f.write(f"{pre}{BEGIN}\n{body}\n{END}{post}")


if __name__ == "__main__":
    main()
