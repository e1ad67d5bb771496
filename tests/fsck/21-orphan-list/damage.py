"""slot 0's orphan list points at a data block."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.journal_unit(0) + 1, 0x30, '<Q', img.root_ptr(img.path('c')))
