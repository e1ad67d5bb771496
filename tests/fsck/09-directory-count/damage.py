"""the root's entry count is off by 3."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.root, 0xD0, '<Q', img.get_u(img.root, 0xD0, '<Q') + 3)
