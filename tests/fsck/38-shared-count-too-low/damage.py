"""Block 0 of /c, named by /c and its snapshots A and B (count 3), says 2: freeing one would free it for all."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
blk = img.unit_block(img.root_ptr(img.path('c')))
img.set_rc_ref(blk, img.rc_ref(blk) - 1)
