"""the symlink /s has no layout flag."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.path('s'), 0xB8, '<I', 0)
