"""the pointer block of /sparse maps nothing (its one entry zeroed, checksum
recomputed): the library refuses such a block, so fsck must too (found by
vmfs-flip -P: fsck cleared a bad data pointer and left the block empty)."""
import struct, sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
pb = img.root_ptr(img.path('sparse'))
blk = img.read(pb)
blk[0x40:0x40 + 8 * 496] = bytes(8 * 496)
img.write(pb, blk)
