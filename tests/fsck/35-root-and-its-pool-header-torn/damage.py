"""the root directory's inode and the header of the pool it lives in are both
torn: what the root named and lives in that pool (lost+found, /d, /many ...)
must be found by the inodes themselves, not by the damaged header's counts,
or the rebuilt header frees it (found by vmfs-flip -P, seed 14)."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.flip(img.root, 0x200)
img.flip(img.block_unit(img.unit_block(img.root)), 0x200)
