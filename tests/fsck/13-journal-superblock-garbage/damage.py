"""slot 0's journal superblock is garbage."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.write(img.journal_unit(0), bytearray(b'\xee' * 4096), False)
