"""the inode of /b is zeroed."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.write(img.path('b'), bytearray(4096), False)
