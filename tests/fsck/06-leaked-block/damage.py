"""a free block is marked in use."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
blk = next(b for b in range(img.rc_blocks - 1, 0, -1) if img.rc_ref(b) == 0)
img.set_rc_ref(blk, 1)
