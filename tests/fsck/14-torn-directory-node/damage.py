"""the root node of /many is torn (checksum fails)."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.flip(img.root_ptr(img.path('many')), 0x300)
