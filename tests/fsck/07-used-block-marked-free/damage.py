"""a block of /c is marked free."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_rc_ref(img.unit_block(img.root_ptr(img.path('c'))), 0)
