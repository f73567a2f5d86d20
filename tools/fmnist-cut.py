"""Writes the first ROWS Fashion-MNIST training rows (and ROWS / 4 test rows)
of Debian's dataset-fashion-mnist into DIR as train-images.gz,
train-labels.gz, test-images.gz and test-labels.gz (IDX, gzip): small data
for the tests and benchmarks.
  /usr/bin/python3 tools/fmnist-cut.py DIR ROWS"""
import gzip, struct, sys
out, rows = sys.argv[1], int(sys.argv[2])
src = "/usr/share/datasets/fashion-mnist/"
def cut(name, dst, n):
    data = gzip.open(src + name).read()
    magic, count = struct.unpack(">II", data[:8])
    ndim = magic & 0xff
    dims = struct.unpack(">" + "I" * ndim, data[4:4 + 4 * ndim])
    per = 1
    for d in dims[1:]:
        per *= d
    head = struct.pack(">I", magic) + struct.pack(">" + "I" * ndim, n, *dims[1:])
    off = 4 + 4 * ndim
    gzip.open(out + "/" + dst, "wb").write(head + data[off:off + n * per])
cut("train-images-idx3-ubyte.gz", "train-images.gz", rows)
cut("train-labels-idx1-ubyte.gz", "train-labels.gz", rows)
cut("t10k-images-idx3-ubyte.gz", "test-images.gz", rows // 4)
cut("t10k-labels-idx1-ubyte.gz", "test-labels.gz", rows // 4)
