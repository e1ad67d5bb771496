"""/d's parent field names /many."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.set_u(img.path('d'), 0xC8, '<Q', img.path('many'))
