#!/usr/bin/env bash
# Fetches cuSPARSELt 0.10.0 (PyPI nvidia-cusparselt-cu13, pinned by hash) into .deps/cusparselt
# for the optional 2:4 sparse GEMM (kernels/cuda/sparse_gemm.cpp), and packs it for the GPU machine.
# Not run by setup.sh or CI: the wheel is 170 MB and only GPU builds use it (docs/perf/cuda.md).
#
#   bash scripts/fetch_cusparselt.sh            download + unpack to .deps/cusparselt/{include,lib}
#   bash scripts/fetch_cusparselt.sh --pack     also write .deps/cslt-pack/{include,a,b}: the
#       library with the GPU code of every architecture but SM (default 90) zeroed, xz-compressed
#       and split in two halves (b also holds the headers), each small enough for one device
#       call's 64 MiB carry
#   bash scripts/fetch_cusparselt.sh --unpack A B   (on the GPU machine) join the halves found in
#       folders A and B into .deps/cusparselt/lib/libcusparseLt.so.0 and check its hash
#
# Why the pruning is safe: the library's GPU code sits in fatbinaries (magic 0xBA55ED50), one
# image per architecture; the driver loads only the image that matches the device (for an
# sm_90 device the sm_90 ELF, or PTX where a fatbinary has no sm_90 ELF), so zeroing the other
# images' payloads (headers kept, sizes unchanged) changes nothing an sm_90 device reads. The
# sm_90 images are already zstd-compressed, which is why the full library barely compresses.
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.10.0
WHEEL=nvidia_cusparselt_cu13-${VERSION}-py3-none-manylinux2014_x86_64.whl
WHEEL_SHA256=b46f95b786b4ed96193d639527d95c1703f421d14a89afea1437a84ae3c36823
SM=${SM:-90}
DEST=.deps/cusparselt
PACK=.deps/cslt-pack

xz_decompress() {  # stdin -> stdout; python's lzma where the xz tool is missing
  if command -v xz >/dev/null 2>&1; then xz -dc; else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.stdin.buffer), sys.stdout.buffer)'; fi
}

if [ "${1:-}" = "--unpack" ]; then
  [ $# -eq 3 ] || { echo "usage: $0 --unpack FOLDER_A FOLDER_B" >&2; exit 2; }
  mkdir -p "$DEST/lib" "$DEST/include"
  cp "$3"/*.h "$DEST/include/"  # the headers travel with the second half
  rm -f "$DEST/lib/libcusparseLt.so.0"
  cat "$2"/lib.xz.part-aa "$3"/lib.xz.part-ab | xz_decompress > "$DEST/lib/libcusparseLt.so.0"
  want=$(cat "$3/lib.sha256" 2>/dev/null || cat "$2/lib.sha256")
  got=$(sha256sum "$DEST/lib/libcusparseLt.so.0" | cut -d' ' -f1)
  [ "$got" = "$want" ] || { echo "fetch_cusparselt: unpacked library hash $got, expected $want" >&2; exit 1; }
  echo "fetch_cusparselt: $DEST/lib/libcusparseLt.so.0 ($(stat -c %s "$DEST/lib/libcusparseLt.so.0") bytes) ok" >&2
  exit 0
fi

mkdir -p .deps/whl
if [ ! -f ".deps/whl/$WHEEL" ]; then
  python3 -m pip download -q --no-deps --only-binary=:all: -d .deps/whl "nvidia-cusparselt-cu13==$VERSION"
fi
echo "$WHEEL_SHA256  .deps/whl/$WHEEL" | sha256sum -c --quiet
python3 - ".deps/whl/$WHEEL" "$DEST" <<'PY'
import os, shutil, sys, zipfile
whl, dest = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(whl) as z:
    for n in z.namelist():
        for part in ("include/", "lib/"):
            i = n.find("nvidia/cu13/" + part)
            if i >= 0 and not n.endswith("/"):
                out = os.path.join(dest, part, os.path.basename(n))
                os.makedirs(os.path.dirname(out), exist_ok=True)
                with z.open(n) as src, open(out, "wb") as dst:
                    shutil.copyfileobj(src, dst)
PY
echo "fetch_cusparselt: cuSPARSELt $VERSION in $DEST" >&2
[ "${1:-}" = "--pack" ] || exit 0

rm -rf "$PACK" && mkdir -p "$PACK/include" "$PACK/a" "$PACK/b"
cp "$DEST"/include/*.h "$PACK/include/"
cp "$DEST"/include/*.h "$PACK/b/"
python3 - "$DEST/lib/libcusparseLt.so.0" "$PACK/libcusparseLt.so.0" "$SM" <<'PY'
# Fatbinary: header {u32 magic, u16 version, u16 header size (16), u64 size}, then entries
# {u16 kind (1 PTX, 2 ELF), u16 version, u32 header size, u64 payload size, ..., u32 arch at 28}.
import struct, sys
src, dst, sm = sys.argv[1], sys.argv[2], int(sys.argv[3])
data = bytearray(open(src, "rb").read())
magic = struct.pack("<I", 0xBA55ED50)
pos = zeroed = kept = 0
while (i := data.find(magic, pos)) >= 0:
    _, hs, size = struct.unpack_from("<HHQ", data, i + 4)
    if hs != 16 or i + hs + size > len(data):
        pos = i + 4
        continue
    p, end, entries = i + hs, i + hs + size, []
    while p < end:
        kind, _, ehs, payload = struct.unpack_from("<HHIQ", data, p)
        arch = struct.unpack_from("<I", data, p + 28)[0]
        entries.append((kind, arch, p + ehs, payload))
        p += ehs + payload
    has_elf = any(k == 2 and a == sm for k, a, _, _ in entries)
    best_ptx = max((a for k, a, _, _ in entries if k == 1 and a <= sm), default=None)
    for k, a, off, n in entries:
        if (k == 2 and a == sm) or (not has_elf and k == 1 and a == best_ptx):
            kept += n
        else:
            data[off:off + n] = bytes(n)
            zeroed += n
    pos = end
open(dst, "wb").write(data)
print(f"fetch_cusparselt: kept {kept / 1e6:.1f} MB of sm_{sm} GPU code, zeroed {zeroed / 1e6:.1f} MB", file=sys.stderr)
PY
sha256sum "$PACK/libcusparseLt.so.0" | cut -d' ' -f1 > "$PACK/a/lib.sha256"
cp "$PACK/a/lib.sha256" "$PACK/b/lib.sha256"
xz -9e -T2 -c "$PACK/libcusparseLt.so.0" > "$PACK/lib.xz"
rm "$PACK/libcusparseLt.so.0"
half=$(( ($(stat -c %s "$PACK/lib.xz") + 1) / 2 ))
split -b "$half" -a 2 "$PACK/lib.xz" "$PACK/lib.xz.part-"
mv "$PACK/lib.xz.part-aa" "$PACK/a/" && mv "$PACK/lib.xz.part-ab" "$PACK/b/" && rm "$PACK/lib.xz"
du -b "$PACK"/a/* "$PACK"/b/* >&2
