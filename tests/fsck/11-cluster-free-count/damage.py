"""resource cluster 0's free count is off by one."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.rc_unit(0), 0x7C, '<I', img.get_u(img.rc_unit(0), 0x7C, '<I') + 1)
