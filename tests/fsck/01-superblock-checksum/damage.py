"""the primary superblock fails its checksum; the backup is intact."""
import sys
sys.path.insert(0, sys.argv[2])
from vmfsimg import Image
img = Image(sys.argv[1])
img.flip(0, 0x200)
