"""/c2's first block pointer names /c's first block."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.path('c2'), 0x7F0, '<Q', img.root_ptr(img.path('c')))
