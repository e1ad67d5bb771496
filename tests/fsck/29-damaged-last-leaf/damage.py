"""the last leaf of /many is torn (checksum fails): the entries of the leaves
before it were counted before fsck found the damage, and must still go to
lost+found with the rest (found by vmfs-flip -P)."""
import struct, sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
root = img.read(img.root_ptr(img.path('many')))
count, used, level = struct.unpack_from("<HHB", root, 0x30)
assert level == 1, "the base's /many is no longer a two-level tree"
last, = struct.unpack_from("<Q", root, 0x38 + 18 * (count - 1) + 8)
img.flip(last, 0x300)
