"""The block /c's redirect writes into (its slot's rs_new) is marked free: the next allocation would hand it out."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
p = img.root_ptr(img.path('c'), 1)
assert p >> 62 == 1, hex(p)
slot, table = (p >> 56) & 63, p & ((1 << 56) - 1)
size = 24 + (img.upb // 8 + 7) // 8 * 8   # docs/FORMAT.md, "Redirects": a slot of a 1 MiB-block datastore
new = img.get_u(table, 0x40 + slot * size + 0x10, '<Q')
img.set_rc_ref(img.unit_block(new), 0)
