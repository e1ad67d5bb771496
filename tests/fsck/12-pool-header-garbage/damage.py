"""the first pool's header is overwritten with garbage."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.write(img.block_unit(img.unit_block(img.root)), bytearray(range(256)) * 16, False)
