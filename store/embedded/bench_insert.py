#!/usr/bin/env python3
"""How much the embedded engine's insert path costs: chDB's streaming insert (what the shim used
to do; it silently drops rows the table refuses) against staging the body in a file and
`INSERT … FROM INFILE` (what it does now). Same data, same table, best of N runs.

    .venv/bin/python store/embedded/bench_insert.py [rows] [runs]
"""
import os
import struct
import sys
import tempfile
import time

import chdb

rows = int(sys.argv[1]) if len(sys.argv) > 1 else 500_000
runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
CHUNK = 1 << 20

d = tempfile.mkdtemp()
c = chdb.connect(d)
c.query("CREATE DATABASE b")
c.query("CREATE TABLE b.t (ts DateTime64(9), trace String, span String, svc LowCardinality(String), "
        "dur UInt64) ENGINE = MergeTree PARTITION BY toDate(ts) ORDER BY (svc, ts)")
now = int(time.time()) * 10**9
body = bytearray()
for i in range(rows):
    body += struct.pack("<q", now + i * 1000)
    for s in (f"{i // 8:032x}", f"{i:016x}", f"svc-{i % 50}"):
        b = s.encode()
        body += bytes([len(b)]) + b
    body += struct.pack("<Q", 1000 + i)
body = bytes(body)


def streaming():
    ins = c.send_insert("INSERT INTO b.t", "RowBinary")
    for i in range(0, len(body), CHUNK):
        ins.append(body[i:i + CHUNK])
    ins.finish()


def staged():
    path = os.path.join(d, "staged")
    with open(path, "wb") as f:
        for i in range(0, len(body), CHUNK):
            f.write(body[i:i + CHUNK])
    c.query(f"INSERT INTO b.t FROM INFILE '{path}' FORMAT RowBinary")
    os.remove(path)


print(f"{rows} rows, {len(body) / 1e6:.1f} MB RowBinary, best of {runs}; load: "
      f"{open('/proc/loadavg').read().strip()}")
def write_only():
    path = os.path.join(d, "staged")
    with open(path, "wb") as f:
        for i in range(0, len(body), CHUNK):
            f.write(body[i:i + CHUNK])
    os.remove(path)


for name, fn in (("streaming insert", streaming), ("staged + FROM INFILE", staged),
                 ("(staging write alone)", write_only)):
    best = min((lambda t0: (fn(), time.perf_counter() - t0)[1])(time.perf_counter()) for _ in range(runs))
    print(f"{name:>22}: {best * 1000:7.1f} ms  ({rows / best / 1e6:.2f} M rows/s)")
print("stored:", c.query("SELECT count() FROM b.t", "TSV").bytes().decode().strip(),
      "expected:", rows * runs * 2)
os._exit(0)
