"""resource cluster 0's owner record names a host slot the datastore does not have."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.rc_unit(0), 0x30, '<I', 6)
