"""/c's block 1 is a redirect (the bytes written after snapshot A, shared by B): its table is torn."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
p = img.root_ptr(img.path('c'), 1)
assert p >> 62 == 1, hex(p)
img.flip(p & ((1 << 56) - 1), 0x70)
