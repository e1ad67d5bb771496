"""resource cluster 0's descriptor is garbage."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.write(img.rc_unit(0), bytearray(b'\x42' * 4096), False)
