"""/b's first sub-block pointer names a whole file block."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.path('b'), 0x7F0, '<Q', img.block_unit(3))
