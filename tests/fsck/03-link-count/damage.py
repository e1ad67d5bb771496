"""/b's link count is 5 instead of 1."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.path('b'), 0x7C, '<I', 5)
