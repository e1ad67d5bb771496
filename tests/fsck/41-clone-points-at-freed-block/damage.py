"""The clone /c3's block 2 points at a free block instead of the one it shares with /c@A."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
c3 = img.path('c3')
blk = next(b for b in range(img.rc_blocks - 1, 0, -1) if img.rc_ref(b) == 0)
img.set_u(c3, 0x7F0 + 8 * 2, '<Q', img.block_unit(blk))
