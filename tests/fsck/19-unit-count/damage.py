"""/b records 99 allocated units."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.path('b'), 0x88, '<Q', 99)
