"""/c's first block pointer has reserved bits set."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
ino = img.path('c')
img.set_u(ino, 0x7F0, '<Q', img.root_ptr(ino) | (0x7F << 56))
