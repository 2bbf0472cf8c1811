#!/usr/bin/env python3
"""compare-checkpoints.py A.safetensors B.safetensors — whether two kiln checkpoints hold the
same tensors bit for bit (the metadata, which holds timings, is ignored). Prints one line per
differing tensor and a summary; exit status 0 when identical, 1 otherwise. Standard library
only (used on the GPU machine by scripts/gpu-check.sh)."""
import json
import struct
import sys


def tensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    body = data[8 + n:]
    return {k: body[v["data_offsets"][0]:v["data_offsets"][1]] for k, v in header.items() if k != "__metadata__"}


def main():
    a, b = tensors(sys.argv[1]), tensors(sys.argv[2])
    differ = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    for k in differ[:20]:
        print(f"differs: {k}")
    print(f"{len(a)} and {len(b)} tensors; {len(differ)} differ: {'identical' if not differ else 'NOT identical'}")
    return 0 if not differ else 1


if __name__ == "__main__":
    sys.exit(main())
