"""the pointer block of /sparse is torn."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.flip(img.root_ptr(img.path('sparse')), 0x100)
