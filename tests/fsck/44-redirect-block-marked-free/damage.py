"""The block /c's redirect writes into (its rd_new) is marked free: the next allocation would hand it out."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
p = img.root_ptr(img.path('c'), 1)
assert p >> 62 == 1, hex(p)
new = img.get_u(p & ((1 << 56) - 1), 0x38, '<Q')
img.set_rc_ref(img.unit_block(new), 0)
