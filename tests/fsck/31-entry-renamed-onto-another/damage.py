"""an entry of /many, file-12, now reads file-13 (checksum recomputed): it is
filed under the wrong key, and removing it by name would remove the real
file-13 instead (found by vmfs-flip -P)."""
import struct, sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
root = img.read(img.root_ptr(img.path('many')))
count, used, level = struct.unpack_from("<HHB", root, 0x30)
assert level == 1, "the base's /many is no longer a two-level tree"
for i in range(count):
    leaf, = struct.unpack_from("<Q", root, 0x38 + 18 * i + 8)
    blk = img.read(leaf)
    n, _, _ = struct.unpack_from("<HHB", blk, 0x30)
    off = 0x38
    for _ in range(n):
        nl = blk[off + 17]
        if bytes(blk[off + 18:off + 18 + nl]) == b"file-12":
            blk[off + 18:off + 18 + nl] = b"file-13"
            img.write(leaf, blk)
            sys.exit(0)
        off += 18 + nl
sys.exit("file-12 not found in /many")
