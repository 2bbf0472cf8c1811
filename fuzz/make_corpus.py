#!/usr/bin/env python3
"""make_corpus.py — writes kiln's bad-file corpus, tests/corpus/<reader>/, and its MANIFEST files.

Every file is made by hand here (Python standard library only, no NumPy needed), so the
corpus can be reviewed and regenerated: `python3 fuzz/make_corpus.py` rewrites the generated
files and MANIFESTs in place (crash reproducers saved by fuzzing, crash-*, are kept and must be
listed in EXTRA rows at the end of this file). tests/test_corpus.c reads the MANIFESTs: one row
per case, "<reader arguments> <STATUS> <message substring>" for a bad file, or
"<reader arguments> KN_OK key=value ..." for a valid one, with the values the reader must
produce (CRC-32 of the data, counts, shapes). It is deliberately not run by the build: the
files it writes are committed.
"""
import gzip
import os
import struct
import sys
import zlib

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "corpus")
KILN_VERSION = "0.1.0"


def crc(b):
    return "%08x" % (zlib.crc32(b) & 0xFFFFFFFF)


class Reader:
    def __init__(self, name, header):
        self.name = name
        self.dir = os.path.join(ROOT, name)
        os.makedirs(self.dir, exist_ok=True)
        self.rows = ["# " + line for line in header.strip().split("\n")]
        self.written = set()

    def file(self, fname, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        assert fname not in self.written, fname
        self.written.add(fname)
        with open(os.path.join(self.dir, fname), "wb") as f:
            f.write(data)
        return fname

    def row(self, *fields):
        self.rows.append(" ".join(str(f) for f in fields))

    def comment(self, text):
        self.rows.append("")
        self.rows.append("# " + text)

    def finish(self, extra_rows=()):
        for name in os.listdir(self.dir):  # drop generated files no longer made (crash-* stay)
            if name not in self.written and name != "MANIFEST" and not name.startswith("crash-"):
                os.remove(os.path.join(self.dir, name))
        if extra_rows:
            self.comment("crash reproducers found by fuzzing (see fuzz/README.md)")
            self.rows.extend(extra_rows)
        with open(os.path.join(self.dir, "MANIFEST"), "w") as f:
            f.write("\n".join(self.rows) + "\n")


# ---- IDX -------------------------------------------------------------------------------------
def idx(magic, dims, payload=b""):
    return struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + payload


def make_idx():
    r = Reader("idx", """\
IDX reader: kn_dataset_load_idx(IMAGES, LABELS). Row: IMAGES LABELS STATUS (message | expected values).
Valid rows give n, shape, classes and the CRC-32 of x (u8) and of y (int32 little-endian).""")
    n, rows, cols = 3, 4, 5
    pix = bytes((i * 37 + 11) & 255 for i in range(n * rows * cols))
    labels = bytes([7, 0, 9])
    y = struct.pack("<3i", *labels)
    img = r.file("ok-images.idx", idx(0x803, [n, rows, cols], pix))
    lab = r.file("ok-labels.idx", idx(0x801, [n], labels))
    imgz = r.file("ok-images.idx.gz", gzip.compress(idx(0x803, [n, rows, cols], pix), mtime=0))
    labz = r.file("ok-labels.idx.gz", gzip.compress(idx(0x801, [n], labels), mtime=0))
    ok = "KN_OK n=3 shape=1x4x5 classes=10 x=%s y=%s" % (crc(pix), crc(y))
    r.row(img, lab, ok)
    r.row(imgz, labz, ok)
    r.row(imgz, lab, ok)
    big = bytes([255, 0, 128])
    r.row(img, r.file("ok-labels-255.idx", idx(0x801, [n], big)),
          "KN_OK n=3 shape=1x4x5 classes=256 x=%s y=%s" % (crc(pix), crc(struct.pack("<3i", *big))))

    r.comment("empty files, truncated headers and data, bad magic, unknown and unsupported element types")
    empty = r.file("bad-empty", b"")
    r.row(empty, lab, "KN_ERR_FORMAT truncated")
    r.row(img, empty, "KN_ERR_FORMAT truncated")
    r.row(r.file("bad-header-cut.idx", idx(0x803, [n, rows, cols])[:10]), lab, "KN_ERR_FORMAT truncated")
    r.row(r.file("bad-data-cut.idx", idx(0x803, [n, rows, cols], pix[:-1])), lab, "KN_ERR_FORMAT truncated")
    r.row(img, r.file("bad-labels-cut.idx", idx(0x801, [n], labels[:2])), "KN_ERR_FORMAT truncated")
    r.row(r.file("bad-magic.idx", b"GIF89a" + pix), lab, "KN_ERR_FORMAT bad magic")
    r.row(r.file("bad-magic-nonzero.idx", idx(0x01000803, [n, rows, cols], pix)), lab, "KN_ERR_FORMAT bad magic")
    r.row(lab, lab, "KN_ERR_FORMAT swapped")
    r.row(img, img, "KN_ERR_FORMAT swapped")
    r.row(r.file("bad-dtype-f32.idx", idx(0x00000D03, [n, rows, cols], b"\0" * 4 * n * rows * cols)), lab,
          "KN_ERR_UNSUPPORTED element type 0x0d")
    r.row(r.file("bad-dtype-unknown.idx", idx(0x00000703, [n, rows, cols], pix)), lab, "KN_ERR_FORMAT bad magic")
    r.row(r.file("bad-dims-2.idx", idx(0x00000802, [n, rows * cols], pix)), lab,
          "KN_ERR_UNSUPPORTED with 2 dims")

    r.comment("dimensions: zero, above INT32_MAX, products that overflow 64 bits, counts larger than the file")
    r.row(r.file("bad-dim-zero.idx", idx(0x803, [n, 0, cols])), lab, "KN_ERR_FORMAT dimension 1 is 0")
    r.row(r.file("bad-dim-huge.idx", idx(0x803, [n, 0xFFFFFFFF, cols], pix)), lab, "KN_ERR_FORMAT must be in")
    big3 = 0x7FFFFFFF
    r.row(r.file("bad-overflow.idx", idx(0x803, [big3, big3, big3], pix)),
          r.file("bad-overflow-labels.idx", idx(0x801, [big3], labels)), "KN_ERR_FORMAT overflow the address space")
    r.row(r.file("bad-count-larger.idx", idx(0x803, [1000, rows, cols], pix)),
          r.file("bad-count-larger-labels.idx", idx(0x801, [1000], labels)), "KN_ERR_FORMAT truncated")
    r.row(img, r.file("bad-count-mismatch.idx", idx(0x801, [2], labels[:2])), "KN_ERR_FORMAT do not belong together")
    r.row(r.file("bad-trailing.idx", idx(0x803, [n, rows, cols], pix + b"\0\0\0")), lab,
          "KN_ERR_FORMAT bytes after the")
    r.row(img, r.file("bad-labels-trailing.idx", idx(0x801, [n], labels + b"\1")), "KN_ERR_FORMAT bytes after the")

    r.comment("gzip: a damaged deflate stream, a stream cut short, a stream cut before its end marker")
    gz = bytearray(gzip.compress(idx(0x803, [n, rows, cols], pix), mtime=0))
    bad = bytearray(gz)
    bad[12] ^= 0xFF
    bad[13] ^= 0x55
    r.row(r.file("bad-gzip-corrupt.idx.gz", bytes(bad)), lab, "KN_ERR_FORMAT corrupt gzip data")
    r.row(r.file("bad-gzip-cut.idx.gz", bytes(gz[: len(gz) // 2])), lab, "KN_ERR_FORMAT truncated")
    r.row(r.file("bad-gzip-no-trailer.idx.gz", bytes(gz[:-8])), lab, "KN_ERR_FORMAT truncated")
    crcbad = bytearray(gz)
    crcbad[-8] ^= 1
    r.row(r.file("bad-gzip-crc.idx.gz", bytes(crcbad)), lab, "KN_ERR_FORMAT corrupt gzip data (incorrect data check)")
    return r


# ---- CIFAR -----------------------------------------------------------------------------------
def make_cifar():
    r = Reader("cifar", """\
CIFAR binary batches: kn_dataset_load_cifar(&FILE, 1, cifar100). Row: c10|c100 FILE STATUS (message | values).
The format has no header: any file whose size is a multiple of the record (3073 or 3074 bytes)
and whose label bytes are in range is valid, so there is no magic, dtype or dimension to break.""")
    px = bytes((i * 13 + 5) & 255 for i in range(3072))
    px2 = bytes((i * 7 + 1) & 255 for i in range(3072))
    c10 = bytes([3]) + px + bytes([9]) + px2
    c100 = bytes([19, 99]) + px + bytes([0, 5]) + px2
    f10 = r.file("ok-cifar10.bin", c10)
    f100 = r.file("ok-cifar100.bin", c100)
    r.row("c10", f10, "KN_OK n=2 shape=3x32x32 classes=10 x=%s y=%s" % (crc(px + px2), crc(struct.pack("<2i", 3, 9))))
    r.row("c100", f100, "KN_OK n=2 shape=3x32x32 classes=100 x=%s y=%s" % (crc(px + px2),
                                                                            crc(struct.pack("<2i", 99, 5))))
    r.comment("empty, sizes that are not whole records, labels out of range")
    empty = r.file("bad-empty", b"")
    r.row("c10", empty, "KN_ERR_FORMAT empty")
    r.row("c100", empty, "KN_ERR_FORMAT empty")
    r.row("c10", r.file("bad-short-record.bin", c10[:-1]), "KN_ERR_FORMAT not a multiple")
    r.row("c10", r.file("bad-long.bin", c10 + b"\0"), "KN_ERR_FORMAT not a multiple")
    r.row("c10", r.file("bad-one-byte.bin", b"\3"), "KN_ERR_FORMAT not a multiple")
    r.row("c10", f100, "KN_ERR_FORMAT open it as CIFAR-100")
    r.row("c100", r.file("bad-c10-as-c100.bin", c10 * 3 + bytes([1]) + px), "KN_ERR_FORMAT open it as CIFAR-10")
    r.row("c10", r.file("bad-label-10.bin", bytes([10]) + px), "KN_ERR_FORMAT label 10")
    r.row("c10", r.file("bad-label-255.bin", c10 + bytes([255]) + px), "KN_ERR_FORMAT record 2 has label 255")
    r.row("c100", r.file("bad-fine-100.bin", bytes([3, 100]) + px), "KN_ERR_FORMAT label 100")
    r.row("c100", r.file("bad-coarse-20.bin", bytes([20, 5]) + px), "KN_ERR_FORMAT coarse label 20")
    return r


# ---- NPY -------------------------------------------------------------------------------------
def npy_header(descr, shape, fortran=False):
    sh = "(" + "".join("%d, " % d for d in shape)[:-2] + ("," if len(shape) == 1 else "") + ")"
    return "{'descr': '%s', 'fortran_order': %s, 'shape': %s, }" % (descr, "True" if fortran else "False", sh)


def npy_raw(header, version=1, pad=True):
    h = header.encode("latin-1") if isinstance(header, str) else header
    pre = 10 if version == 1 else 12
    if pad:
        total = pre + len(h) + 1
        h = h + b" " * ((64 - total % 64) % 64) + b"\n"
    ln = struct.pack("<H", len(h)) if version == 1 else struct.pack("<I", len(h))
    return b"\x93NUMPY" + bytes([version, 0]) + ln + h


def npy(descr, shape, data, version=1, fortran=False):
    return npy_raw(npy_header(descr, shape, fortran), version) + data


def f32(vals):
    return struct.pack("<%df" % len(vals), *vals)


def make_npy():
    r = Reader("npy", """\
NumPy .npy: kn_dataset_load_npy(X, Y). Row: X Y STATUS (message | expected values). Valid rows give
n, the example shape, classes and the CRC-32 of x (as the data set holds it: f32, or u8 for uint8
input) and of y (int32 little-endian).""")
    xv = [i * 0.5 - 1.0 for i in range(12)]
    yv = [2, 0, 1]
    ycrc = crc(struct.pack("<3i", *yv))
    x = r.file("ok-x-f32.npy", npy("<f4", (3, 2, 2), f32(xv)))
    y = r.file("ok-y-i64.npy", npy("<i8", (3,), struct.pack("<3q", *yv)))
    r.row(x, y, "KN_OK n=3 shape=2x2 classes=3 x=%s y=%s" % (crc(f32(xv)), ycrc))
    u8 = bytes(range(10, 130, 10))
    r.row(r.file("ok-x-u8.npy", npy("|u1", (3, 4), u8)), r.file("ok-y-u1.npy", npy("|u1", (3,), bytes(yv))),
          "KN_OK n=3 shape=4 classes=3 x=%s y=%s" % (crc(u8), ycrc))
    dv = [1.1, -2.5e10, 3.0, 1e-40, 0.1, 7.0]
    r.row(r.file("ok-x-f8-be.npy", npy(">f8", (3, 2), struct.pack(">6d", *dv))),
          r.file("ok-y-i4-2d.npy", npy("<i4", (3, 1), struct.pack("<3i", *yv))),
          "KN_OK n=3 shape=2 classes=3 x=%s y=%s" % (crc(f32(dv)), ycrc))
    hv = [0.5, -1.0, 65504.0, 2.0 ** -24, 0.0, -0.0]
    r.row(r.file("ok-x-f2.npy", npy("<f2", (3, 1, 2), struct.pack("<6e", *hv))),
          r.file("ok-y-u2-be.npy", npy(">u2", (3,), struct.pack(">3H", *yv))),
          "KN_OK n=3 shape=1x2 classes=3 x=%s y=%s" % (crc(f32(hv)), ycrc))
    iv = [-3, 7, 30000]
    r.row(r.file("ok-x-i2-v2.npy", npy("<i2", (3,), struct.pack("<3h", *iv), version=2)),
          r.file("ok-y-i8-v3.npy", npy("<i8", (3,), struct.pack("<3q", *yv), version=3)),
          "KN_OK n=3 shape=1 classes=3 x=%s y=%s" % (crc(f32(iv)), ycrc))
    bv = [1, 0, 0, 1, 1, 1]
    r.row(r.file("ok-x-bool.npy", npy("|b1", (3, 2), bytes(bv))), y,
          "KN_OK n=3 shape=2 classes=3 x=%s y=%s" % (crc(f32(bv)), ycrc))
    r.row(r.file("bad-x-empty-example.npy", npy("<f4", (3, 0), b"")), y, "KN_ERR_FORMAT must be positive")

    r.comment("empty, bad magic, versions, preambles and header lengths")
    empty = r.file("bad-empty", b"")
    r.row(empty, y, "KN_ERR_FORMAT no \\x93NUMPY magic")
    r.row(x, empty, "KN_ERR_FORMAT no \\x93NUMPY magic")
    r.row(r.file("bad-magic.npy", b"\x93NUMPZ" + npy("<f4", (3, 2, 2), f32(xv))[6:]), y,
          "KN_ERR_FORMAT no \\x93NUMPY magic")
    r.row(r.file("bad-npz.npy", b"PK\x03\x04" + b"\0" * 60), y, "KN_ERR_FORMAT .npz archive")
    r.row(r.file("bad-preamble-cut.npy", b"\x93NUMPY\x01\x00"), y, "KN_ERR_FORMAT truncated npy preamble")
    r.row(r.file("bad-preamble-cut-v2.npy", b"\x93NUMPY\x02\x00\x10\x00"), y, "KN_ERR_FORMAT truncated npy preamble")
    r.row(r.file("bad-version-4.npy", npy("<f4", (3, 2, 2), f32(xv), version=1).replace(b"NUMPY\x01", b"NUMPY\x04", 1)),
          y, "KN_ERR_UNSUPPORTED version 4.0")
    good = npy("<f4", (3, 2, 2), f32(xv))
    r.row(r.file("bad-hlen-zero.npy", good[:8] + b"\0\0" + good[10:]), y, "KN_ERR_FORMAT implausible")
    r.row(r.file("bad-hlen-larger-than-file.npy", good[:8] + struct.pack("<H", 60000) + good[10:]), y,
          "KN_ERR_FORMAT the npy header needs")
    r.row(r.file("bad-hlen-over-limit-v2.npy", b"\x93NUMPY\x02\x00" + struct.pack("<I", 0xFFFFFFFF) + good[10:]), y,
          "KN_ERR_FORMAT implausible")

    r.comment("header dicts: not a dict, NUL, unknown/missing keys, bad descr (unknown dtype), Fortran order")
    def hdr(name, header, msg, data=f32(xv)):
        r.row(r.file(name, npy_raw(header) + data), y, msg)
    hdr("bad-header-not-dict.npy", "['descr', '<f4']", "KN_ERR_FORMAT not a dict")
    hdr("bad-header-not-json.npy", "}{'descr'", "KN_ERR_FORMAT not a dict")
    hdr("bad-header-nul.npy", b"{'descr': '<f4'\0, 'fortran_order': False, 'shape': (3, 2, 2), }",
        "KN_ERR_FORMAT NUL byte")
    hdr("bad-header-unclosed.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2)",
        "KN_ERR_FORMAT malformed")
    hdr("bad-header-unknown-key.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 2, 2), 'x': 1}",
        "KN_ERR_FORMAT unknown key 'x'")
    hdr("bad-header-no-shape.npy", "{'descr': '<f4', 'fortran_order': False}", "KN_ERR_FORMAT lacks 'shape'")
    hdr("bad-header-no-descr.npy", "{'fortran_order': False, 'shape': (3, 2, 2)}", "KN_ERR_FORMAT lacks 'descr'")
    hdr("bad-header-long-key.npy", "{'" + "k" * 200 + "': 1}", "KN_ERR_FORMAT malformed dict")
    hdr("bad-descr-complex.npy", npy_header("<c8", (3, 2)), "KN_ERR_UNSUPPORTED npy dtype '<c8'")
    hdr("bad-descr-unknown.npy", npy_header("<q7", (3, 2, 2)), "KN_ERR_UNSUPPORTED npy dtype '<q7'")
    hdr("bad-descr-empty.npy", npy_header("", (3, 2, 2)), "KN_ERR_UNSUPPORTED npy dtype ''")
    hdr("bad-descr-f16-size.npy", npy_header("<f16", (3,)), "KN_ERR_UNSUPPORTED npy dtype '<f16'")
    hdr("bad-descr-string.npy", npy_header("<U8", (3,)), "KN_ERR_UNSUPPORTED npy dtype '<U8'")
    hdr("bad-descr-not-string.npy", "{'descr': 4, 'fortran_order': False, 'shape': (3, 2, 2), }",
        "KN_ERR_FORMAT 'descr' is not a string")
    hdr("bad-descr-structured.npy", "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (3,), }",
        "KN_ERR_UNSUPPORTED structured")
    hdr("bad-fortran.npy", npy_header("<f4", (3, 2, 2), fortran=True), "KN_ERR_UNSUPPORTED Fortran-ordered")
    hdr("bad-fortran-not-bool.npy", "{'descr': '<f4', 'fortran_order': 0, 'shape': (3, 2, 2), }",
        "KN_ERR_FORMAT 'fortran_order' is not True or False")

    r.comment("shapes: not a tuple, negative, an entry over int64, products that overflow 64 bits, too many dims")
    hdr("bad-shape-not-tuple.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': [3, 2, 2], }",
        "KN_ERR_FORMAT 'shape' is not a tuple")
    hdr("bad-shape-negative.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, -2, 2), }",
        "KN_ERR_FORMAT non-negative integers")
    hdr("bad-shape-entry-overflow.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3, 99999999999999999999), }",
        "KN_ERR_FORMAT a 'shape' entry overflows")
    hdr("bad-shape-product-overflow.npy", npy_header("<f4", (4294967296, 4294967296)),
        "KN_ERR_FORMAT overflows the address space")
    hdr("bad-shape-bytes-overflow.npy", npy_header("<f8", (3, 1 << 61)), "KN_ERR_FORMAT overflows the address space")
    hdr("bad-shape-9-dims.npy", npy_header("<f4", (1,) * 9), "KN_ERR_UNSUPPORTED more than 8 dims")
    hdr("bad-shape-malformed.npy", "{'descr': '<f4', 'fortran_order': False, 'shape': (3 2), }",
        "KN_ERR_FORMAT malformed 'shape'")
    hdr("bad-shape-larger-than-file.npy", npy_header("<f4", (3000, 2, 2)), "KN_ERR_FORMAT truncated: expected 48000")

    r.comment("data: short, long; x and y that do not fit together; labels out of range")
    r.row(r.file("bad-data-short.npy", good[:-1]), y, "KN_ERR_FORMAT truncated")
    r.row(r.file("bad-data-long.npy", good + b"\0" * 4), y, "KN_ERR_FORMAT not a single .npy array")
    r.row(r.file("bad-x-scalar.npy", npy("<f4", (), f32([1.0]))), y, "KN_ERR_FORMAT x is a scalar")
    r.row(r.file("bad-x-5-dims.npy", npy("<f4", (3, 1, 1, 2, 2), f32(xv))), y, "KN_ERR_UNSUPPORTED has 5 dims")
    r.row(x, r.file("bad-y-float.npy", npy("<f4", (3,), f32(yv))), "KN_ERR_FORMAT they must be integers")
    r.row(x, r.file("bad-y-count.npy", npy("<i8", (2,), struct.pack("<2q", 1, 0))), "KN_ERR_FORMAT has 3 examples")
    r.row(x, r.file("bad-y-2d.npy", npy("<i8", (3, 2), struct.pack("<6q", *range(6)))), "KN_ERR_FORMAT must have shape")
    r.row(x, r.file("bad-y-negative.npy", npy("<i8", (3,), struct.pack("<3q", 1, -1, 0))),
          "KN_ERR_FORMAT label y[1] = -1 is out of range")
    r.row(x, r.file("bad-y-over-int32.npy", npy("<i8", (3,), struct.pack("<3q", 1, 1 << 31, 0))),
          "KN_ERR_FORMAT out of range")
    r.row(x, r.file("bad-y-u8-huge.npy", npy("<u8", (3,), struct.pack("<3Q", 1, 2, 1 << 63))),
          "KN_ERR_FORMAT out of range")
    return r


# ---- CSV -------------------------------------------------------------------------------------
def make_csv():
    r = Reader("csv", """\
CSV: kn_dataset_load_csv(FILE, COLUMN). Row: COLUMN FILE STATUS (message | expected values).
Valid rows give n, the feature count, classes and the CRC-32 of x (f32) and y (int32 little-endian).""")
    def ok(col, name, text, feats, labels):
        flat = [v for row in feats for v in row]
        r.row(col, r.file(name, text), "KN_OK n=%d shape=%d classes=%d x=%s y=%s" % (
            len(labels), len(feats[0]), max(labels) + 1, crc(f32(flat)), crc(struct.pack("<%di" % len(labels), *labels))))
    ok(-1, "ok-header.csv", "a,b,label\n1,2,0\n3.5,-4e2,1\n 5 , 6 ,2\n", [[1, 2], [3.5, -400], [5, 6]], [0, 1, 2])
    ok(0, "ok-bom-crlf.csv", "\ufefflabel,x,y,z\r\n\r\n4,0.25,1e-3,-7\r\n\r\n1,inf,nan,0x10\r\n",
       [[0.25, 1e-3, -7], [float("inf"), float("nan"), 16]], [4, 1])
    ok(1, "ok-no-header.csv", "0.5,3,1.5\n-0.5,0,2.5", [[0.5, 1.5], [-0.5, 2.5]], [3, 0])

    r.comment("empty, header only, ragged rows, non-numbers, quoting, NUL bytes, binary data")
    empty = r.file("bad-empty.csv", "")
    r.row(-1, empty, "KN_ERR_FORMAT no data rows")
    r.row(-1, r.file("bad-blank.csv", "\n \n\t\r\n"), "KN_ERR_FORMAT no data rows")
    r.row(-1, r.file("bad-header-only.csv", "a,b,label\n"), "KN_ERR_FORMAT only a header")
    r.row(-1, r.file("bad-ragged.csv", "1,2,0\n3,1\n"), "KN_ERR_FORMAT line 2 has 2 fields but line 1 has 3")
    r.row(-1, r.file("bad-not-number.csv", "1,2,0\n3,x4,1\n"), "KN_ERR_FORMAT line 2, field 2: 'x4' is not a number")
    r.row(-1, r.file("bad-empty-field.csv", "1,2,0\n1,,0\n"), "KN_ERR_FORMAT line 2, field 2: '' is not a number")
    r.row(-1, r.file("bad-quoted.csv", "1,2,0\n3,\"4\",1\n"), "KN_ERR_FORMAT quoted fields are not supported")
    r.row(-1, r.file("bad-nul.csv", "1,2,0\n3\0,4,1\n"), "KN_ERR_FORMAT NUL bytes")
    r.row(-1, r.file("bad-binary.csv", bytes(range(1, 256))), "KN_ERR_FORMAT line 1 has 1 field")
    r.row(-1, r.file("bad-one-column.csv", "1\n2\n"), "KN_ERR_FORMAT at least one feature column")
    r.row(-1, r.file("bad-header-then-text.csv", "a,b\nc,d\n"), "KN_ERR_FORMAT line 2, field 1")

    r.comment("label column outside the rows; labels negative, fractional, over 2^31, NaN")
    ok3 = r.file("ok-small.csv", "1,2,0\n")
    r.row(-1, ok3, "KN_OK n=1 shape=2 classes=1 x=%s y=%s" % (crc(f32([1, 2])), crc(struct.pack("<i", 0))))
    r.row(3, ok3, "KN_ERR_ARG label column 3 is outside the 3 columns")
    r.row(-4, ok3, "KN_ERR_ARG label column -4 is outside the 3 columns")
    r.row(-1, r.file("bad-label-negative.csv", "1,2,-1\n"), "KN_ERR_FORMAT the label (column 2) is -1")
    r.row(-1, r.file("bad-label-fraction.csv", "1,2,1.5\n"), "KN_ERR_FORMAT the label (column 2) is 1.5")
    r.row(-1, r.file("bad-label-huge.csv", "1,2,3e9\n"), "KN_ERR_FORMAT labels must be integers")
    r.row(-1, r.file("bad-label-nan.csv", "1,2,nan\n"), "KN_ERR_FORMAT labels must be integers")
    r.row(-1, r.file("bad-label-inf.csv", "1,2,inf\n"), "KN_ERR_FORMAT labels must be integers")
    return r


# ---- safetensors -----------------------------------------------------------------------------
# The graph tests/test_corpus.c (and fuzz/fuzz_safetensors.c) load into, in node order.
PARAMS = [("w", "F32", [2, 3], 4), ("b", "F32", [3], 4), ("h", "F16", [3], 2), ("step", "I64", [], 8)]


def pdata(name):
    n = {"w": 24, "b": 12, "h": 6, "step": 8}[name]
    seed = sum(map(ord, name))
    return bytes((seed * 31 + i * 17) & 255 for i in range(n))


def jstr(s):
    out = '"'
    for ch in s:
        if ch == '"':
            out += '\\"'
        elif ch == "\\":
            out += "\\\\"
        elif ch == "\n":
            out += "\\n"
        elif ord(ch) < 0x20:
            out += "\\u%04x" % ord(ch)
        else:
            out += ch
    return out + '"'


def st_file(entries, meta=None, pad=True, data=None, header=None, kiln=False, hlen=None):
    """entries: list of (name, dtype, shape, begin, end); meta: list of (key, value)."""
    if header is None:
        parts = []
        if meta is not None or kiln:
            m = []
            if kiln:
                m.append((jstr("kiln.crc32"), jstr("00000000")))
                m.append((jstr("kiln.version"), jstr(KILN_VERSION)))
            m += [(jstr(k), jstr(v)) for k, v in (meta or [])]
            parts.append('"__metadata__":{' + ",".join("%s:%s" % kv for kv in m) + "}")
        for name, dt, shape, b, e in entries:
            parts.append('%s:{"dtype":"%s","shape":[%s],"data_offsets":[%d,%d]}' % (
                jstr(name), dt, ",".join(str(d) for d in shape), b, e))
        header = "{" + ",".join(parts) + "}"
    h = header.encode("utf-8") if isinstance(header, str) else header
    if pad:
        h += b" " * ((8 - len(h) % 8) % 8)
    if data is None:
        data = b"".join(pdata(e[0]) for e in entries)
    n = len(h) if hlen is None else hlen
    f = bytearray(struct.pack("<Q", n) + h + data)
    if kiln:
        at = f.find(b'"kiln.crc32":"') + len('"kiln.crc32":"')
        f[at:at + 8] = crc(bytes(f)).encode()
    return bytes(f)


def std_entries(order=("w", "b", "h", "step")):
    out, at = [], 0
    sizes = {"w": 24, "b": 12, "h": 6, "step": 8}
    info = {p[0]: p for p in PARAMS}
    for name in order:
        out.append((name, info[name][1], info[name][2], at, at + sizes[name]))
        at += sizes[name]
    return out


def make_safetensors():
    r = Reader("safetensors", """\
Checkpoints: MODE FILE STATUS (message | expected values). Modes: load = kn_checkpoint_load(g, FILE,
false, &meta), extra = the same with allow_extra, meta = kn_checkpoint_read_meta(FILE, &meta). g holds
the parameters w F32 [2,3], b F32 [3], h F16 [3] and step I64 [] (a scalar), in that order. Valid rows
give the CRC-32 of each parameter's bytes after loading (crc.NAME=) and the metadata count (meta=);
they must also round-trip: saved again and reloaded, the same bytes and metadata (and, for a
file kiln wrote itself, the very same file).""")
    vals = "".join(" crc.%s=%s" % (p[0], crc(pdata(p[0]))) for p in PARAMS)
    meta = [("epoch", "3"), ("model", 'input 2\ndense 3 # "q" \\ \u00e9')]
    kfile = r.file("ok-kiln.safetensors", st_file(std_entries(), meta=meta, kiln=True,
                                                  data=b"".join(pdata(p[0]) for p in PARAMS)))
    r.row("load", kfile, "KN_OK meta=3" + vals)
    r.row("meta", kfile, "KN_OK meta=3")
    order = ("step", "h", "b", "w")
    foreign = r.file("ok-foreign.safetensors", st_file(std_entries(order), meta=[("format", "pt")],
                                                       data=b"".join(pdata(n) for n in order)))
    r.row("load", foreign, "KN_OK meta=1" + vals)
    r.row("meta", foreign, "KN_OK meta=1")
    nometa = r.file("ok-no-metadata.safetensors", st_file(std_entries(), data=b"".join(pdata(p[0]) for p in PARAMS)))
    r.row("load", nometa, "KN_OK meta=0" + vals)
    order = ("h", "w", "step", "b")
    mis = r.file("ok-misaligned.safetensors", st_file(std_entries(order), pad=False,
                                                      data=b"".join(pdata(n) for n in order)))
    r.row("load", mis, "KN_OK meta=0" + vals)
    ent = std_entries() + [("z", "U8", [5], 50, 55)]
    extra = r.file("ok-extra-tensor.safetensors", st_file(ent, data=b"".join(pdata(p[0]) for p in PARAMS) + b"zzzzz"))
    r.row("extra", extra, "KN_OK meta=0" + vals)
    r.row("load", extra, 'KN_ERR_SHAPE tensor "z" U8 [5] in the file is not a parameter of the model')
    ws = b"".join(pdata(p[0]) for p in PARAMS)
    ws_file = r.file("ok-whitespace.safetensors", st_file(None, header=(
        ' \n{ "w" : {"shape":[2 , 3],"data_offsets":[0,24],"dtype":"F32"},"b":{"dtype":"F32","shape":[3],'
        '"data_offsets":[24,36]}, "h":{"dtype":"F16","shape":[3],"data_offsets":[36,42]},'
        '"__metadata__":{},"step":{"dtype":"I64","shape":[],"data_offsets":[42,50]} }\t\r\n'), pad=False, data=ws))
    r.row("load", ws_file, "KN_OK meta=0" + vals)

    good = st_file(std_entries(), data=ws)
    def bad(mode, name, content, msg):
        r.row(mode, r.file(name, content), msg)

    r.comment("sizes and the header length: empty, shorter than 8 bytes, header longer than the file")
    bad("load", "bad-empty.safetensors", b"", "KN_ERR_FORMAT too short")
    r.row("meta", "bad-empty.safetensors", "KN_ERR_FORMAT too short")
    bad("load", "bad-7-bytes.safetensors", good[:7], "KN_ERR_FORMAT too short")
    bad("load", "bad-header-len-larger-than-file.safetensors", struct.pack("<Q", len(good)) + good[8:],
        "KN_ERR_FORMAT larger than the rest of the file")
    bad("load", "bad-header-len-2e64.safetensors", struct.pack("<Q", (1 << 64) - 1) + good[8:],
        "KN_ERR_FORMAT larger than the rest of the file")
    bad("meta", "bad-header-len-zero.safetensors", struct.pack("<Q", 0) + good[8:], "KN_ERR_FORMAT not valid JSON")
    bad("load", "bad-header-len-short.safetensors", struct.pack("<Q", len(good) - 8 - 50 - 9) + good[8:],
        "KN_ERR_FORMAT not valid JSON")

    r.comment("the JSON header: not JSON, not an object, duplicate tensor names, non-integers, nesting, UTF-8")
    def hb(mode, name, header, msg, data=ws, pad=True):
        bad(mode, name, st_file(None, header=header, data=data, pad=pad), msg)
    hb("meta", "bad-json-not-json.safetensors", "this is not JSON at all", "KN_ERR_FORMAT not valid JSON")
    hb("load", "bad-json-cut.safetensors", '{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,', "KN_ERR_FORMAT not valid JSON")
    hb("load", "bad-json-array.safetensors", "[1,2,3]", "KN_ERR_FORMAT not a JSON object")
    hb("load", "bad-json-string.safetensors", '"w"', "KN_ERR_FORMAT not a JSON object")
    dup = std_entries() + [("w", "F32", [2, 3], 0, 24)]
    bad("load", "bad-duplicate-name.safetensors", st_file(dup, data=ws), "KN_ERR_FORMAT duplicate")
    bad("meta", "bad-duplicate-metadata.safetensors", st_file(std_entries(), meta=[("a", "1"), ("a", "2")], data=ws),
        "KN_ERR_FORMAT duplicate")
    hb("load", "bad-json-float.safetensors", '{"w":{"dtype":"F32","shape":[2.0,3],"data_offsets":[0,24]}}',
       "KN_ERR_FORMAT not valid JSON")
    hb("load", "bad-json-exponent.safetensors", '{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,2.4e1]}}',
       "KN_ERR_FORMAT not valid JSON")
    hb("load", "bad-json-huge-int.safetensors",
       '{"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,99999999999999999999999]}}', "KN_ERR_FORMAT not valid JSON")
    hb("load", "bad-json-deep.safetensors", "[" * 100 + "]" * 100, "KN_ERR_FORMAT nested deeper")
    hb("load", "bad-json-utf8.safetensors", b'{"w\xff":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}',
       "KN_ERR_FORMAT not valid JSON")
    hb("load", "bad-json-nul-escape.safetensors", '{"w\\u0000":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}}',
       "KN_ERR_FORMAT not valid JSON")
    hb("load", "bad-json-trailing.safetensors", '{} {}', "KN_ERR_FORMAT not valid JSON")
    hb("load", "bad-json-control-char.safetensors", '{"w\x01":{}}', "KN_ERR_FORMAT not valid JSON")
    hb("load", "bad-json-nul-in-header.safetensors", b'{}\0\0\0\0\0\0', "KN_ERR_FORMAT not valid JSON", pad=False)

    r.comment("metadata: not an object, non-string values, a bad or missing checksum, a flipped data bit")
    hb("meta", "bad-meta-not-object.safetensors", '{"__metadata__":5}', "KN_ERR_FORMAT \"__metadata__\" is not an object",
       data=b"")
    hb("meta", "bad-meta-value-int.safetensors", '{"__metadata__":{"epoch":3}}', "KN_ERR_FORMAT is not a string",
       data=b"")
    kgood = st_file(std_entries(), meta=meta, kiln=True, data=ws)
    flip = bytearray(kgood)
    flip[-3] ^= 0x10
    bad("load", "bad-crc-data-bit.safetensors", bytes(flip), "KN_ERR_FORMAT checksum mismatch")
    r.row("meta", "bad-crc-data-bit.safetensors", "KN_ERR_FORMAT checksum mismatch")
    at = kgood.find(b'"epoch":"3"') + len('"epoch":"')
    flip = bytearray(kgood)
    flip[at] = ord("4")
    bad("load", "bad-crc-header-byte.safetensors", bytes(flip), "KN_ERR_FORMAT checksum mismatch")
    at = kgood.find(b'"kiln.crc32":"') + len('"kiln.crc32":"')
    bad("load", "bad-crc-not-hex.safetensors", kgood[:at] + b"XYZXYZXY" + kgood[at + 8:],
        "KN_ERR_FORMAT not 8 lowercase hex digits")
    bad("load", "bad-crc-uppercase.safetensors", kgood[:at] + kgood[at:at + 8].upper().replace(b"0", b"A") + kgood[at + 8:],
        "KN_ERR_FORMAT not 8 lowercase hex digits")
    hb("meta", "bad-crc-short.safetensors", '{"__metadata__":{"kiln.crc32":"1234"}}', "KN_ERR_FORMAT 8 lowercase hex",
       data=b"")
    nocrc = st_file(std_entries(), meta=[("kiln.version", KILN_VERSION)], data=ws)
    bad("load", "bad-kiln-without-crc.safetensors", nocrc, "KN_ERR_FORMAT without the \"kiln.crc32\" checksum")
    bad("load", "bad-kiln-truncated.safetensors", kgood[:-1], "KN_ERR_FORMAT checksum mismatch")
    bad("load", "bad-kiln-trailing-byte.safetensors", kgood + b"\0", "KN_ERR_FORMAT checksum mismatch")

    r.comment("entries: unknown and unsupported dtypes, missing fields, shapes that overflow 64 bits")
    def eb(name, entry_json, msg, mode="load", data=ws):
        hb(mode, name, '{"w":' + entry_json + "}", msg, data=data)
    eb("bad-dtype-unknown.safetensors", '{"dtype":"F17","shape":[2,3],"data_offsets":[0,24]}',
       'KN_ERR_FORMAT unknown dtype "F17"', data=ws[:24])
    eb("bad-dtype-bool.safetensors", '{"dtype":"BOOL","shape":[2,3],"data_offsets":[0,6]}',
       "KN_ERR_UNSUPPORTED dtype BOOL", data=ws[:6])
    eb("bad-dtype-lowercase.safetensors", '{"dtype":"f32","shape":[2,3],"data_offsets":[0,24]}',
       'KN_ERR_FORMAT unknown dtype "f32"', data=ws[:24])
    eb("bad-dtype-not-string.safetensors", '{"dtype":32,"shape":[2,3],"data_offsets":[0,24]}',
       'KN_ERR_FORMAT "dtype" is missing or not a string', data=ws[:24])
    eb("bad-entry-not-object.safetensors", "[0,24]", "KN_ERR_FORMAT the entry is not an object", data=ws[:24])
    eb("bad-shape-missing.safetensors", '{"dtype":"F32","data_offsets":[0,24]}', 'KN_ERR_FORMAT "shape" is missing',
       data=ws[:24])
    eb("bad-shape-not-array.safetensors", '{"dtype":"F32","shape":6,"data_offsets":[0,24]}',
       'KN_ERR_FORMAT "shape" is missing or not an array', data=ws[:24])
    eb("bad-shape-negative.safetensors", '{"dtype":"F32","shape":[-2,-3],"data_offsets":[0,24]}',
       "KN_ERR_FORMAT not a non-negative integer", data=ws[:24])
    eb("bad-shape-string.safetensors", '{"dtype":"F32","shape":["2",3],"data_offsets":[0,24]}',
       "KN_ERR_FORMAT not a non-negative integer", data=ws[:24])
    eb("bad-shape-9-dims.safetensors", '{"dtype":"F32","shape":[1,1,1,1,1,1,1,2,3],"data_offsets":[0,24]}',
       "KN_ERR_UNSUPPORTED has 9 dimensions", data=ws[:24])
    eb("bad-shape-count-overflow.safetensors",
       '{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,24]}',
       "KN_ERR_FORMAT element count overflows 64 bits", data=ws[:24])
    eb("bad-shape-count-overflow-3.safetensors",
       '{"dtype":"U8","shape":[3037000500,3037000500,3037000500],"data_offsets":[0,24]}',
       "KN_ERR_FORMAT element count overflows 64 bits", data=ws[:24])
    eb("bad-shape-bytes-overflow.safetensors",
       '{"dtype":"F64","shape":[2305843009213693952,2],"data_offsets":[0,24]}',
       "KN_ERR_FORMAT byte size overflows 64 bits", data=ws[:24])
    eb("bad-shape-wraps-to-size.safetensors",
       '{"dtype":"F32","shape":[4611686018427387904,3],"data_offsets":[0,24]}',
       "KN_ERR_FORMAT overflows 64 bits", data=ws[:24])

    r.comment("offsets: missing, reversed, negative, past the end, overlapping, holes, wrong sizes, trailing data")
    eb("bad-offsets-missing.safetensors", '{"dtype":"F32","shape":[2,3]}', 'KN_ERR_FORMAT "data_offsets" is missing',
       data=ws[:24])
    eb("bad-offsets-three.safetensors", '{"dtype":"F32","shape":[2,3],"data_offsets":[0,12,24]}',
       'KN_ERR_FORMAT "data_offsets" is missing or not an array of two integers', data=ws[:24])
    eb("bad-offsets-strings.safetensors", '{"dtype":"F32","shape":[2,3],"data_offsets":["0","24"]}',
       "KN_ERR_FORMAT must be two integers", data=ws[:24])
    eb("bad-offsets-reversed.safetensors", '{"dtype":"F32","shape":[2,3],"data_offsets":[24,0]}',
       "KN_ERR_FORMAT 0 <= begin <= end", data=ws[:24])
    eb("bad-offsets-negative.safetensors", '{"dtype":"F32","shape":[2,3],"data_offsets":[-24,0]}',
       "KN_ERR_FORMAT 0 <= begin <= end", data=ws[:24])
    eb("bad-offsets-past-end.safetensors", '{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}',
       "KN_ERR_FORMAT run past the end of the data (20 bytes)", data=ws[:20])
    eb("bad-offsets-far-past-end.safetensors",
       '{"dtype":"F32","shape":[2,3],"data_offsets":[9223372036854775800,9223372036854775807]}',
       "KN_ERR_FORMAT run past the end", data=ws[:24])
    eb("bad-offsets-wrong-size.safetensors", '{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}',
       "KN_ERR_FORMAT hold 20 bytes, but F32 [2,3] needs 24", data=ws[:20])
    ov = std_entries()
    ov[1] = ("b", "F32", [3], 20, 32)
    bad("load", "bad-offsets-overlap.safetensors", st_file(ov, data=ws[:46]), "KN_ERR_FORMAT overlap")
    same = [("w", "F32", [2, 3], 0, 24), ("v", "F32", [6], 0, 24)]
    bad("extra", "bad-offsets-aliased.safetensors", st_file(same, data=ws[:24]), "KN_ERR_FORMAT overlap")
    hole = std_entries()
    hole = [(n, d, s, b + (4 if n != "w" else 0), e + (4 if n != "w" else 0)) for n, d, s, b, e in hole]
    bad("load", "bad-offsets-hole.safetensors", st_file(hole, data=ws[:24] + b"\0" * 4 + ws[24:]),
        "KN_ERR_FORMAT belong to no tensor")
    bad("load", "bad-trailing-data.safetensors", st_file(std_entries(), data=ws + b"\0" * 8),
        "KN_ERR_FORMAT has trailing data")
    bad("meta", "bad-data-no-tensors.safetensors", st_file([], meta=[("a", "b")], data=b"\0" * 8),
        "KN_ERR_FORMAT has trailing data")

    r.comment("valid files of another model: a missing parameter, another dtype or shape, too much metadata")
    miss = [e for e in std_entries() if e[0] != "b"]
    miss = [(n, d, s, b - (12 if b >= 36 else 0), e - (12 if b >= 36 else 0)) for n, d, s, b, e in miss]
    bad("load", "bad-missing-param.safetensors", st_file(miss, data=ws[:24] + ws[36:]),
        'KN_ERR_SHAPE parameter "b" F32 [3] is not in the file')
    r.row("meta", "bad-missing-param.safetensors", "KN_OK meta=0")
    wd = std_entries()
    wd[0] = ("w", "I32", [2, 3], 0, 24)
    bad("load", "bad-wrong-dtype.safetensors", st_file(wd, data=ws), "KN_ERR_DTYPE tensor w is I32 [2,3] in the file")
    wsh = std_entries()
    wsh[0] = ("w", "F32", [3, 2], 0, 24)
    bad("load", "bad-wrong-shape.safetensors", st_file(wsh, data=ws), "KN_ERR_SHAPE has shape [3,2] in the file")
    sc = std_entries()
    sc[3] = ("step", "I64", [1], 42, 50)
    bad("load", "bad-scalar-as-vector.safetensors", st_file(sc, data=ws), "KN_ERR_SHAPE has shape [1] in the file")
    many = [("k%02d" % i, "v") for i in range(70)]
    bad("meta", "bad-meta-too-many.safetensors", st_file(std_entries(), meta=many, data=ws),
        "KN_ERR_UNSUPPORTED more than 64 metadata entries")
    r.row("load", "bad-meta-too-many.safetensors", "KN_ERR_UNSUPPORTED more than 64 metadata entries")
    bad("meta", "bad-meta-long-key.safetensors", st_file(std_entries(), meta=[("k" * 64, "v")], data=ws),
        "KN_ERR_UNSUPPORTED is longer than the 63 bytes")
    return r


# ---- model format ----------------------------------------------------------------------------
def make_model():
    r = Reader("model", """\
Model descriptions: kn_model_load(FILE). Row: FILE STATUS (message | expected values). Valid rows give
the layer count (the input line included), the class count and the trainable parameter count.""")
    r.row(r.file("ok-mlp.kiln", "# tiny MLP\ntrain optimizer=sgd lr=0.1 batch=8\ninput 1 4 4\nflatten\n"
                                "dense 16\nrelu\ndense 3   # logits\n"), "KN_OK layers=5 classes=3 params=323")
    r.row(r.file("ok-cnn.kiln", "input 3 8 8\r\nconv2d 4 3 pad=same bias=0 name=c\r\nbatchnorm\r\nrelu\r\n"
                                "conv2d 4 3x1 pad=1 stride=2 groups=2 from=c\r\nmaxpool 2\r\nglobalavgpool\r\n"
                                "dropout 0.25\r\ndense 5\r\n"), "KN_OK layers=9 classes=5 params=169")
    r.row(r.file("ok-residual.kiln", "input 6\ndense 6 name=a\ntanh\ndense 6\nadd a\nlayernorm eps=1e-3\n"
                                     "leaky_relu 0.2\ndense 2\n"), "KN_OK layers=8 classes=2 params=110")

    def bad(name, text, msg):
        r.row(r.file(name, text), msg)
    r.comment("empty, no layers, binary data, NUL bytes, long lines, too many layers")
    bad("bad-empty.kiln", "", "KN_ERR_FORMAT no layers")
    bad("bad-comments-only.kiln", "# nothing\n\n   \n", "KN_ERR_FORMAT no layers")
    bad("bad-input-only.kiln", "input 1 28 28\n", "KN_ERR_FORMAT only its input line")
    bad("bad-binary.kiln", bytes(range(1, 256)), "KN_ERR_FORMAT unknown layer")
    bad("bad-nul.kiln", b"input 4\n\0dense 2\n", "KN_ERR_FORMAT NUL byte")
    bad("bad-line-too-long.kiln", "input 4\ndense 2 " + " " * 1100 + "\n", "KN_ERR_FORMAT the limit is 1024")
    bad("bad-too-many-layers.kiln", "input 4\n" + "relu\n" * 300 + "dense 2\n", "KN_ERR_FORMAT more than 256 layers")
    bad("bad-too-many-words.kiln", "input 4\ndense 2" + " bias=1" * 70 + "\n", "KN_ERR_FORMAT more than 64 words")

    r.comment("keywords, numbers, options and names")
    bad("bad-first-not-input.kiln", "dense 2\ninput 4\n", "KN_ERR_FORMAT 'input' must be the first layer")
    bad("bad-two-inputs.kiln", "input 4\ninput 4\ndense 2\n", "KN_ERR_FORMAT 'input' must be the first layer")
    bad("bad-unknown-layer.kiln", "input 4\nconv3d 2 3\n", "KN_ERR_FORMAT unknown layer 'conv3d'")
    bad("bad-uppercase.kiln", "input 4\nDense 2\n", "KN_ERR_FORMAT unknown layer 'Dense'")
    bad("bad-not-number.kiln", "input 4\ndense 3x\n", "KN_ERR_FORMAT '3x' is not a whole number")
    bad("bad-number-overflow.kiln", "input 4\ndense 99999999999999999999999\n", "KN_ERR_FORMAT out of range")
    bad("bad-number-negative.kiln", "input 4\ndense -2\n", "KN_ERR_FORMAT out of range")
    bad("bad-input-zero.kiln", "input 0\ndense 2\n", "KN_ERR_FORMAT out of range")
    bad("bad-input-two-numbers.kiln", "input 3 4\ndense 2\n", "KN_ERR_FORMAT got 2 numbers")
    bad("bad-input-too-large.kiln", "input 16384 16384 16\ndense 2\n", "KN_ERR_FORMAT larger than the limit of 2^28")
    bad("bad-dropout-nan.kiln", "input 4\ndropout nan\ndense 2\n", "KN_ERR_FORMAT 'nan' is not a number")
    bad("bad-dropout-one.kiln", "input 4\ndropout 1\ndense 2\n", "KN_ERR_FORMAT out of range")
    bad("bad-unknown-option.kiln", "input 4\ndense 2 padding=1\n", "KN_ERR_FORMAT option 'padding' unknown")
    bad("bad-duplicate-option.kiln", "input 4\ndense 2 bias=1 bias=0\n", "KN_ERR_FORMAT option 'bias' given twice")
    bad("bad-positional-after-option.kiln", "input 1 4 4\nconv2d 2 bias=0 3\n", "KN_ERR_FORMAT after the key=value options")
    bad("bad-missing-argument.kiln", "input 1 4 4\nconv2d 2\n", "KN_ERR_FORMAT missing KERNEL")
    bad("bad-kernel-too-large.kiln", "input 1 4 4\nconv2d 2 1025\n", "KN_ERR_FORMAT out of range")
    bad("bad-bool.kiln", "input 4\ndense 2 bias=yes\n", "KN_ERR_FORMAT must be 0 or 1")
    bad("bad-name-invalid.kiln", "input 4\ndense 2 name=9lives\n", "KN_ERR_FORMAT is not valid")
    bad("bad-name-duplicate.kiln", "input 4\ndense 4 name=a\ndense 2 name=a\n", "KN_ERR_FORMAT already used")
    bad("bad-name-unknown.kiln", "input 4\ndense 4\nadd nowhere\ndense 2\n", "KN_ERR_FORMAT no earlier layer is named")
    bad("bad-from-later.kiln", "input 4\ndense 4 from=b\ndense 2 name=b\n", "KN_ERR_FORMAT no earlier layer is named")
    bad("bad-train-key.kiln", "train speed=fast\ninput 4\ndense 2\n", "KN_ERR_FORMAT unknown recipe key 'speed'")
    bad("bad-train-value.kiln", "train lr=-1\ninput 4\ndense 2\n", "KN_ERR_FORMAT lr=-1 is not valid")
    bad("bad-train-empty.kiln", "train\ninput 4\ndense 2\n", "KN_ERR_FORMAT expected key=value")

    r.comment("layers that do not fit together (checked by building on a batch of 1)")
    bad("bad-dense-after-conv.kiln", "input 1 4 4\nconv2d 2 3\ndense 2\n", "KN_ERR_SHAPE add 'flatten' before it")
    bad("bad-add-shapes.kiln", "input 4\ndense 4 name=a\ndense 3\nadd a\n", "KN_ERR_SHAPE shapes differ")
    bad("bad-kernel-larger-than-input.kiln", "input 1 4 4\nconv2d 2 5\nflatten\ndense 2\n", "KN_ERR_SHAPE smaller than kernel 5x5")
    bad("bad-groups.kiln", "input 3 4 4\nconv2d 4 3 groups=2\nflatten\ndense 2\n", "KN_ERR_SHAPE not divisible by groups 2")
    bad("bad-pool-pad.kiln", "input 1 4 4\nmaxpool 2 pad=2\nflatten\ndense 2\n",
        "KN_ERR_FORMAT pad 2 is more than half of KERNEL 2")
    bad("bad-last-not-vector.kiln", "input 1 4 4\nrelu\n", "KN_ERR_SHAPE must be [N, classes]")
    bad("bad-pad-same-even.kiln", "input 1 4 4\nconv2d 2 2 pad=same\nflatten\ndense 2\n",
        "KN_ERR_FORMAT pad=same needs an odd kernel")
    return r


# Crash reproducers from fuzzing: (reader, manifest row). The files themselves are written by
# the fuzzer (then minimised), not here.
EXTRA = {
    "csv": [
        "-1 crash-label-int32max.csv KN_ERR_FORMAT labels must be integers",
    ],
    "npy": [
        "ok-x-f32.npy crash-y-int32max.npy KN_ERR_FORMAT out of range",
    ],
    "model": [
        "crash-input-overflow.kiln KN_ERR_FORMAT larger than the limit of 2^28",
        "crash-classes-overflow.kiln KN_ERR_SHAPE classes",
        "crash-probe-allocates.kiln KN_OK layers=4 classes=10 params=1610612746",
    ],
}


def main():
    for make in (make_idx, make_cifar, make_npy, make_csv, make_safetensors, make_model):
        r = make()
        r.finish(EXTRA.get(r.name, ()))
    total = 0
    for d, _, files in os.walk(ROOT):
        total += sum(os.path.getsize(os.path.join(d, f)) for f in files)
    print("tests/corpus: %d bytes" % total, file=sys.stderr)


if __name__ == "__main__":
    main()
