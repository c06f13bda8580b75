"""Reads `kestrel bench --json` on stdin and prints {KEY: {"median_ms", "p90_ms", "raw"}}
(KEY = argv[1], default "kestrel")
with the FORWARD stage's numbers (the peers time the forward pass only, input pre-letterboxed).
Accepts any object that has a key containing "forward" whose value holds "median…"/"p90…" keys,
or flat keys like "forward_median_ms"."""

import json
import sys


def find_forward(obj):
    if isinstance(obj, dict):
        med = p90 = None
        for k, v in obj.items():
            kl = k.lower()
            if "forward" in kl and isinstance(v, dict):
                m = next((x for kk, x in v.items() if kk.lower().startswith("median")), None)
                p = next((x for kk, x in v.items() if kk.lower().startswith("p90")), None)
                if m is not None:
                    return m, p
            if "forward" in kl and "median" in kl:
                med = v
            if "forward" in kl and "p90" in kl:
                p90 = v
        if med is not None:
            return med, p90
        for v in obj.values():
            r = find_forward(v)
            if r:
                return r
    if isinstance(obj, list):
        for v in obj:
            r = find_forward(v)
            if r:
                return r
    return None


def main():
    raw = sys.stdin.read()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        data = json.loads(raw.strip().splitlines()[-1])
    found = find_forward(data)
    if not found:
        sys.exit(f"kestrel_json: no forward median in {raw[:200]!r}")
    key = sys.argv[1] if len(sys.argv) > 1 else "kestrel"
    print(json.dumps({key: {"median_ms": float(found[0]),
                                  "p90_ms": None if found[1] is None else float(found[1]),
                                  "raw": data}}))


if __name__ == "__main__":
    main()
